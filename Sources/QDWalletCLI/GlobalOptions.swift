import ArgumentParser
import Foundation

/// `--db` and `--json`, accepted after the command words like every other option.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "The database file (default: $QDWALLET_DB, else ./qdwallet.sqlite); only init (and the demo) create one.")
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
}
