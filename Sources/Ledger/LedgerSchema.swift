import GRDB
import QDSQL

/// The ledger's tables. A migration that has shipped is never edited: changes are new
/// migrations appended below.
public enum LedgerSchema {
    /// Registers the ledger's migrations, in order.
    public static func register(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("ledger-v1") { db in
            try db.execute(sql: v1)
        }
        migrator.register([checksCompared, byEffectiveDay])
    }

    /// The reconciliation reads a day's transactions (its payments, what each biller's account
    /// moved) through an index of the day they are effective, not by reading the journal from
    /// its first transaction: a cost that grows with the day, not with the months kept. Keyed
    /// with the id, so that a day's payments, which share one effective time, are paged in id
    /// order from where the last page ended.
    static let byEffectiveDay = SQLMigration("ledger-transactions-by-effective-day",
                                             "CREATE INDEX ledger_transactions_by_effective ON ledger_transactions(effective_at, id)")

    /// SQLite checked each of these lists through a temporary b-tree built for every row
    /// written; as comparisons they are a few compares (`SQLiteCheckLists`). Nothing to do on
    /// PostgreSQL.
    static let checksCompared = SQLiteCheckLists.migration("ledger-checks-compared", [
        SQLiteCheckLists.List("ledger_transactions", "kind", ["'transfer'", "'hold'", "'hold_post'", "'hold_void'", "'hold_expire'", "'reversal'"]),
        SQLiteCheckLists.List("ledger_hold_resolutions", "outcome", ["'posted'", "'voided'", "'expired'"]),
    ])

    private static let appendOnlyTables = [
        "ledger_transactions", "ledger_entries", "ledger_holds",
        "ledger_hold_resolutions", "ledger_idempotency", "ledger_account_rule_changes",
    ]

    static let v1: String = """
        CREATE TABLE ledger_accounts (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL UNIQUE,
            asset TEXT NOT NULL CHECK (asset IN ('CNY', 'PTS')),
            kind TEXT NOT NULL,
            debits_must_not_exceed_credits INTEGER NOT NULL CHECK (debits_must_not_exceed_credits IN (0, 1)),
            credits_must_not_exceed_debits INTEGER NOT NULL CHECK (credits_must_not_exceed_debits IN (0, 1)),
            overdraft_limit INTEGER NOT NULL CHECK (overdraft_limit >= 0),
            frozen INTEGER NOT NULL CHECK (frozen IN (0, 1)),
            closed INTEGER NOT NULL CHECK (closed IN (0, 1)),
            debits_posted INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
            credits_posted INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
            debits_pending INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
            credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
            entry_seq INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE ledger_account_rule_changes (
            id INTEGER PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES ledger_accounts(id),
            debits_must_not_exceed_credits INTEGER NOT NULL,
            credits_must_not_exceed_debits INTEGER NOT NULL,
            overdraft_limit INTEGER NOT NULL,
            frozen INTEGER NOT NULL,
            closed INTEGER NOT NULL,
            reason TEXT NOT NULL,
            at INTEGER NOT NULL
        );
        CREATE TABLE ledger_transactions (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('transfer', 'hold', 'hold_post', 'hold_void', 'hold_expire', 'reversal')),
            idempotency_key TEXT NOT NULL,
            ref_id INTEGER REFERENCES ledger_transactions(id),
            recorded_at INTEGER NOT NULL,
            effective_at INTEGER NOT NULL,
            memo TEXT NOT NULL,
            prev_hash BLOB NOT NULL,
            hash BLOB NOT NULL
        );
        CREATE UNIQUE INDEX ledger_transactions_one_reversal
            ON ledger_transactions(ref_id) WHERE kind = 'reversal';
        CREATE TABLE ledger_entries (
            transaction_id INTEGER NOT NULL,
            leg INTEGER NOT NULL,
            account_id INTEGER NOT NULL,
            asset TEXT NOT NULL,
            side INTEGER NOT NULL CHECK (side IN (0, 1)),
            amount INTEGER NOT NULL CHECK (amount > 0),
            balance_after INTEGER NOT NULL,
            account_seq INTEGER NOT NULL,
            recorded_at INTEGER NOT NULL,
            PRIMARY KEY (transaction_id, leg)
        ) WITHOUT ROWID;
        CREATE INDEX ledger_entries_by_account
            ON ledger_entries(account_id, recorded_at, account_seq);
        CREATE TABLE ledger_holds (
            id INTEGER PRIMARY KEY REFERENCES ledger_transactions(id),
            debit_account_id INTEGER NOT NULL,
            credit_account_id INTEGER NOT NULL,
            asset TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount > 0),
            expires_at INTEGER
        );
        CREATE INDEX ledger_holds_by_expiry ON ledger_holds(expires_at) WHERE expires_at IS NOT NULL;
        CREATE TABLE ledger_hold_resolutions (
            hold_id INTEGER PRIMARY KEY REFERENCES ledger_holds(id),
            transaction_id INTEGER NOT NULL UNIQUE REFERENCES ledger_transactions(id),
            outcome TEXT NOT NULL CHECK (outcome IN ('posted', 'voided', 'expired')),
            amount_posted INTEGER NOT NULL CHECK (amount_posted >= 0)
        );
        CREATE TABLE ledger_idempotency (
            key TEXT PRIMARY KEY,
            request_hash BLOB NOT NULL,
            transaction_id INTEGER,
            refusal TEXT,
            recorded_at INTEGER NOT NULL,
            CHECK ((transaction_id IS NULL) <> (refusal IS NULL))
        ) WITHOUT ROWID;
        """ + appendOnlyTables.map { table in
            """

            CREATE TRIGGER \(table)_no_update BEFORE UPDATE ON \(table)
                BEGIN SELECT RAISE(ABORT, '\(table) is append-only: correct with a reversal'); END;
            CREATE TRIGGER \(table)_no_delete BEFORE DELETE ON \(table)
                BEGIN SELECT RAISE(ABORT, '\(table) is append-only: correct with a reversal'); END;
            """
        }.joined()

