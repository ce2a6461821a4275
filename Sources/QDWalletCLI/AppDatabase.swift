import Billing
import Foundation
import Campaigns
import GRDB
import JobRunner
import Reports
import Ledger
import Wallet

/// Every module's migrations, in order: the schema of qdwallet's one database.
public enum QDWalletSchema {
    public static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        LedgerSchema.register(in: &migrator)
        WalletSchema.register(in: &migrator)
        JobSchema.register(in: &migrator)
        BillingSchema.register(in: &migrator)
        CampaignSchema.register(in: &migrator)
        ReportsSchema.register(in: &migrator)
        return migrator
    }
}

/// The one database of qdwallet.
enum AppDatabase {
    static func migrator() -> DatabaseMigrator { QDWalletSchema.migrator() }

    /// Opens (creating and migrating) the database and returns the ledger over it.
    static func openLedger(path: String) throws -> Ledger {
        Ledger(store: try openStore(path: path))
    }

    static func openStore(path: String) throws -> SQLiteLedgerStore {
        SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: path, migrator: migrator(), cacheKiB: try cacheKiB()))
    }

    /// SQLite's page cache per connection: `QDWALLET_SQLITE_CACHE_MB` (2 to 1024), or the default.
    static func cacheKiB(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int {
        guard let text = environment["QDWALLET_SQLITE_CACHE_MB"], !text.isEmpty else { return SQLiteDatabase.cacheKiBDefault }
        guard let megabytes = Int(text), (2...1024).contains(megabytes) else {
            throw CLIFailure(.usage, code: "invalid_environment", "QDWALLET_SQLITE_CACHE_MB must be a whole number of megabytes from 2 to 1024, not \(text.debugDescription)")
        }
        return megabytes * 1024
    }

    /// The wallet service over the database; the data key is read only when `needsKey`.
    static func wallet(_ global: GlobalOptions, needsKey: Bool = false) throws -> WalletService {
        let key = needsKey ? try DataKey.fromEnvironment() : nil
        let store = try openStore(path: global.databasePath)
        let ledger = Ledger(store: store)
        _ = try SystemAccounts.ensure(in: ledger)
        return WalletService(store: store, ledger: ledger, dataKey: key)
    }
}
