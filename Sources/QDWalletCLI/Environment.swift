import Foundation
import Logging

/// The composition root's view of the process environment: every `QDWALLET_*` variable the
/// `qdwallet` command reads is named and read here, and the libraries are handed only what
/// they need (the fetcher its credentials' paths, the data key its key or file). No library
/// reads the process environment itself. An empty variable counts as unset.
struct QDEnvironment: Sendable {
    /// Every variable, with what it sets.
    static let variables: [(name: String, sets: String)] = [
        ("QDWALLET_DB", "the database file, when --db is not given"),
        ("QDWALLET_JOBS_DIR", "the jobs folder, when --jobs-dir is not given"),
        ("QDWALLET_REPORTS_DIR", "where payment reports are written, when --reports-dir is not given"),
        ("QDWALLET_SCHEMA_DIR", "the folder of the feed and report XSDs"),
        ("QDWALLET_LOG_LEVEL", "trace, debug, info (default), notice, warning, error or critical"),
        ("QDWALLET_OPERATOR", "the operator named in the audit log (default: the user)"),
        ("QDWALLET_SQLITE_CACHE_MB", "SQLite's page cache per connection, 2 to 1024"),
        ("QDWALLET_DATA_KEY", "the personal-data key, base64 of 32 bytes"),
        ("QDWALLET_DATA_KEY_FILE", "a file holding the personal-data key (mode 600)"),
        ("QDWALLET_WEBHOOK_SECRET", "the secret notify signs its webhook bodies with"),
        ("QDWALLET_SSH_KEY", "the private key for sftp feeds and reports"),
        ("QDWALLET_SSH_KNOWN_HOSTS", "a known-hosts file for sftp servers without a pinned key"),
        ("QDWALLET_NETRC", "a netrc file with https credentials"),
    ]

    /// The `QDWALLET_*` variables that are set and not empty.
    let values: [String: String]

    init(_ environment: [String: String]) {
        values = environment.filter { $0.key.hasPrefix("QDWALLET_") && !$0.value.isEmpty }
    }

    /// This process's environment.
    static var process: QDEnvironment { QDEnvironment(ProcessInfo.processInfo.environment) }

    var database: String? { values["QDWALLET_DB"] }
    var jobsDirectory: String? { values["QDWALLET_JOBS_DIR"] }
    var reportsDirectory: String? { values["QDWALLET_REPORTS_DIR"] }
    var schemaDirectory: String? { values["QDWALLET_SCHEMA_DIR"] }
    var operatorName: String? { values["QDWALLET_OPERATOR"] }
    var sqliteCacheMB: String? { values["QDWALLET_SQLITE_CACHE_MB"] }
    var webhookSecret: [UInt8]? { values["QDWALLET_WEBHOOK_SECRET"].map { Array($0.utf8) } }
    var logLevel: Logger.Level { values["QDWALLET_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info }

    /// Whether a data key is given at all (the key itself is read only when a command needs it).
    var hasDataKey: Bool { dataKeyEnvironment.isEmpty == false }
    /// What `DataKey.fromEnvironment` reads.
    var dataKeyEnvironment: [String: String] { values.filter { $0.key == "QDWALLET_DATA_KEY" || $0.key == "QDWALLET_DATA_KEY_FILE" } }
    /// What the fetcher reads: the paths of its credentials, never the credentials.
    var fetcherEnvironment: [String: String] {
        values.filter { ["QDWALLET_SSH_KEY", "QDWALLET_SSH_KNOWN_HOSTS", "QDWALLET_NETRC"].contains($0.key) }
    }
}
