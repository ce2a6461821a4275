import QDSQL
import Ledger

/// The operators' audit trail: who ran which command, with its arguments masked as output
/// is, how it ended, and when. Append-only (the database refuses edits and deletes), and
/// written in the same transaction as the change it records.
public enum AuditStore {
    /// One command an operator ran.
    public struct Entry: Sendable, Codable, Hashable {
        public var id: Int64
        public var at: Int64
        public var `operator`: String
        public var command: String
        public var arguments: String
        public var outcome: String
        public var walletId: Int64?
    }

    /// Appends an entry; `walletPhone` (the wallet the command touched) is resolved to its id
    /// in the same transaction, after the command's own changes.
    public static func append(_ db: any SQLConnection, at: Int64, operator name: String, command: String, arguments: String, outcome: String, walletPhone: String?) throws {
        let sql = db
        let walletID = try walletPhone.flatMap { try sql.int64("SELECT id FROM wallets WHERE phone = ?", [$0]) }
        try sql.run("INSERT INTO audit_log (at, operator, command, arguments, outcome, wallet_id) VALUES (?, ?, ?, ?, ?, ?)", [at, name, command, arguments, outcome, walletID])
    }

    /// Entries, newest first, filtered by time, operator and wallet.
    public static func list(_ db: any SQLConnection, since: Int64?, operator name: String?, walletPhone: String?, limit: Int) throws -> [Entry] {
        var conditions: [String] = []
        var arguments: [any SQLBindable] = []
        if let since {
            conditions.append("at >= ?")
            arguments.append(since)
        }
        if let name {
            conditions.append("operator = ?")
            arguments.append(name)
        }
        if let walletPhone {
            conditions.append("wallet_id = (SELECT id FROM wallets WHERE phone = ?)")
            arguments.append(walletPhone)
        }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments.append(max(1, min(limit, 10_000)))
        return try db.all("SELECT id, at, operator, command, arguments, outcome, wallet_id FROM audit_log \(filter) ORDER BY id DESC LIMIT ?", arguments) {
            Entry(id: try $0[0], at: try $0[1], operator: try $0[2], command: try $0[3], arguments: try $0[4], outcome: try $0[5], walletId: try $0[6])
        }
    }

    /// The day's operator actions by command, for the reconciliation.
    public static func countsByCommand(_ db: any SQLConnection, from: Int64, to: Int64) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for (command, count) in try db.all("SELECT command, count(*) FROM audit_log WHERE at >= ? AND at < ? GROUP BY command", [from, to], { (try $0.text(0), try $0.int(1)) }) {
            counts[command] = count
        }
        return counts
    }
}
