import GRDB
import QDSQL

/// The reports' tables. A migration that has shipped is never edited.
public enum ReportsSchema {
    /// The module's migrations in the order they shipped (SQLite's text; PostgreSQL takes
    /// them through `SQLDialect.postgresSchema`).
    public static let migrations: [SQLMigration] = [
        SQLMigration("reports-v1", """
            CREATE TABLE recon_breaks (
                id INTEGER PRIMARY KEY,
                break_key TEXT NOT NULL UNIQUE,
                category TEXT NOT NULL,
                subject TEXT NOT NULL,
                detail TEXT NOT NULL,
                first_seen TEXT NOT NULL,
                last_seen TEXT NOT NULL,
                resolved TEXT
            );
            CREATE INDEX recon_breaks_open ON recon_breaks(resolved, first_seen);
            """),
    ]

    /// Registers the migrations, in order.
    public static func register(in migrator: inout DatabaseMigrator) {
        migrator.register(migrations)
    }

    /// The same migrations on PostgreSQL.
    public static func postgres() throws -> [SQLMigration] {
        try migrations.map { SQLMigration($0.name, try SQLDialect.postgresSchema($0.sql)) }
    }
}
