import GRDB
import QDSQL

/// The wallet's tables. A migration that has shipped is never edited.
public enum WalletSchema {
    /// The module's migrations in the order they shipped (SQLite's text; PostgreSQL takes
    /// them through `SQLDialect.postgresSchema`).
    public static let migrations: [SQLMigration] = [
        SQLMigration("wallet-v1", v1),
        SQLMigration("wallet-v2-merchant-qr-names", v2MerchantQRNames),
        SQLMigration("wallet-v3-data-key", v3DataKey),
        SQLMigration("wallet-v4-autopay-daily-limit", "ALTER TABLE wallets ADD COLUMN autopay_daily_limit_fen INTEGER CHECK (autopay_daily_limit_fen IS NULL OR autopay_daily_limit_fen >= 0)"),
        // A message being delivered is claimed by one run for a bounded lease, so two live
        // runs never send it both.
        SQLMigration("wallet-v5-outbox-claims", """
            ALTER TABLE outbox ADD COLUMN claimed_by INTEGER;
            ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
            """),
        // Who did what: append-only, like the journal.
        SQLMigration("wallet-v6-audit-log", """
            CREATE TABLE audit_log (
                id INTEGER PRIMARY KEY,
                at INTEGER NOT NULL,
                operator TEXT NOT NULL,
                command TEXT NOT NULL,
                arguments TEXT NOT NULL,
                outcome TEXT NOT NULL,
                wallet_id INTEGER
            );
            CREATE INDEX audit_log_by_time ON audit_log(at);
            CREATE INDEX audit_log_by_wallet ON audit_log(wallet_id, at) WHERE wallet_id IS NOT NULL;
            CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
            CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
            """),
        // What each wallet paid from its balance, per usage period (0: its whole life, else a
        // calendar year in Shanghai), kept in the payment's transaction: a class limit is one
        // indexed read, whatever the wallet's history. Filled from the movements it sums.
        // The monitoring's count of recent payments walks only balance payments.
        SQLMigration("wallet-v7-usage-counters", """
            CREATE TABLE wallet_usage (
                wallet_id INTEGER NOT NULL REFERENCES wallets(id),
                period INTEGER NOT NULL CHECK (period = 0 OR period BETWEEN 1900 AND 9999),
                balance_payments_fen INTEGER NOT NULL,
                PRIMARY KEY (wallet_id, period)
            );
            INSERT INTO wallet_usage (wallet_id, period, balance_payments_fen)
                SELECT wallet_id, 0, -sum(amount_fen) FROM wallet_movements WHERE balance_payment = 1 GROUP BY wallet_id;
            INSERT INTO wallet_usage (wallet_id, period, balance_payments_fen)
                SELECT wallet_id, CAST(substr(month, 1, 4) AS INTEGER), -sum(amount_fen) FROM wallet_movements WHERE balance_payment = 1 GROUP BY wallet_id, substr(month, 1, 4);
            CREATE INDEX wallet_movements_payments ON wallet_movements(wallet_id, created_at) WHERE balance_payment = 1 AND amount_fen < 0;
            """),
        // When the payment password was last replaced (not first set): the app asks both
        // factors for a while after a reset.
        SQLMigration("wallet-v8-password-reset", "ALTER TABLE wallets ADD COLUMN password_reset_at INTEGER"),
        // SQLite checked each of these lists through a temporary b-tree built for every row
        // written; as comparisons they are a few compares (`SQLiteCheckLists`). Nothing to do on
        // PostgreSQL.
        SQLiteCheckLists.migration("wallet-v9-checks-compared", [
            SQLiteCheckLists.List("outbox", "status", ["'pending'", "'delivered'", "'dead'"]),
            SQLiteCheckLists.List("wallets", "kyc_class", ["1", "2", "3"]),
            SQLiteCheckLists.List("kyc_submissions", "status", ["'submitted'", "'approved'", "'rejected'"]),
            SQLiteCheckLists.List("card_operations", "status", ["'pending'", "'completed'", "'failed'"]),
        ]),
        // A month's movements are the wallet's movements of the month's times, read through
        // the index by wallet and time (`MovementStore.monthRange`): the index by month was
        // an entry more for every movement written.
        SQLMigration("wallet-v10-months-by-time", "DROP INDEX wallet_movements_by_month"),
    ]

    /// Registers the migrations, in order.
    public static func register(in migrator: inout DatabaseMigrator) {
        migrator.register(migrations)
    }

    /// The same migrations on PostgreSQL.
    public static func postgres() throws -> [SQLMigration] {
        try migrations.map { SQLMigration($0.name, try SQLDialect.postgresSchema($0.sql)) }
    }

    /// The ASCII name of QR tag 59 (NULL: derived from the name) and the city in Chinese for
    /// the language template (tag 64).
    static let v2MerchantQRNames = """
        ALTER TABLE merchants ADD COLUMN name_ascii TEXT;
        ALTER TABLE merchants ADD COLUMN city_local TEXT;
        """

