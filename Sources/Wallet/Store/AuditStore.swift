import GRDB
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
    public static func append(_ db: Database, at: Int64, operator name: String, command: String, arguments: String, outcome: String, walletPhone: String?) throws {
        let walletID = try walletPhone.flatMap { try Int64.fetchOne(db, sql: "SELECT id FROM wallets WHERE phone = ?", arguments: [$0]) }
        try db.execute(sql: "INSERT INTO audit_log (at, operator, command, arguments, outcome, wallet_id) VALUES (?, ?, ?, ?, ?, ?)",
                       arguments: [at, name, command, arguments, outcome, walletID])
    }

    /// Entries, newest first, filtered by time, operator and wallet.
    public static func list(_ db: Database, since: Int64?, operator name: String?, walletPhone: String?, limit: Int) throws -> [Entry] {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let since {
            conditions.append("at >= ?")
            arguments += [since]
        }
        if let name {
            conditions.append("operator = ?")
            arguments += [name]
        }
        if let walletPhone {
            conditions.append("wallet_id = (SELECT id FROM wallets WHERE phone = ?)")
            arguments += [walletPhone]
        }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        arguments += [max(1, min(limit, 10_000))]
        return try Row.fetchAll(db, sql: "SELECT * FROM audit_log \(filter) ORDER BY id DESC LIMIT ?", arguments: arguments).map {
            Entry(id: $0["id"], at: $0["at"], operator: $0["operator"], command: $0["command"], arguments: $0["arguments"], outcome: $0["outcome"], walletId: $0["wallet_id"])
        }
    }

    /// The day's operator actions by command, for the reconciliation.
    public static func countsByCommand(_ db: Database, from: Int64, to: Int64) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT command, count(*) FROM audit_log WHERE at >= ? AND at < ? GROUP BY command", arguments: [from, to]) {
            counts[row[0]] = row[1]
        }
        return counts
    }
}
