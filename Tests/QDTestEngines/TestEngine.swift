import Foundation
import QDSQL

/// The engine the database tests run on: SQLite, or PostgreSQL when
/// `QDWALLET_TEST_ENGINE=postgres` and `QDWALLET_TEST_POSTGRES` names a server
/// (`Tests/test.sh` runs the ported modules' tests once on each; `Tests/Postgres/with-postgres.sh`
/// starts a throwaway server).
public enum TestEngine {
    public static var postgresURL: String? {
        ProcessInfo.processInfo.environment["QDWALLET_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Whether this run's database tests are on PostgreSQL.
    public static var onPostgres: Bool {
        ProcessInfo.processInfo.environment["QDWALLET_TEST_ENGINE"] == "postgres" && postgresURL != nil
    }

    /// A private PostgreSQL database (a new schema, dropped with `dropSchema`) with
    /// `migrations` applied; nil on SQLite.
    public static func postgres(_ prefix: String, migrations: () throws -> [SQLMigration]) throws -> PostgresDatabase? {
        guard onPostgres, let url = postgresURL else { return nil }
        return try PostgresDatabase.inNewSchema(url: url, prefix: prefix, migrations: try migrations())
    }

    /// Another pool on the same private PostgreSQL database, as another process would have.
    public static func anotherPool(_ database: PostgresDatabase) throws -> PostgresDatabase {
        try PostgresDatabase(url: database.url, options: database.options)
    }
}
