import ArgumentParser
import Foundation
import QDSQL

/// `--db` and `--json`, accepted after the command words like every other option.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "The database: a SQLite file, or postgres://user@host:port/dbname?sslmode=... for a PostgreSQL server (default: $QDWALLET_DB, else ./qdwallet.sqlite); only init (and the demo) create one. A PostgreSQL password comes from PGPASSFILE/~/.pgpass or PGPASSWORD.")
    var db: String?

    @Flag(name: .long, help: "Write one JSON document to stdout instead of text.")
    var json = false

    @Option(name: .customLong("reports-dir"), help: "Where payment reports are written (default: $QDWALLET_REPORTS_DIR, else reports/ beside the database).")
    var reportsDirectory: String?

    /// The database path after the environment and the default.
    var databasePath: String {
        if let db, !db.isEmpty { return db }
        if let fromEnvironment = QDEnvironment.process.database {
            return fromEnvironment
        }
        return "./qdwallet.sqlite"
    }

    /// Whether the database is a PostgreSQL server (a `postgres://` or `postgresql://` URL).
    var isPostgres: Bool { AppDatabase.isPostgres(databasePath) }

    /// The database as it may be shown: a URL without its password.
    var databaseDisplay: String { isPostgres ? PostgresConnection.redact(databasePath) : databasePath }

    /// The folder feeds and reports go beside by default: the database file's, or the
    /// current folder for a server.
    var databaseFolder: String {
        isPostgres ? FileManager.default.currentDirectoryPath : URL(fileURLWithPath: databasePath).standardizedFileURL.deletingLastPathComponent().path
    }
}
