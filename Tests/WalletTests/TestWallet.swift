import Foundation
import GRDB
import Ledger
import QDSQL
import QDTestEngines
@testable import Wallet

/// A wallet service on its own database (a SQLite file, or a schema of its own on the
/// PostgreSQL server), with a manual clock, a fast password hasher and a random data key.
final class TestWallet {
    let directory: URL
    let path: String
    let store: SQLLedgerStore
    /// The database, when on PostgreSQL.
    let postgres: PostgresDatabase?
    let clock: ManualClock
    let ledger: Ledger
    let service: WalletService
    let key = DataKey.random()

    /// 2026-11-27T10:00:00+08:00
    static let start: TimestampMicros = 1_795_744_800_000_000
    /// A valid resident ID number (check character X).
    static let idNumber = "11010519491231002X"

    init(policy: WalletPolicy = WalletPolicy(), withKey: Bool = true) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-wallet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("w.sqlite").path
        if let database = try TestEngine.postgres("wallet", migrations: { (try LedgerSchema.postgres) + (try WalletSchema.postgres()) }) {
            store = SQLLedgerStore(database: database)
            postgres = database
        } else {
            store = SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: path, migrator: Self.migrator()))
            postgres = nil
        }
        clock = ManualClock(Self.start)
        ledger = Ledger(store: store, clock: clock)
        _ = try SystemAccounts.ensure(in: ledger)
        service = WalletService(store: store, ledger: ledger, policy: policy, hasher: PasswordHasher(iterations: 1_000), dataKey: withKey ? key : nil)
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
        try? postgres?.dropSchema()
    }

    /// Another store on the same database, as another process would have.
    func anotherStore() throws -> SQLLedgerStore {
        if let postgres { return SQLLedgerStore(database: try TestEngine.anotherPool(postgres)) }
        return SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: path, migrator: Self.migrator()))
    }

    /// Runs one statement behind the services' back.
    func execute(_ sql: String) throws {
        _ = try store.database.write { try $0.execute(sql, []) }
    }

    /// The first column of the first row, as an integer.
    func int(_ sql: String) throws -> Int? {
        try store.database.read { try $0.int(sql) }
    }

    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        LedgerSchema.register(in: &migrator)
        WalletSchema.register(in: &migrator)
        return migrator
    }

    /// A verified wallet (class `kycClass`) with password 123456, a bound card and `fen` topped up.
    @discardableResult
    func richWallet(_ phone: String, fen: Int64, kycClass: Int = 2) throws -> (wallet: WalletRecord, card: Int64) {
        _ = try service.openWallet(phone: phone, name: "张三")
        _ = try service.submitKYC(phone: phone, name: "张三", idNumber: residentID(forPhone: phone))
        _ = try service.approveKYC(phone: phone, kycClass: kycClass)
        try service.setPassword(phone: phone, password: "123456")
        let card = try service.bindCard(phone: phone, cardNumber: "6222020200112233446", bank: "ICBC")
        if fen > 0 {
            _ = try service.topUp(phone: phone, cardID: card.id, amountFen: fen, idempotencyKey: "fund-\(phone)")
        }
        return (try service.wallet(phone: phone), card.id)
    }

    func outbox() throws -> [(kind: String, payload: String)] {
        try store.database.read { db in
            try db.all("SELECT kind, payload FROM outbox ORDER BY id") { (try $0.text(0), try $0.text(1)) }
        }
    }
}

/// A valid resident ID number of its own for each test phone (Qingdao's address code, a
/// birth year and sequence drawn from the phone): one person, one verified wallet.
func residentID(forPhone phone: String) -> String {
    let n = Int(phone.suffix(5)) ?? 0
    let sequence = String(1_000 + n % 1_000).dropFirst()
    let body = "370202" + String(1940 + (n / 1_000) % 80) + "0101" + sequence
    return body + String(Validation.residentIDCheckCharacter(body)!)
}
