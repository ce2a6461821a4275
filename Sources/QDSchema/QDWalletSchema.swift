import AppAccess
import Billing
import Campaigns
import Foundation
import GRDB
import JobRunner
import Ledger
import QDSQL
import Reports
import Wallet

/// The schema of the whole database: every module's migrations, in the order they were
/// first shipped. Each module owns its tables and their migrations; this is only the list.
public enum QDWalletSchema {
    public static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        LedgerSchema.register(in: &migrator)
        WalletSchema.register(in: &migrator)
        JobSchema.register(in: &migrator)
        BillingSchema.register(in: &migrator)
        CampaignSchema.register(in: &migrator)
        ReportsSchema.register(in: &migrator)
        AppAccessSchema.register(in: &migrator)
        return migrator
    }

    /// The same list on PostgreSQL, in the same order (`PostgresDatabase.migrate` applies it).
    public static func postgresMigrations() throws -> [SQLMigration] {
        try LedgerSchema.postgres + WalletSchema.postgres() + JobSchema.postgres() + BillingSchema.postgres()
            + CampaignSchema.postgres() + ReportsSchema.postgres() + AppAccessSchema.postgres()
    }
}

extension QDWalletSchema {
    /// Whether an existing database file holds nothing a person put there: no wallet,
    /// transaction, bill or merchant, and no data key. Read before anything is written (no
    /// migration runs); a file that is not qdwallet's counts as holding data.
    /// Whether a database with qdwallet's schema holds nothing a person put there (the same
    /// tables as `isEmpty(path:)`, on either engine).
    public static func isEmpty(_ database: any SQLDatabase) throws -> Bool {
        try database.read { sql in
            for table in ["wallets", "ledger_transactions", "bills", "merchants", "wallet_data_key"] {
                if try sql.exists("SELECT 1 FROM \(table) LIMIT 1") { return false }
            }
            return true
        }
    }

    public static func isEmpty(path: String) throws -> Bool {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in
            guard try db.tableExists("grdb_migrations") else { return try Row.fetchOne(db, sql: "SELECT 1 FROM sqlite_master LIMIT 1") == nil }
            for table in ["wallets", "ledger_transactions", "bills", "merchants", "wallet_data_key"] where try db.tableExists(table) {
                if try Row.fetchOne(db, sql: "SELECT 1 FROM \(table) LIMIT 1") != nil { return false }
            }
            return true
        }
    }
}