    /// The same tables on PostgreSQL: the shipped DDL through the one translation
    /// (`SQLDialect.postgresSchema`: 64-bit integers, bytea, the refusing triggers in
    /// PL/pgSQL), and on PostgreSQL also a refused TRUNCATE of the journal, which SQLite does
    /// not have.
    public static var postgres: [SQLMigration] {
        get throws {
            let truncate = appendOnlyTables.map { table in
                """

                CREATE FUNCTION \(table)_no_truncate_refuse() RETURNS trigger LANGUAGE plpgsql AS $refuse$
                BEGIN
                    RAISE EXCEPTION '\(table) is append-only: correct with a reversal';
                END
                $refuse$;
                CREATE TRIGGER \(table)_no_truncate BEFORE TRUNCATE ON \(table) FOR EACH STATEMENT EXECUTE FUNCTION \(table)_no_truncate_refuse();
                """
            }.joined()
            return [SQLMigration("ledger-v1", try SQLDialect.postgresSchema(v1) + truncate),
                    SQLMigration("ledger-v2-concurrent", postgresConcurrent), SQLMigration(checksCompared.name, checksCompared.sql),
                    SQLMigration(byEffectiveDay.name, try SQLDialect.postgresSchema(byEffectiveDay.sql))]
        }
    }

    /// What many writers at once need on PostgreSQL (the design is in the README, "PostgreSQL:
    /// concurrency"):
    /// - transaction ids from a sequence (a gap is a transaction that rolled back);
    /// - the system accounts' totals split over sub-rows (`ledger_account_shards`, summed on
    ///   read; a writer adds to one no other holds), so that the biller, sponsor and clearing
    ///   accounts every payment credits or debits are never a row writers wait for;
    /// - the hash chain as seals (`ledger_seals`): each journal row carries the hash of its own
    ///   content, and a seal chains it into one total order when it is committed, taken by
    ///   whichever writer holds the chain's lock (`ledger_unsealed` is the queue of rows not yet
    ///   sealed). The transactions written before this migration are queued by it, and sealed
    ///   in id order by the first writer after it.
    static let postgresConcurrent: String = """
        CREATE SEQUENCE ledger_transaction_ids;
        SELECT setval('ledger_transaction_ids', coalesce((SELECT max(id) FROM ledger_transactions), 0) + 1, false);
        CREATE TABLE ledger_account_shards (
            account_id BIGINT NOT NULL REFERENCES ledger_accounts(id),
            shard INTEGER NOT NULL,
            debits_posted BIGINT NOT NULL DEFAULT 0,
            credits_posted BIGINT NOT NULL DEFAULT 0,
            debits_pending BIGINT NOT NULL DEFAULT 0,
            credits_pending BIGINT NOT NULL DEFAULT 0,
            entries BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (account_id, shard)
        );
        CREATE TABLE ledger_seals (
            pos BIGINT PRIMARY KEY CHECK (pos > 0),
            transaction_id BIGINT NOT NULL UNIQUE REFERENCES ledger_transactions(id),
            hash BYTEA NOT NULL
        );
        CREATE TABLE ledger_unsealed (
            transaction_id BIGINT PRIMARY KEY REFERENCES ledger_transactions(id),
            hash BYTEA NOT NULL
        );
        CREATE INDEX ledger_entries_by_account_seq ON ledger_entries(account_id, account_seq);
        CREATE FUNCTION ledger_seals_refuse() RETURNS trigger LANGUAGE plpgsql AS $refuse$
        BEGIN
            RAISE EXCEPTION 'ledger_seals is append-only: the chain is never rewritten';
        END
        $refuse$;
        CREATE TRIGGER ledger_seals_no_update BEFORE UPDATE OR DELETE ON ledger_seals FOR EACH ROW EXECUTE FUNCTION ledger_seals_refuse();
        CREATE TRIGGER ledger_seals_no_truncate BEFORE TRUNCATE ON ledger_seals FOR EACH STATEMENT EXECUTE FUNCTION ledger_seals_refuse();
        INSERT INTO ledger_unsealed (transaction_id, hash) SELECT id, hash FROM ledger_transactions;
        """
}
