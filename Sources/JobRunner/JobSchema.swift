import GRDB
import QDSQL

/// The job repository's tables. A migration that has shipped is never edited.
public enum JobSchema {
    /// The module's migrations in the order they shipped (SQLite's text; PostgreSQL takes
    /// them through `SQLDialect.postgresSchema`).
    public static let migrations: [SQLMigration] = [
        SQLMigration("jobs-v1", """
            CREATE TABLE job_instances (
                id INTEGER PRIMARY KEY,
                job_name TEXT NOT NULL,
                instance_key TEXT NOT NULL,
                parameters TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                completed_at INTEGER,
                UNIQUE (job_name, instance_key)
            );
            CREATE TABLE job_executions (
                id INTEGER PRIMARY KEY,
                instance_id INTEGER NOT NULL REFERENCES job_instances(id),
                status TEXT NOT NULL CHECK (status IN ('started', 'completed', 'failed', 'stopped', 'abandoned')),
                forced INTEGER NOT NULL DEFAULT 0,
                owner TEXT NOT NULL,
                parameters TEXT NOT NULL,
                started_at INTEGER NOT NULL,
                ended_at INTEGER,
                heartbeat_at INTEGER NOT NULL,
                exit_message TEXT,
                summary TEXT
            );
            CREATE INDEX job_executions_by_instance ON job_executions(instance_id, id);
            CREATE INDEX job_executions_by_end ON job_executions(ended_at);
            CREATE TABLE job_step_executions (
                id INTEGER PRIMARY KEY,
                execution_id INTEGER NOT NULL REFERENCES job_executions(id),
                step_name TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('started', 'completed', 'failed', 'stopped', 'abandoned')),
                read_count INTEGER NOT NULL DEFAULT 0,
                written_count INTEGER NOT NULL DEFAULT 0,
                skipped_count INTEGER NOT NULL DEFAULT 0,
                failed_count INTEGER NOT NULL DEFAULT 0,
                chunks INTEGER NOT NULL DEFAULT 0,
                checkpoint_version INTEGER NOT NULL,
                checkpoint BLOB NOT NULL,
                started_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                ended_at INTEGER,
                UNIQUE (execution_id, step_name)
            );
            CREATE TABLE job_locks (
                job_name TEXT PRIMARY KEY,
                execution_id INTEGER NOT NULL REFERENCES job_executions(id),
                owner TEXT NOT NULL,
                acquired_at INTEGER NOT NULL,
                heartbeat_at INTEGER NOT NULL
            );
            CREATE TABLE job_schedules (
                job_name TEXT PRIMARY KEY,
                last_fire_at INTEGER NOT NULL
            );
            """),
        // Fires a scheduler could not catch up (beyond catch_up_max): left unrun, and shown.
        SQLMigration("jobs-v2-unrun-fires", """
            CREATE TABLE job_unrun_fires (
                job_name TEXT NOT NULL,
                fire_at INTEGER NOT NULL,
                recorded_at INTEGER NOT NULL,
                PRIMARY KEY (job_name, fire_at)
            );
            """),
        // SQLite checked each of these lists through a temporary b-tree built for every row
        // written; as comparisons they are a few compares (`SQLiteCheckLists`). Nothing to do on
        // PostgreSQL.
        SQLiteCheckLists.migration("jobs-v3-checks-compared", [
            SQLiteCheckLists.List("job_executions", "status", ["'started'", "'completed'", "'failed'", "'stopped'", "'abandoned'"]),
            SQLiteCheckLists.List("job_step_executions", "status", ["'started'", "'completed'", "'failed'", "'stopped'", "'abandoned'"]),
        ]),
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
