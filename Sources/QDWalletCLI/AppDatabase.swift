import GRDB
import Ledger

/// The one database of qdwallet, with every module's migrations in order.
enum AppDatabase {
    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        LedgerSchema.register(in: &migrator)
        return migrator
    }

    /// Opens (creating and migrating) the database and returns the ledger over it.
    static func openLedger(path: String) throws -> Ledger {
        let pool = try SQLiteDatabase.open(path: path, migrator: migrator())
        return Ledger(store: SQLiteLedgerStore(pool: pool))
    }
}
