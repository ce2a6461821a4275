import Ledger
import QDSQL

/// What registering the billers of `Jobs/billers.toml` changed, biller by biller.
public struct BillerSync: Sendable, Hashable, Codable {
    /// One biller and what became of it.
    public struct Line: Sendable, Hashable, Codable {
        public var code: String
        public var name: String
        public var category: String
        public var accountID: Int64
        public var status: Status
    }

    public enum Status: String, Sendable, Hashable, Codable {
        /// In the file and newly registered, with its settlement account opened.
        case added
        /// In the file and registered before; its name or category changed.
        case updated
        /// In the file and registered as it is.
        case registered
        /// Registered, but no longer in the file: kept (its bills, accounts and money stay),
        /// and reported so that the operator can put it back or leave it.
        case notInFile = "not_in_file"
    }

    public var billers: [Line]

    /// Billers the database holds that the file no longer names.
    public var notInFile: [Line] { billers.filter { $0.status == .notInFile } }
}

extension Biller {
    /// Opens each biller's settlement account and records the biller, in the caller's
    /// transaction; safe to repeat. Never removes a biller the list does not name.
    @discardableResult
    public static func register(_ billers: [Biller], db: any SQLConnection, ledger: any LedgerWriting, clock: any LedgerClock) throws -> BillerSync {
        var before: [String: (name: String, category: String)] = [:]
        let sql = db
        for (code, name, category) in try sql.all("SELECT code, name, category FROM billers", [], { (try $0.text(0), try $0.text(1), try $0.text(2)) }) {
            before[code] = (name, category)
        }
        var lines: [BillerSync.Line] = []
        for biller in billers {
            let account = try Ledger.openAccount(AccountSpec(code: SystemAccounts.billerSettlement(biller.code), asset: .cny, kind: .billerSettlement, rules: .unrestricted), in: ledger, clock: clock)
            try sql.run("""
                INSERT INTO billers (code, name, category, account_id) VALUES (?, ?, ?, ?)
                ON CONFLICT (code) DO UPDATE SET name = excluded.name, category = excluded.category
                """, [biller.code, biller.name, biller.category, account.id])
            let status: BillerSync.Status
            if let old = before[biller.code] {
                status = old.name == biller.name && old.category == biller.category ? .registered : .updated
            } else {
                status = .added
            }
            lines.append(BillerSync.Line(code: biller.code, name: biller.name, category: biller.category, accountID: account.id, status: status))
        }
        let named = Set(billers.map(\.code))
        let registered = try sql.all("SELECT code, name, category, account_id FROM billers ORDER BY code") {
            BillerSync.Line(code: try $0.text(0), name: try $0.text(1), category: try $0.text(2), accountID: try $0.int64(3), status: .notInFile)
        }
        lines += registered.filter { !named.contains($0.code) }
        lines.sort { $0.code < $1.code }
        return BillerSync(billers: lines)
    }
}
