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

extension TestEngine {
    /// A new, empty database on the run's PostgreSQL server, for one test; `drop` removes it.
    public struct ScratchDatabase {
        public let url: String
        let name: String
        let admin: PostgresConnection

        public func drop() {
            _ = try? admin.execute("DROP DATABASE \(name) WITH (FORCE)", [])
        }
    }

    public struct NoServer: Error, CustomStringConvertible {
        public var description: String { "QDWALLET_TEST_POSTGRES names no PostgreSQL server" }
    }

    public static func newPostgresDatabase(prefix: String) throws -> ScratchDatabase {
        guard let server = postgresURL, var components = URLComponents(string: server) else { throw NoServer() }
        let name = prefix + "_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let admin = try PostgresConnection(url: server)
        try admin.execute("CREATE DATABASE \(name)", [])
        components.path = "/" + name
        guard let url = components.string else { throw NoServer() }
        return ScratchDatabase(url: url, name: name, admin: admin)
    }

    /// A product of this package's build (`qdwallet`), found beside the test bundle, where
    /// `swift build` puts both; `filePath` (a test's `#filePath`) gives the package's
    /// `.build/debug` as the last place to look.
    public static func builtExecutable(_ name: String, filePath: String) -> URL {
        let candidates = [
            Bundle.main.bundleURL.deletingLastPathComponent(),
            Bundle.main.bundleURL,
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build/debug"),
        ]
        for folder in candidates where FileManager.default.isExecutableFile(atPath: folder.appendingPathComponent(name).path) {
            return folder.appendingPathComponent(name)
        }
        return candidates[0].appendingPathComponent(name)
    }
}