    /// The database's data key (its id and a check value, never the key), and a keyed
    /// fingerprint of each submitted ID number, so one person is verified on one wallet.
    static let v3DataKey = """
        CREATE TABLE wallet_data_key (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            key_id BLOB NOT NULL,
            check_value BLOB NOT NULL,
            recorded_at INTEGER NOT NULL
        );
        ALTER TABLE kyc_submissions ADD COLUMN id_number_fingerprint BLOB;
        CREATE INDEX kyc_submissions_by_fingerprint ON kyc_submissions(id_number_fingerprint) WHERE id_number_fingerprint IS NOT NULL;
        """

    static let v1 = """
        CREATE TABLE wallets (
            id INTEGER PRIMARY KEY,
            phone TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            frozen INTEGER NOT NULL DEFAULT 0 CHECK (frozen IN (0, 1)),
            kyc_class INTEGER NOT NULL DEFAULT 1 CHECK (kyc_class IN (1, 2, 3)),
            kyc_verified INTEGER NOT NULL DEFAULT 0 CHECK (kyc_verified IN (0, 1)),
            opened_at INTEGER NOT NULL,
            wallet_account_id INTEGER NOT NULL UNIQUE REFERENCES ledger_accounts(id),
            points_account_id INTEGER NOT NULL UNIQUE REFERENCES ledger_accounts(id),
            password_hash BLOB,
            password_salt BLOB,
            password_iterations INTEGER,
            failed_password_count INTEGER NOT NULL DEFAULT 0,
            locked_until INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE kyc_submissions (
            id INTEGER PRIMARY KEY,
            wallet_id INTEGER NOT NULL REFERENCES wallets(id),
            name_sealed BLOB NOT NULL,
            id_number_sealed BLOB NOT NULL,
            id_number_masked TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('submitted', 'approved', 'rejected')),
            kyc_class INTEGER,
            reason TEXT,
            submitted_at INTEGER NOT NULL,
            reviewed_at INTEGER
        );
        CREATE INDEX kyc_submissions_by_wallet ON kyc_submissions(wallet_id, id);
        CREATE TABLE cards (
            id INTEGER PRIMARY KEY,
            wallet_id INTEGER NOT NULL REFERENCES wallets(id),
            bank TEXT NOT NULL,
            number_sealed BLOB NOT NULL,
            number_fingerprint BLOB NOT NULL,
            masked TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('bound', 'unbound')),
            bound_at INTEGER NOT NULL,
            unbound_at INTEGER
        );
        CREATE INDEX cards_by_wallet ON cards(wallet_id);
        CREATE UNIQUE INDEX cards_one_binding ON cards(wallet_id, number_fingerprint) WHERE status = 'bound';
        CREATE TABLE card_operations (
            id INTEGER PRIMARY KEY,
            card_id INTEGER NOT NULL REFERENCES cards(id),
            wallet_id INTEGER NOT NULL REFERENCES wallets(id),
            kind TEXT NOT NULL CHECK (kind IN ('topup', 'withdrawal')),
            amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
            status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
            transaction_id INTEGER NOT NULL UNIQUE,
            settled_transaction_id INTEGER,
            created_at INTEGER NOT NULL,
            settled_at INTEGER
        );
        CREATE INDEX card_operations_pending ON card_operations(card_id) WHERE status = 'pending';
        CREATE TABLE merchants (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            category TEXT NOT NULL,
            city TEXT NOT NULL,
            mcc TEXT NOT NULL,
            account_id INTEGER NOT NULL UNIQUE REFERENCES ledger_accounts(id),
            created_at INTEGER NOT NULL
        );
        CREATE TABLE wallet_movements (
            id INTEGER PRIMARY KEY,
            wallet_id INTEGER NOT NULL REFERENCES wallets(id),
            kind TEXT NOT NULL,
            counterparty TEXT NOT NULL,
            category TEXT NOT NULL,
            amount_fen INTEGER NOT NULL,
            discount_fen INTEGER NOT NULL DEFAULT 0,
            points INTEGER NOT NULL DEFAULT 0,
            balance_payment INTEGER NOT NULL CHECK (balance_payment IN (0, 1)),
            transaction_id INTEGER NOT NULL,
            reference TEXT,
            created_at INTEGER NOT NULL,
            month TEXT NOT NULL,
            UNIQUE (wallet_id, transaction_id)
        );
        CREATE INDEX wallet_movements_by_wallet ON wallet_movements(wallet_id, created_at);
        CREATE INDEX wallet_movements_by_month ON wallet_movements(wallet_id, month, kind);
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            message_id TEXT NOT NULL UNIQUE,
            wallet_id INTEGER REFERENCES wallets(id),
            kind TEXT NOT NULL,
            urgent INTEGER NOT NULL CHECK (urgent IN (0, 1)),
            payload TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            not_before INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            delivered_at INTEGER
        );
        CREATE INDEX outbox_pending ON outbox(status, next_attempt_at);
        """
}
