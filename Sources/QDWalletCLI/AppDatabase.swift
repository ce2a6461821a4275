import Billing
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
        SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: path, migrator: migrator()))
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
