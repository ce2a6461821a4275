import Foundation
import QDTestEngines
import GRDB
import QDSQL
import Wallet
import Testing

/// Runs the built `qdwallet` executable and captures what it writes.
struct CLIRunner {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String

        /// stdout parsed as one JSON object.
        func json() throws -> [String: Any] {
            let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
            return try #require(object as? [String: Any], "stdout is not a JSON object: \(stdout)")
        }
    }

    let directory: URL
    var environment: [String: String]

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "QDWALLET_DB")
    }

    var databasePath: String { directory.appendingPathComponent("qdwallet.sqlite").path }

    /// The database of a test that runs on this run's engine: the SQLite file, or (with
    /// `QDWALLET_TEST_ENGINE=postgres` and a server) a new, empty database on the server,
    /// dropped by `cleanUp`. The tests that use it speak to the database only through the CLI.
    private(set) var engineDatabase: String?

    /// Whether the engine's database of this run is PostgreSQL.
    static var onPostgres: Bool {
        ProcessInfo.processInfo.environment["QDWALLET_TEST_ENGINE"] == "postgres" && postgresServer != nil
    }

    /// `database` for this run's engine (see `engineDatabase`), made once.
    mutating func database() throws -> String {
        if let engineDatabase { return engineDatabase }
        guard Self.onPostgres, let server = Self.postgresServer else {
            engineDatabase = databasePath
            return databasePath
        }
        let name = "cli_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        try PostgresConnection(url: server).execute("CREATE DATABASE \(name)", [])
        var components = try #require(URLComponents(string: server))
        components.path = "/" + name
        let url = try #require(components.string)
        engineDatabase = url
        return url
    }

    /// The PostgreSQL server of this run (`QDWALLET_TEST_POSTGRES`), if any.
    static var postgresServer: String? {
        ProcessInfo.processInfo.environment["QDWALLET_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The engines an end-to-end test runs on: SQLite, and PostgreSQL when a server is given.
    static var engines: [String] { postgresServer == nil ? ["sqlite"] : ["sqlite", "postgres"] }

    /// A new, empty database on the server for one test (its URL), dropped afterwards.
    static func withPostgresDatabase(_ body: (String) throws -> Void) throws {
        let database = try TestEngine.newPostgresDatabase(prefix: "cli")
        defer { database.drop() }
        try body(database.url)
    }

    /// The executable beside the test bundle (`swift build` puts both in one folder).
    static let executable = TestEngine.builtExecutable("qdwallet", filePath: #filePath)

    func run(_ arguments: [String], stdin: String? = nil, executable: URL? = nil) throws -> Result {
        let process = Process()
        process.executableURL = executable ?? Self.executable
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = directory
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let stdoutData = out.fileHandleForReading.readDataToEndOfFile()
        let stderrData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdoutData, as: UTF8.self), stderr: String(decoding: stderrData, as: UTF8.self))
    }

    /// Runs statements on the test's database behind the CLI's back, on its engine (a forged
    /// row, a lock left by another host, a clock moved back).
    func write(_ body: (any SQLConnection) throws -> Void) throws {
        let url = engineDatabase ?? databasePath
        // A command running beside (a scheduler, a night) may hold SQLite's write lock a moment.
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let database: any SQLDatabase = url.hasPrefix("postgres") ? try PostgresDatabase(url: url) : SQLitePool(try DatabasePool(path: url, configuration: configuration))
        _ = try database.write { db in try body(db) }
    }

    func cleanUp() {
        try? FileManager.default.removeItem(at: directory)
        if let url = engineDatabase, url.hasPrefix("postgres"), let server = Self.postgresServer, let name = URLComponents(string: url)?.path.dropFirst() {
            _ = try? PostgresConnection(url: server).execute("DROP DATABASE \(name) WITH (FORCE)", [])
        }
    }
}

/// A valid resident ID number of its own for each test phone (Qingdao's address code, a
/// birth year and sequence drawn from the phone): one person, one verified wallet.
func residentID(forPhone phone: String) -> String {
    let n = Int(phone.suffix(5)) ?? 0
    let sequence = String(1_000 + n % 1_000).dropFirst()
    let body = "370202" + String(1940 + (n / 1_000) % 80) + "0101" + sequence
    return body + String(Validation.residentIDCheckCharacter(body)!)
}
