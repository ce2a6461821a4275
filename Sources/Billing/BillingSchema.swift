import GRDB
import QDSQL

/// The billing tables. A migration that has shipped is never edited.
public enum BillingSchema {
    /// The module's migrations in the order they shipped (SQLite's text; PostgreSQL takes
    /// them through `SQLDialect.postgresSchema`).
    public static let migrations: [SQLMigration] = [
        SQLMigration("billing-v1", """
            CREATE TABLE billers (
                code TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                category TEXT NOT NULL,
                account_id INTEGER NOT NULL UNIQUE REFERENCES ledger_accounts(id)
            );
            CREATE TABLE bill_accounts (
                id INTEGER PRIMARY KEY,
                wallet_id INTEGER NOT NULL REFERENCES wallets(id),
                biller TEXT NOT NULL REFERENCES billers(code),
                customer_no TEXT NOT NULL,
                autopay INTEGER NOT NULL CHECK (autopay IN (0, 1)),
                autopay_limit_fen INTEGER NOT NULL CHECK (autopay_limit_fen >= 0),
                status TEXT NOT NULL CHECK (status IN ('linked', 'unlinked')),
                linked_at INTEGER NOT NULL,
                unlinked_at INTEGER
            );
            CREATE UNIQUE INDEX bill_accounts_one_link ON bill_accounts(biller, customer_no) WHERE status = 'linked';
            CREATE INDEX bill_accounts_by_wallet ON bill_accounts(wallet_id);
            CREATE TABLE feeds (
                feed_id TEXT PRIMARY KEY,
                biller TEXT NOT NULL,
                business_date TEXT NOT NULL,
                sha256 BLOB NOT NULL,
                bytes INTEGER NOT NULL,
                bills INTEGER NOT NULL,
                cancels INTEGER NOT NULL,
                ctrl_sum_fen INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                ingested_at INTEGER NOT NULL,
                execution_id INTEGER NOT NULL
            );
            CREATE INDEX feeds_by_day ON feeds(biller, business_date);
            CREATE TABLE billing_runs (
                execution_id INTEGER NOT NULL,
                biller TEXT NOT NULL,
                business_date TEXT NOT NULL,
                feed_id TEXT,
                status TEXT NOT NULL CHECK (status IN ('processed', 'rejected', 'skipped')),
                error_code TEXT,
                error TEXT,
                at INTEGER NOT NULL,
                PRIMARY KEY (execution_id, biller)
            );
            CREATE TABLE bills (
                id INTEGER PRIMARY KEY,
                biller TEXT NOT NULL,
                bill_id TEXT NOT NULL,
                feed_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                business_date TEXT NOT NULL,
                customer_no TEXT NOT NULL,
                customer_name TEXT NOT NULL,
                district TEXT NOT NULL,
                period TEXT NOT NULL,
                usage TEXT NOT NULL,
                usage_unit TEXT NOT NULL,
                amount_fen INTEGER NOT NULL,
                late_fee_fen INTEGER NOT NULL,
                due_fen INTEGER NOT NULL,
                issue_date TEXT NOT NULL,
                due_date TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('new', 'payable', 'paid', 'unmatched', 'cancelled', 'refunded')),
                reason TEXT,
                wallet_id INTEGER,
                bill_account_id INTEGER,
                transaction_id INTEGER,
                paid_fen INTEGER,
                discount_fen INTEGER NOT NULL DEFAULT 0,
                points INTEGER NOT NULL DEFAULT 0,
                paid_at INTEGER,
                paid_via TEXT,
                paid_business_date TEXT,
                refund_transaction_id INTEGER,
                refunded_at INTEGER,
                refunded_business_date TEXT,
                cancelled_business_date TEXT,
                updated_at INTEGER NOT NULL,
                UNIQUE (biller, bill_id)
            );
            CREATE INDEX bills_by_feed ON bills(feed_id, seq);
            CREATE INDEX bills_new ON bills(id) WHERE status = 'new';
            CREATE INDEX bills_by_wallet ON bills(wallet_id, status);
            CREATE INDEX bills_paid_by_day ON bills(biller, paid_business_date) WHERE paid_business_date IS NOT NULL;
            CREATE INDEX bills_refunded_by_day ON bills(biller, refunded_business_date) WHERE refunded_business_date IS NOT NULL;
            CREATE TABLE feed_records (
                id INTEGER PRIMARY KEY,
                feed_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('bill', 'cancel')),
                bill_id TEXT NOT NULL,
                outcome TEXT NOT NULL,
                reason TEXT NOT NULL
            );
            CREATE INDEX feed_records_by_feed ON feed_records(feed_id, seq);
            CREATE TABLE feed_cancels (
                id INTEGER PRIMARY KEY,
                feed_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                biller TEXT NOT NULL,
                bill_id TEXT NOT NULL,
                reason TEXT NOT NULL,
                business_date TEXT NOT NULL,
                outcome TEXT
            );
            CREATE INDEX feed_cancels_open ON feed_cancels(id) WHERE outcome IS NULL;
            CREATE INDEX feed_cancels_by_feed ON feed_cancels(feed_id, seq);
            CREATE TABLE payment_reports (
                biller TEXT NOT NULL,
                business_date TEXT NOT NULL,
                report_id TEXT NOT NULL,
                path TEXT NOT NULL,
                sha256 BLOB NOT NULL,
                items INTEGER NOT NULL,
                paid_count INTEGER NOT NULL,
                paid_sum_fen INTEGER NOT NULL,
                refunded_count INTEGER NOT NULL,
                refunded_sum_fen INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                delivered_to TEXT,
                delivered_at INTEGER,
                delivery_error TEXT,
                PRIMARY KEY (biller, business_date)
            );
            """),
        SQLMigration("billing-v2-report-versions", """
            ALTER TABLE payment_reports ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
            CREATE TABLE payment_report_versions (
                biller TEXT NOT NULL,
                business_date TEXT NOT NULL,
                version INTEGER NOT NULL,
                report_id TEXT NOT NULL,
                path TEXT NOT NULL,
                sha256 BLOB NOT NULL,
                paid_count INTEGER NOT NULL,
                paid_sum_fen INTEGER NOT NULL,
                refunded_count INTEGER NOT NULL,
                refunded_sum_fen INTEGER NOT NULL,
                delivered_to TEXT NOT NULL,
                delivered_at INTEGER NOT NULL,
                PRIMARY KEY (biller, business_date, version)
            );
            CREATE TRIGGER payment_report_versions_no_update BEFORE UPDATE ON payment_report_versions BEGIN SELECT RAISE(ABORT, 'delivered report versions are append-only'); END;
            CREATE TRIGGER payment_report_versions_no_delete BEFORE DELETE ON payment_report_versions BEGIN SELECT RAISE(ABORT, 'delivered report versions are append-only'); END;
            """),
        // A feed's identity is (BillerCode, FeedId): keys become BILLER/FEEDID everywhere.
        SQLMigration("billing-v3-feed-identity", """
            UPDATE feed_records SET feed_id = coalesce((SELECT f.biller FROM feeds f WHERE f.feed_id = feed_records.feed_id), 'UNKNOWN') || '/' || feed_id;
            UPDATE feed_cancels SET feed_id = biller || '/' || feed_id;
            UPDATE bills SET feed_id = biller || '/' || feed_id;
            UPDATE feeds SET feed_id = biller || '/' || feed_id;
            """),
        SQLMigration("billing-v4-report-ledger-head", "ALTER TABLE payment_reports ADD COLUMN ledger_head TEXT"),
        // A payment report asks, for each bill paid or refunded on its day, whether a record
        // or a cancel of the day's feeds names it: one indexed read a bill, not a scan.
        SQLMigration("billing-v5-records-by-bill", """
            CREATE INDEX feed_records_by_bill ON feed_records(bill_id);
            CREATE INDEX feed_cancels_by_bill ON feed_cancels(bill_id);
            """),
        // A day's cancels are counted through an index of the day, not by reading every bill
        // of the biller (a report, the reconciliation: a cost that grew with the months kept).
        SQLMigration("billing-v6-cancelled-by-day",
                     "CREATE INDEX bills_cancelled_by_day ON bills(biller, cancelled_business_date) WHERE cancelled_business_date IS NOT NULL"),
        // The reminders (every few minutes) read the payable bills through an index of them
        // alone, not every bill kept: a cost that grows with the bills waiting, not with the
        // months. The nightly write appends to it in id order, as it does to `bills_new`.
        SQLMigration("billing-v7-payable-by-id", "CREATE INDEX bills_payable ON bills(id) WHERE status = 'payable'"),
        // The reminders read the bills to remind by their stage and due date: a run reads the
        // bills it reminds, not every bill waiting (those not due yet, those told already).
        // The stage is kept on the bill, moved in the transaction that queues the message.
        SQLMigration("billing-v8-reminder-stage", """
            ALTER TABLE bills ADD COLUMN reminded INTEGER NOT NULL DEFAULT 0;
            DROP INDEX bills_payable;
            CREATE INDEX bills_to_remind ON bills(reminded, due_date, id) WHERE status = 'payable' AND wallet_id IS NOT NULL;
            """),
        // A feed's bills are found by the feed alone. Keyed by (feed, sequence number), the
        // index took each bill of a feed at a random place, since a feed is written to `bills`
        // in wallet order; keyed by the feed, its entries follow the rows' own order (SQLite's
        // row id, PostgreSQL's row position): written at its end, and read in the order the
        // rows are stored. The day's report sorts the items itself.
        SQLMigration("billing-v9-bills-by-feed-alone", """
            DROP INDEX bills_by_feed;
            CREATE INDEX bills_by_feed ON bills(feed_id);
            """),
        // SQLite checked each of these lists through a temporary b-tree built for every row
        // written; as comparisons they are a few compares (`SQLiteCheckLists`). Nothing to do on
        // PostgreSQL.
        SQLiteCheckLists.migration("billing-v10-checks-compared", [
            SQLiteCheckLists.List("bills", "status", ["'new'", "'payable'", "'paid'", "'unmatched'", "'cancelled'", "'refunded'"]),
            SQLiteCheckLists.List("billing_runs", "status", ["'processed'", "'rejected'", "'skipped'"]),
        ]),
        // A wallet's autopay of a business day is read through its bills keyed by wallet,
        // status and paid day: the day's few, not every bill the wallet ever paid (a read a
        // wallet and night that grew with the months kept). The day is keyed as the read
        // compares it (`BillStore.autopayUsed`). Status changes moved the entry already; a
        // bill paid moves it once, as before.
        SQLMigration("billing-v11-wallet-paid-day", """
            DROP INDEX bills_by_wallet;
            CREATE INDEX bills_by_wallet ON bills(wallet_id, status, coalesce(paid_business_date, ''));
            """),
        // A payment is one bill's: the database refuses a second bill naming a transaction
        // another bill names, in the write that would do it, on both engines and with any
        // number of writers. The reconciliation looked for such pairs by grouping every paid
        // bill ever kept (a read that grew with the months); it has nothing left to look for.
        // The index also answers which bill records a payment (the reconciliation asks it for
        // each of the day's payments). A database where two bills already name one payment
        // (the reconciliation listed them as `duplicate` breaks) refuses this migration until
        // they are corrected.
        SQLMigration("billing-v12-one-bill-a-payment",
                     "CREATE UNIQUE INDEX bills_by_transaction ON bills(transaction_id) WHERE transaction_id IS NOT NULL"),
        // Every read of bills by wallet names the wallet: a bill no wallet links (a feed's
        // unmatched bills, a quarter of a night's in the benchmark's city) needs no entry.
        SQLMigration("billing-v13-wallet-bills-only", """
            DROP INDEX bills_by_wallet;
            CREATE INDEX bills_by_wallet ON bills(wallet_id, status, coalesce(paid_business_date, '')) WHERE wallet_id IS NOT NULL;
            """),
        // A feed's bills are the rows its move wrote: one statement, so their ids are one
        // range (on PostgreSQL another feed moved at the same moment may take ids inside
        // it). The feed keeps its first and last bill, and its bills are read as that range
        // of the table's own key with their feed compared: no index entry a bill for it. A
        // feed none of whose bills were moved keeps none.
        SQLMigration("billing-v14-feed-bill-range", """
            ALTER TABLE feeds ADD COLUMN first_bill INTEGER;
            ALTER TABLE feeds ADD COLUMN last_bill INTEGER;
            UPDATE feeds SET first_bill = (SELECT min(b.id) FROM bills b WHERE b.feed_id = feeds.feed_id),
                last_bill = (SELECT max(b.id) FROM bills b WHERE b.feed_id = feeds.feed_id);
            DROP INDEX bills_by_feed;
            """),
        // A wallet's bills are its own and those of the customer numbers it links: the
        // second half read by biller and customer number. As one condition (`wallet_id = ?
        // OR EXISTS (a link)`) no index answered it, and every request read every bill kept.
        SQLMigration("billing-v15-bills-by-customer", "CREATE INDEX bills_by_customer ON bills(biller, customer_no)"),
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
