import Campaigns
import Feeds
import Foundation
import GRDB
import Logging
import QDSchema
import QDSQL
import QDTestEngines
import Reports
import Billing
import JobRunner
import Ledger
import QDConfig
import Wallet

/// The checkout: `Jobs/`, `SampleFeeds/` and the fixtures are read from it.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
public let sampleFeeds = repositoryRoot + "/SampleFeeds"

/// Shanghai wall-clock time as UTC microseconds.
public func shanghai(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 0, _ minute: Int = 0) -> TimestampMicros {
    ShanghaiCalendar.Date(year: year, month: month, day: day).startMicros + Int64(hour * 60 + minute) * 60_000_000
}

/// A failure of the test fixtures themselves.
public struct SupportError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A billing world on its own database: the demo's residents, the sample billers, a manual
/// clock, fast password hashing and quick fetch limits.
public final class BillingWorld {
    public let directory: URL
    public let path: String
    public let store: SQLLedgerStore
    /// The database, when on PostgreSQL.
    public let postgres: PostgresDatabase?
    public let clock = ManualClock(shanghai(2026, 11, 28, 2, 0))
    public let ledger: Ledger
    public let wallets: WalletService
    public let billing: BillingService
    public var config: NightlyBillingConfig

    public static func migrator() -> DatabaseMigrator { QDWalletSchema.migrator() }

    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-billing-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("billing.sqlite").path
        if let database = try TestEngine.postgres("billing", migrations: QDWalletSchema.postgresMigrations) {
            store = SQLLedgerStore(database: database)
            postgres = database
        } else {
            store = SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: path, migrator: Self.migrator()))
            postgres = nil
        }
        ledger = Ledger(store: store, clock: clock)
        _ = try SystemAccounts.ensure(in: ledger)
        wallets = WalletService(store: store, ledger: ledger, hasher: PasswordHasher(iterations: 1_000), dataKey: DataKey.random())
        billing = BillingService(wallets: wallets)
        var limits = FetchLimits()
        limits.connectTimeoutSeconds = 2
        limits.totalTimeoutSeconds = 3
        limits.lowSpeedSeconds = 2
        limits.attemptsMax = 3
        limits.backoffInitialMillis = 1
        limits.backoffMaxMillis = 2
        let billers = try Biller.load(path: repositoryRoot + "/Jobs/billers.toml")
        config = NightlyBillingConfig(
            billers: billers,
            feedSchema: try XMLSchema(path: sampleFeeds + "/schema/billfeed.xsd"),
            reportSchema: try XMLSchema(path: sampleFeeds + "/schema/payreport.xsd"),
            root: repositoryRoot, reportsDirectory: directory.appendingPathComponent("reports").path,
            workDirectory: directory.appendingPathComponent("feeds").path,
            fetcher: FeedFetcher(limits: limits, sleepMillis: { _ in }), wallets: wallets)
        _ = try store.transaction { db, tx in try Biller.register(billers, db: db, ledger: tx, clock: clock) }
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
        try? postgres?.dropSchema()
    }

    /// Another store on the same database, as another process would have.
    public func anotherStore() throws -> SQLLedgerStore {
        if let postgres { return SQLLedgerStore(database: try TestEngine.anotherPool(postgres)) }
        return SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: path, migrator: Self.migrator()))
    }

    /// Whether this world is on PostgreSQL.
    public var onPostgres: Bool { postgres != nil }

    public struct Resident: Sendable {
        public var phone: String
        public var kycClass: Int?
        public var fen: Int64
        public var links: [(String, String, Bool, Int64)]
        public var frozen = false
    }

    public static let residents: [Resident] = [
        Resident(phone: "13800000001", kycClass: 2, fen: 100_000, links: [("QD-WATER", "1100234567", true, 30_000), ("QD-POWER", "3700112233", true, 50_000), ("QD-GAS", "88001234", false, 0)]),
        Resident(phone: "13800000002", kycClass: 2, fen: 20_000, links: [("QD-WATER", "1100234568", true, 3_000)]),
        Resident(phone: "13800000003", kycClass: 2, fen: 500, links: [("QD-POWER", "3700112234", true, 50_000)]),
        Resident(phone: "13800000004", kycClass: 2, fen: 30_000, links: [("QD-GAS", "88001235", true, 50_000)], frozen: true),
        Resident(phone: "13800000005", kycClass: nil, fen: 0, links: [("QD-WATER", "1100234570", true, 50_000)]),
        Resident(phone: "13800000006", kycClass: 3, fen: 50_000, links: [("QD-GAS", "88001236", true, 50_000), ("QD-WATER", "1100234571", true, 50_000)]),
    ]

    /// Opens the residents' wallets, funds them and links their bill accounts.
    public func populate() throws {
        for resident in Self.residents {
            _ = try wallets.openWallet(phone: resident.phone, name: "张三")
            try wallets.setPassword(phone: resident.phone, password: "123456")
            if let kycClass = resident.kycClass {
                _ = try wallets.submitKYC(phone: resident.phone, name: "张三", idNumber: residentID(forPhone: resident.phone))
                _ = try wallets.approveKYC(phone: resident.phone, kycClass: kycClass)
                let card = try wallets.bindCard(phone: resident.phone, cardNumber: "6222020200112233446", bank: "ICBC")
                if resident.fen > 0 {
                    _ = try wallets.topUp(phone: resident.phone, cardID: card.id, amountFen: resident.fen, idempotencyKey: "fund-\(resident.phone)")
                }
            }
            for (biller, customer, autopay, limit) in resident.links {
                _ = try billing.link(phone: resident.phone, biller: biller, customerNo: customer, autopay: autopay, autopayLimitFen: autopay ? limit : nil)
            }
            if resident.frozen {
                _ = try wallets.setFrozen(phone: resident.phone, frozen: true, reason: "test")
            }
        }
    }

    public func runner(chunkSize: Int = 2_000, steps: [any JobStep]? = nil, owner: String = "test") throws -> JobRunner {
        let definition = try JobDefinition(ConfigTable.parse("""
            name = "nightly-billing"
            chunk_size = \(chunkSize)
            identifying = ["date"]
            stale_after_seconds = 60
            [parameters]
            date = "{yesterday}"
            [retry]
            backoff_initial_ms = 1
            backoff_max_ms = 2
            """, file: "nightly-billing.job.toml"))
        var implementation = NightlyBilling.implementation(config)
        if let steps { implementation.steps = steps }
        return JobRunner(store: store, clock: clock, logger: Logger(label: "test"), definitions: [definition], implementations: [implementation],
                         progress: ProgressReporter(logger: Logger(label: "test"), terminal: false), owner: owner, sleepMillis: { _ in })
    }

    public func run(_ date: String, feeds: [String: String] = [:], force: Bool = false) throws -> ExecutionReport {
        var overrides = ["date": date]
        for (biller, url) in feeds { overrides["feed.\(biller)"] = url }
        return try runner().run("nightly-billing", overrides: overrides, force: force)
    }

    public func summary(_ report: ExecutionReport) throws -> NightlyBilling.Summary {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        guard let summary = report.summary else { throw SupportError("the run has no summary: \(report.status)") }
        return try decoder.decode(NightlyBilling.Summary.self, from: summary)
    }

    public func bill(_ biller: String, _ id: String) throws -> SQLValues? {
        try store.database.read { try $0.oneRow("SELECT * FROM bills WHERE biller = ? AND bill_id = ?", [biller, id]) }
    }

    public func status(_ biller: String, _ id: String) throws -> String? {
        try bill(biller, id).map { row in
            let status: String = try row["status"]
            let reason: String? = try row["reason"]
            return reason.map { "\(status) \($0)" } ?? status
        }
    }

    public func balance(_ phone: String) throws -> Int64 { try wallets.balance(phone: phone).balanceFen }

    /// The biller settlement account's movement on a business day (by effective time).
    public func ledgerMovement(_ biller: String, _ date: String) throws -> Int64 {
        guard let day = ShanghaiCalendar.Date(iso: date) else { throw SupportError("not a date: \(date)") }
        return try store.database.read { db in
            try db.int64("""
                SELECT coalesce(sum(CASE e.side WHEN 1 THEN e.amount ELSE -e.amount END), 0)
                FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
                JOIN billers r ON r.account_id = e.account_id
                WHERE r.code = ? AND t.effective_at >= ? AND t.effective_at < ?
                """, [biller, day.startMicros, day.adding(days: 1).startMicros]) ?? 0
        }
    }

    public func reportFile(_ biller: String, _ compactDate: String) throws -> String {
        try String(contentsOfFile: config.reportsDirectory + "/\(biller)/QDW-\(biller)-\(compactDate).xml", encoding: .utf8)
    }

    public func count(_ sql: String, _ binds: [any SQLBindable] = []) throws -> Int {
        try store.database.read { try $0.int(sql, binds) ?? -1 }
    }

    /// Runs one statement behind the services' back.
    public func execute(_ sql: String, _ binds: [any SQLBindable] = []) throws {
        _ = try store.database.write { try $0.run(sql, binds) }
    }

    /// The engine's plan of a query, a line a step: PostgreSQL's `EXPLAIN` with sequential
    /// scans priced out (a few test rows would otherwise be read whole), SQLite's `EXPLAIN
    /// QUERY PLAN` details.
    public func plan(_ sql: String, _ binds: [any SQLBindable] = []) throws -> [String] {
        try store.database.write { db in
            if db.dialect == .postgres {
                _ = try db.run("SET LOCAL enable_seqscan = off")
                return try db.all("EXPLAIN " + sql, binds) { try $0.text(0) }
            }
            return try db.all("EXPLAIN QUERY PLAN " + sql, binds) { try $0.text(3) }
        }
    }

    /// Every row of a query, with its columns by name.
    public func rows(_ sql: String, _ binds: [any SQLBindable] = []) throws -> [SQLValues] {
        try store.database.read { try $0.allRows(sql, binds) }
    }

    /// The ledger key of the payment of a staged bill (`bill:#ROW:BILLER:BILLID`).
    public func paymentKey(_ biller: String, _ billID: String) throws -> String {
        let row = try store.database.read { try $0.int64("SELECT id FROM bills WHERE biller = ? AND bill_id = ?", [biller, billID]) }
        guard let row else { throw BillingRefusal.billNotFound }
        return PaymentKey(biller: biller, billID: billID).key(row: row)
    }

    /// The first column of the first row, as text.
    public func text(_ sql: String, _ binds: [any SQLBindable] = []) throws -> String? {
        try store.database.read { try $0.one(sql, binds) { try $0.optionalText(0) } ?? nil }
    }
}

/// A valid resident ID number of its own for each test phone (Qingdao's address code, a
/// birth year and sequence drawn from the phone): one person, one verified wallet.
public func residentID(forPhone phone: String) -> String {
    let n = Int(phone.suffix(5)) ?? 0
    let sequence = String(1_000 + n % 1_000).dropFirst()
    let body = "370202" + String(1940 + (n / 1_000) % 80) + "0101" + sequence
    return body + String(Validation.residentIDCheckCharacter(body)!)
}
