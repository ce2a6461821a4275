import Billing
import Foundation
import Campaigns
import GRDB
import JobRunner
import Reports
import Ledger
import QDConfig
import QDSchema
import QDSQL
import Wallet

/// The one database of qdwallet.
enum AppDatabase {
    static func migrator() -> DatabaseMigrator { QDWalletSchema.migrator() }

    /// Opens (and migrates) the database and returns the ledger over it. Only `init` and the
    /// demo pass `.create`: every other command refuses a path with no database (exit 4).
    static func openLedger(path: String, mode: SQLiteDatabase.OpenMode = .existing) throws -> Ledger {
        Ledger(store: try openStore(path: path, mode: mode))
    }

    /// `sessions`: PostgreSQL sessions kept open between transactions (the server keeps as
    /// many as it runs database calls at once; a command needs the default).
    static func openStore(path: String, mode: SQLiteDatabase.OpenMode = .existing, sessions: Int? = nil) throws -> SQLLedgerStore {
        let store: SQLLedgerStore
        if isPostgres(path) {
            store = SQLLedgerStore(database: try openPostgres(url: path, mode: mode, sessions: sessions))
        } else {
            store = SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: path, migrator: migrator(), mode: mode, cacheKiB: try cacheKiB()))
        }
        // The command's audit entry commits with its first change.
        store.setBeforeCommit(AuditSession.beforeCommit)
        return store
    }

    /// Whether `--db` names a PostgreSQL server rather than a SQLite file.
    static func isPostgres(_ location: String) -> Bool {
        location.hasPrefix("postgres://") || location.hasPrefix("postgresql://")
    }

    /// Connects to a PostgreSQL server. `.create` (init, the demo) creates or upgrades the
    /// schema; any other command refuses a database without qdwallet's schema, and upgrades
    /// one that lacks only newer migrations, as it does for a SQLite file.
    static func openPostgres(url: String, mode: SQLiteDatabase.OpenMode, sessions: Int? = nil) throws -> PostgresDatabase {
        let shown = PostgresConnection.redact(url)
        let database: PostgresDatabase
        var options = PostgresDatabase.Options()
        if let sessions { options.idleMax = sessions }
        do {
            database = try PostgresDatabase(url: url, options: options)
        } catch let error as SQLError {
            throw LedgerError(.storage, "cannot connect to the PostgreSQL server; check --db, the server and the password in PGPASSFILE or PGPASSWORD", cause: error.message, context: shown)
        }
        let migrations = try QDWalletSchema.postgresMigrations()
        do {
            let applied = try database.appliedMigrations()
            let unknown = Set(applied).subtracting(migrations.map(\.name))
            if !unknown.isEmpty {
                throw LedgerError.upgradedByANewerVersion(unknown, context: shown)
            }
            if mode != .create {
                guard !applied.isEmpty else {
                    throw LedgerError(.databaseNotFound, "this PostgreSQL database has no qdwallet schema; create it with `qdwallet init --db URL`, or check --db and QDWALLET_DB for a typo", context: shown)
                }
                if mode == .existingForReading {
                    guard Set(migrations.map(\.name)).isSubset(of: Set(applied)) else {
                        throw LedgerError(.storage, "the database needs an upgrade: run `qdwallet init` first", context: shown)
                    }
                    return database
                }
            }
            try database.migrate(migrations)
        } catch let error as SQLError {
            throw LedgerError(.storage, "the PostgreSQL database refused qdwallet's schema", cause: error.description, context: shown)
        }
        return database
    }

    /// Throws `databaseNewer` when the database holds schema steps this version does not
    /// know: a newer qdwallet has upgraded it since this process opened it.
    static func requireKnownSchema(_ store: SQLLedgerStore, context: String) throws {
        let applied: Set<String>
        let known: Set<String>
        if let sqlite = store as? SQLiteLedgerStore {
            let migrator = migrator()
            applied = try sqlite.pool.read { try migrator.appliedIdentifiers($0) }
            known = Set(migrator.migrations)
        } else if let postgres = store.database as? PostgresDatabase {
            applied = Set(try postgres.appliedMigrations())
            known = Set(try QDWalletSchema.postgresMigrations().map(\.name))
        } else {
            return
        }
        let unknown = applied.subtracting(known)
        if !unknown.isEmpty { throw LedgerError.upgradedByANewerVersion(unknown, context: context) }
    }

    /// SQLite's page cache per connection: `QDWALLET_SQLITE_CACHE_MB` (2 to 1024), or the default.
    static func cacheKiB(_ environment: QDEnvironment = .process) throws -> Int {
        guard let text = environment.sqliteCacheMB else { return SQLiteDatabase.cacheKiBDefault }
        guard let megabytes = Int(text), (2...1024).contains(megabytes) else {
            throw CLIFailure(.usage, code: "invalid_environment", "QDWALLET_SQLITE_CACHE_MB must be a whole number of megabytes from 2 to 1024, not \(text.debugDescription)")
        }
        return megabytes * 1024
    }

    /// The wallet service over the database; the data key is required when `needsKey`, and
    /// read whenever the environment names one (payment passwords are keyed with it).
    static func wallet(_ global: GlobalOptions, needsKey: Bool = false, mode: SQLiteDatabase.OpenMode = .existing) throws -> WalletService {
        let key = needsKey || QDEnvironment.process.hasDataKey ? try DataKey.fromEnvironment(QDEnvironment.process.dataKeyEnvironment) : nil
        let policy = try walletPolicy()
        let store = try openStore(path: global.databasePath, mode: mode)
        let ledger = Ledger(store: store)
        _ = try SystemAccounts.ensure(in: ledger)
        return WalletService(store: store, ledger: ledger, policy: policy, dataKey: key)
    }

    /// The wallet rules of `wallet.toml` in the jobs folder (`$QDWALLET_JOBS_DIR`, else
    /// ./Jobs); the defaults of `WalletPolicy` where the file or a key is missing.
    static func walletPolicy(jobsDirectory: String = JobsOptions.defaultPath) throws -> WalletPolicy {
        var policy = WalletPolicy()
        let path = (jobsDirectory as NSString).appendingPathComponent("wallet.toml")
        guard FileManager.default.fileExists(atPath: path) else { return policy }
        let file = try ConfigTable.load(path: path)
        try file.allowOnly(["limits"])
        if let limits = try file.table("limits") {
            try limits.allowOnly(["topup_max", "withdrawal_max", "qr_payment_max", "transfer_max"])
            func amount(_ key: String, _ fallback: Int64) throws -> Int64 {
                guard let text = try limits.optionalString(key) else { return fallback }
                guard let money = try? Money(yuan: text), money.fen > 0, money.fen <= WalletPolicy.requestFenMaxCeiling else {
                    throw ConfigError(file: "wallet.toml", key: "limits." + key,
                                      problem: "must be a yuan amount from 0.01 to \(Money(fen: WalletPolicy.requestFenMaxCeiling).yuanString), such as \"50000.00\"")
                }
                return money.fen
            }
            policy.topUpFenMax = try amount("topup_max", policy.topUpFenMax)
            policy.withdrawalFenMax = try amount("withdrawal_max", policy.withdrawalFenMax)
            policy.qrPaymentFenMax = try amount("qr_payment_max", policy.qrPaymentFenMax)
            policy.transferFenMax = try amount("transfer_max", policy.transferFenMax)
        }
        return policy
    }
}
