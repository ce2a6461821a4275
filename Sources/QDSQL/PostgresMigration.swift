import Foundation

/// A named step of a module's schema on one engine. Shipped migrations are never edited;
/// changes are new migrations appended after them.
public struct SQLMigration: Sendable {
    public let name: String
    public let sql: String

    public init(_ name: String, _ sql: String) {
        self.name = name
        self.sql = sql
    }
}

/// The schema's side of PostgreSQL: migrations applied once, in order, and private schemas
/// for tests and benchmarks.
extension PostgresDatabase {
    /// Applies the migrations not applied yet, in order, each in its own transaction and
    /// recorded by name; one process at a time (an advisory lock), so two `init`s racing
    /// apply each migration once.
    public func migrate(_ migrations: [SQLMigration]) throws {
        try withConnection { connection in
            try connection.execute("BEGIN", [])
            do {
                try connection.execute("SELECT pg_advisory_xact_lock(?)", [.integer(Self.writersLock)])
                try connection.script("CREATE TABLE IF NOT EXISTS qdwallet_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
                let applied = Set(try connection.texts("SELECT name FROM qdwallet_migrations"))
                for migration in migrations where !applied.contains(migration.name) {
                    try connection.script(migration.sql)
                    try connection.execute("INSERT INTO qdwallet_migrations (name) VALUES (?)", [.text(migration.name)])
                }
                try connection.execute("COMMIT", [])
            } catch {
                _ = try? connection.execute("ROLLBACK", [])
                throw error
            }
        }
    }

    /// A database in a new schema of its own on the server, with `migrations` applied: a
    /// test's private database (drop it with `dropSchema`).
    public static func inNewSchema(url: String, prefix: String = "t", migrations: [SQLMigration], options: Options = Options()) throws -> PostgresDatabase {
        let schema = prefix + "_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try PostgresConnection(url: url, connectTimeoutSeconds: options.connectTimeoutSeconds).execute("CREATE SCHEMA \(schema)", [])
        var options = options
        options.schema = schema
        let database = try PostgresDatabase(url: url, options: options)
        try database.migrate(migrations)
        return database
    }

    /// Drops this database's schema and everything in it (a test's private database).
    public func dropSchema() throws {
        guard let schema = options.schema else { return }
        closeIdle()
        try PostgresConnection(url: url, connectTimeoutSeconds: options.connectTimeoutSeconds).execute("DROP SCHEMA \(schema) CASCADE", [])
    }

    /// The names of the migrations applied so far (empty: a database without qdwallet's
    /// schema).
    public func appliedMigrations() throws -> [String] {
        try read { sql in
            guard try sql.exists("SELECT 1 FROM pg_tables WHERE tablename = 'qdwallet_migrations' AND schemaname = current_schema()") else { return [] }
            return try sql.texts("SELECT name FROM qdwallet_migrations ORDER BY applied_at, name")
        }
    }
}
