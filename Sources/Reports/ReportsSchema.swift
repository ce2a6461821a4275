import GRDB

/// The reports' tables. A migration that has shipped is never edited.
public enum ReportsSchema {
    public static func register(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("reports-v1") { db in
            try db.execute(sql: """
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
                """)
        }
    }
}
