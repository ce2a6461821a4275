import Foundation
import GRDB
import QDSQL
import QDTestEngines
@testable import Ledger

/// A ledger on its own database (a file in a fresh temporary folder, or a schema of its own
/// on the PostgreSQL server, dropped afterwards), with a manual clock.
final class TestLedger {
    let directory: URL
    let path: String
    let store: SQLLedgerStore
    let clock: ManualClock
    let ledger: Ledger
    /// The database, when on PostgreSQL.
    let postgres: PostgresDatabase?

    /// 2026-11-27T00:00:00+08:00
    static let start: TimestampMicros = 1_795_708_800_000_000

    init(limits: LedgerLimits = LedgerLimits()) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("ledger.sqlite").path
        if let database = try TestEngine.postgres("ledger", migrations: { try LedgerSchema.postgres }) {
            store = SQLLedgerStore(database: database)
            postgres = database
        } else {
            store = try SQLiteLedgerStore(path: path)
            postgres = nil
        }
        clock = ManualClock(Self.start)
        ledger = Ledger(store: store, clock: clock, limits: limits)
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
        try? postgres?.dropSchema()
    }

    /// Runs one statement behind the ledger's back, in its own transaction.
    func execute(_ sql: String) throws {
        _ = try store.database.write { try $0.execute(sql, []) }
    }

    /// Runs one statement as someone with the database file would: on SQLite through a
    /// connection of its own with foreign keys off (on PostgreSQL `dropJournalTriggers` has
    /// already taken them out of the way, with the other triggers).
    func executeAround(_ sql: String) throws {
        guard postgres == nil else { return try execute(sql) }
        var configuration = Configuration()
        configuration.foreignKeysEnabled = false
        try DatabaseQueue(path: path, configuration: configuration).write { try $0.execute(sql: sql) }
    }

    /// Takes the journal's append-only triggers out of the way, as an attacker with the
    /// database's owner rights would.
    func dropJournalTriggers() throws {
        for table in ["ledger_transactions", "ledger_entries", "ledger_holds", "ledger_hold_resolutions"] {
            if postgres != nil {
                // ALL: the foreign keys too (the seals name their transactions).
                try execute("ALTER TABLE \(table) DISABLE TRIGGER ALL")
            } else {
                try execute("DROP TRIGGER IF EXISTS \(table)_no_update")
                try execute("DROP TRIGGER IF EXISTS \(table)_no_delete")
            }
        }
    }

    /// Opens a CNY account with the given rules and kind.
    func account(_ code: String, _ rules: AccountRules = .noOverdraft, kind: AccountKind = .userWallet, asset: Asset = .cny) throws -> AccountID {
        try ledger.openAccount(AccountSpec(code: code, asset: asset, kind: kind, rules: rules)).id
    }

    /// A bank clearing account (no rules) and a wallet funded from it with `fen`.
    func fundedWallet(_ code: String, fen: Int64, bank: AccountID? = nil) throws -> (wallet: AccountID, bank: AccountID) {
        let bankID = try bank ?? account("bank", .unrestricted, kind: .bankClearing)
        let wallet = try account(code)
        if fen > 0 {
            let result = try ledger.post(.transfer(key: "fund-\(code)", from: bankID, to: wallet, amount: fen))
            precondition(result.transactionID != nil, "funding failed: \(result)")
        }
        return (wallet, bankID)
    }

    func balance(_ id: AccountID) throws -> Int64 { try ledger.account(id: id).balance }
    func available(_ id: AccountID) throws -> Int64 { try ledger.account(id: id).available }
    func transactionCount() throws -> Int {
        try store.database.read { try $0.int("SELECT count(*) FROM ledger_transactions") ?? -1 }
    }
}
