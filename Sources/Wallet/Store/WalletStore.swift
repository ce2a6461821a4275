import GRDB
import Ledger

/// Reads of the wallet tables that other modules need, in the caller's transaction or
/// snapshot: they name no wallet column themselves.
public struct WalletStore {
    let db: Database

    public init(_ db: Database) { self.db = db }

    /// The wallets of `ids` (each once), by id; ids without a wallet are left out. One
    /// statement per 500 ids, so a chunk of the nightly run costs a few reads, not one a bill.
    public func wallets(ids: some Collection<Int64>) throws -> [Int64: WalletRecord] {
        var found: [Int64: WalletRecord] = [:]
        let unique = Array(Set(ids)).sorted()
        var start = 0
        while start < unique.count {
            let part = unique[start..<min(start + 500, unique.count)]
            let marks = part.map { _ in "?" }.joined(separator: ",")
            for row in try Row.fetchAll(db, sql: "SELECT \(WalletRecord.positionalColumns) FROM wallets w WHERE w.id IN (\(marks))", arguments: StatementArguments(Array(part))) {
                let wallet = WalletRecord(row: row, at: 0)
                found[wallet.id] = wallet
            }
            start += 500
        }
        return found
    }
}
