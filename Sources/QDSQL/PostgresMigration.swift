import Foundation
import GRDB

/// A named step of a module's schema on one engine. Shipped migrations are never edited;
/// changes are new migrations appended after them.
public struct SQLMigration: Sendable {
    public let name: String
    public let sql: String
    /// A step SQLite takes instead of `sql` (`sql` is then PostgreSQL's alone): a change
    /// SQLite's DDL cannot say.
    public let sqlite: (@Sendable (Database) throws -> Void)?

    public init(_ name: String, _ sql: String) {
        self.name = name
        self.sql = sql
        self.sqlite = nil
    }

    public init(_ name: String, postgres: String, sqlite: @escaping @Sendable (Database) throws -> Void) {
        self.name = name
        self.sql = postgres
        self.sqlite = sqlite
    }

    /// Whether the step only creates or drops indexes (its SQL taken on both engines): it
    /// changes no row, so no foreign key can be broken by it.
    public var buildsIndexesOnly: Bool {
        guard sqlite == nil else { return false }
        let statements = sql.split(separator: ";").map { part in
            part.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }.joined(separator: " ")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }.filter { !$0.isEmpty }
        return !statements.isEmpty && statements.allSatisfy {
            $0.range(of: #"^(CREATE\s+(UNIQUE\s+)?INDEX|DROP\s+INDEX)\s"#, options: [.regularExpression, .caseInsensitive]) != nil
        }
    }
}

extension DatabaseMigrator {
    /// Registers a module's migrations on SQLite, in order: each its SQLite step, or its SQL.
    /// A step that only builds indexes runs with the foreign keys on and is not followed by
    /// GRDB's check of every foreign key in the database (`PRAGMA foreign_key_check`, which
    /// reads every row of every table that has one: an upgrade's cost that grows with the
    /// months kept). Every other step turns them off and checks them all before it commits.
    public mutating func register(_ migrations: [SQLMigration]) {
        for migration in migrations {
            registerMigration(migration.name, foreignKeyChecks: migration.buildsIndexesOnly ? .immediate : .deferred) { db in
                if let step = migration.sqlite { try step(db) } else { try db.execute(sql: migration.sql) }
            }
        }
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
