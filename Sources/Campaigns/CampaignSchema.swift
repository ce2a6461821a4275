import GRDB
import QDSQL

/// The campaign tables. A migration that has shipped is never edited.
public enum CampaignSchema {
    /// The module's migrations in the order they shipped (SQLite's text; PostgreSQL takes
    /// them through `SQLDialect.postgresSchema`).
    public static let migrations: [SQLMigration] = [
        SQLMigration("campaigns-v1", """
            CREATE TABLE campaign_versions (
                campaign_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                content_hash TEXT NOT NULL,
                definition TEXT NOT NULL,
                loaded_at INTEGER NOT NULL,
                PRIMARY KEY (campaign_id, version)
            );
            CREATE TABLE campaign_budgets (
                campaign_id TEXT PRIMARY KEY,
                spent_fen INTEGER NOT NULL CHECK (spent_fen >= 0)
            );
            CREATE TABLE campaign_budget_days (
                campaign_id TEXT NOT NULL,
                day TEXT NOT NULL,
                spent_fen INTEGER NOT NULL CHECK (spent_fen >= 0),
                PRIMARY KEY (campaign_id, day)
            );
            CREATE TABLE campaign_allocations (
                id INTEGER PRIMARY KEY,
                payment_key TEXT NOT NULL,
                transaction_id INTEGER NOT NULL,
                campaign_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                sponsor TEXT NOT NULL,
                wallet_id INTEGER NOT NULL,
                bill_account_id INTEGER,
                discount_fen INTEGER NOT NULL CHECK (discount_fen >= 0),
                points INTEGER NOT NULL CHECK (points >= 0),
                points_hold_id INTEGER,
                vest_at INTEGER,
                expires_at INTEGER,
                points_status TEXT CHECK (points_status IN ('pending', 'vested', 'expired', 'reversed')),
                points_remaining INTEGER NOT NULL DEFAULT 0,
                at INTEGER NOT NULL,
                day TEXT NOT NULL,
                week TEXT NOT NULL,
                month TEXT NOT NULL,
                reversed_at INTEGER,
                reversal_transaction_id INTEGER,
                UNIQUE (payment_key, campaign_id)
            );
            CREATE INDEX campaign_allocations_by_wallet ON campaign_allocations(campaign_id, wallet_id);
            CREATE INDEX campaign_allocations_by_account ON campaign_allocations(campaign_id, bill_account_id);
            CREATE INDEX campaign_allocations_by_payment ON campaign_allocations(payment_key);
            CREATE INDEX campaign_allocations_points ON campaign_allocations(points_status, vest_at) WHERE points > 0;
            CREATE TABLE campaign_explanations (
                payment_key TEXT PRIMARY KEY,
                transaction_id INTEGER,
                context TEXT NOT NULL,
                explanation TEXT NOT NULL,
                at INTEGER NOT NULL
            );
            CREATE INDEX campaign_explanations_by_transaction ON campaign_explanations(transaction_id);
            """),
    ]

    /// Registers the migrations, in order.
    public static func register(in migrator: inout DatabaseMigrator) {
        for migration in migrations {
            migrator.registerMigration(migration.name) { db in try db.execute(sql: migration.sql) }
        }
    }

    /// The same migrations on PostgreSQL.
    public static func postgres() throws -> [SQLMigration] {
        try migrations.map { SQLMigration($0.name, try SQLDialect.postgresSchema($0.sql)) }
    }
}
