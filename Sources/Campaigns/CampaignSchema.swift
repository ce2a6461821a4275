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
        // What each wallet and bill account took of each campaign, per cap period (its day,
        // ISO week, month, and the whole campaign: '*'), standing allocations only, kept in
        // the payment's transaction: a cap is one indexed read however long the history.
        // Every period is kept, whatever the caps of the day say, so a cap added by a later
        // version counts what came before it. Filled from the allocations it sums.
        SQLMigration("campaigns-v2-cap-counters", """
            CREATE TABLE campaign_cap_use (
                campaign_id TEXT NOT NULL,
                scope TEXT NOT NULL CHECK (scope IN ('wallet', 'bill_account')),
                scope_id INTEGER NOT NULL,
                period TEXT NOT NULL CHECK (period IN ('day', 'week', 'month', 'campaign')),
                period_key TEXT NOT NULL,
                uses INTEGER NOT NULL CHECK (uses >= 0),
                discount_fen INTEGER NOT NULL CHECK (discount_fen >= 0),
                PRIMARY KEY (campaign_id, scope, scope_id, period, period_key)
            );
            INSERT INTO campaign_cap_use (campaign_id, scope, scope_id, period, period_key, uses, discount_fen)
                SELECT campaign_id, 'wallet', wallet_id, 'day', day, count(*), sum(discount_fen) FROM campaign_allocations
                WHERE reversed_at IS NULL GROUP BY campaign_id, wallet_id, day;
            INSERT INTO campaign_cap_use (campaign_id, scope, scope_id, period, period_key, uses, discount_fen)
                SELECT campaign_id, 'wallet', wallet_id, 'week', week, count(*), sum(discount_fen) FROM campaign_allocations
                WHERE reversed_at IS NULL GROUP BY campaign_id, wallet_id, week;
            INSERT INTO campaign_cap_use (campaign_id, scope, scope_id, period, period_key, uses, discount_fen)
                SELECT campaign_id, 'wallet', wallet_id, 'month', month, count(*), sum(discount_fen) FROM campaign_allocations
                WHERE reversed_at IS NULL GROUP BY campaign_id, wallet_id, month;
            INSERT INTO campaign_cap_use (campaign_id, scope, scope_id, period, period_key, uses, discount_fen)
                SELECT campaign_id, 'wallet', wallet_id, 'campaign', '*', count(*), sum(discount_fen) FROM campaign_allocations
                WHERE reversed_at IS NULL GROUP BY campaign_id, wallet_id;
            INSERT INTO campaign_cap_use (campaign_id, scope, scope_id, period, period_key, uses, discount_fen)
                SELECT campaign_id, 'bill_account', bill_account_id, 'day', day, count(*), sum(discount_fen) FROM campaign_allocations
                WHERE reversed_at IS NULL AND bill_account_id IS NOT NULL GROUP BY campaign_id, bill_account_id, day;
            INSERT INTO campaign_cap_use (campaign_id, scope, scope_id, period, period_key, uses, discount_fen)
                SELECT campaign_id, 'bill_account', bill_account_id, 'week', week, count(*), sum(discount_fen) FROM campaign_allocations
                WHERE reversed_at IS NULL AND bill_account_id IS NOT NULL GROUP BY campaign_id, bill_account_id, week;
            INSERT INTO campaign_cap_use (campaign_id, scope, scope_id, period, period_key, uses, discount_fen)
                SELECT campaign_id, 'bill_account', bill_account_id, 'month', month, count(*), sum(discount_fen) FROM campaign_allocations
                WHERE reversed_at IS NULL AND bill_account_id IS NOT NULL GROUP BY campaign_id, bill_account_id, month;
            INSERT INTO campaign_cap_use (campaign_id, scope, scope_id, period, period_key, uses, discount_fen)
                SELECT campaign_id, 'bill_account', bill_account_id, 'campaign', '*', count(*), sum(discount_fen) FROM campaign_allocations
                WHERE reversed_at IS NULL AND bill_account_id IS NOT NULL GROUP BY campaign_id, bill_account_id;
            """),
        // Which (scope, period) pairs of a campaign the cap counters keep, one bit a pair
        // (CampaignStore.pairBit: wallet day 1, week 2, month 4, campaign 8; bill account the
        // same times 16): those some loaded version's caps name, each filled from the standing
        // allocations when first named. A campaign counted before keeps every pair it has
        // counters for.
        SQLMigration("campaigns-v3-counted-pairs", """
            CREATE TABLE campaign_cap_counting (
                campaign_id TEXT PRIMARY KEY,
                pairs INTEGER NOT NULL CHECK (pairs BETWEEN 0 AND 255)
            );
            INSERT INTO campaign_cap_counting (campaign_id, pairs)
                SELECT campaign_id, sum(bit) FROM (
                    SELECT DISTINCT campaign_id, (CASE scope WHEN 'wallet' THEN 1 ELSE 16 END) * (CASE period WHEN 'day' THEN 1 WHEN 'week' THEN 2 WHEN 'month' THEN 4 ELSE 8 END) AS bit
                    FROM campaign_cap_use) counted
                GROUP BY campaign_id;
            """),
        // A payment's allocations are found through the unique key (payment_key, campaign_id),
        // whose first column is the payment: the index on the payment alone was a second
        // copy of it, written with every allocation.
        SQLMigration("campaigns-v4-one-index-by-payment", "DROP INDEX campaign_allocations_by_payment"),
        // SQLite checked each of these lists through a temporary b-tree built for every row
        // written; as comparisons they are a few compares (`SQLiteCheckLists`). Nothing to do on
        // PostgreSQL.
        SQLiteCheckLists.migration("campaigns-v5-checks-compared", [
            SQLiteCheckLists.List("campaign_allocations", "points_status", ["'pending'", "'vested'", "'expired'", "'reversed'"]),
            SQLiteCheckLists.List("campaign_cap_use", "period", ["'day'", "'week'", "'month'", "'campaign'"]),
        ]),
        // No read names an allocation's campaign and bill account (the cap counters answer
        // what the caps ask): a campaign's allocations are read through the index by
        // campaign and wallet, and this one was an entry more for every allocation.
        SQLMigration("campaigns-v6-one-index-by-campaign", "DROP INDEX campaign_allocations_by_account"),
        // A payment's explanation is keyed by its transaction, the only key it is read by
        // (`campaign explain`, a bill's receipt): the table's own key, in the order the night
        // writes them, where it was the payment's key (an index entry in the order of the
        // keys' texts) and an index by transaction beside it. A payment has one transaction
        // and a transaction one payment, so no row is lost or merged; a table that broke
        // that (two rows of one transaction, or one without) stops the upgrade.
        SQLMigration("campaigns-v7-explanations-by-transaction", """
            CREATE TABLE campaign_explanations_keyed (
                payment_key TEXT NOT NULL,
                transaction_id INTEGER NOT NULL PRIMARY KEY,
                context TEXT NOT NULL,
                explanation TEXT NOT NULL,
                at INTEGER NOT NULL
            );
            INSERT INTO campaign_explanations_keyed (payment_key, transaction_id, context, explanation, at)
                SELECT payment_key, transaction_id, context, explanation, at FROM campaign_explanations ORDER BY transaction_id;
            DROP TABLE campaign_explanations;
            ALTER TABLE campaign_explanations_keyed RENAME TO campaign_explanations;
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
