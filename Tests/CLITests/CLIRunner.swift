import Foundation
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

    /// The PostgreSQL server of this run (`QDWALLET_TEST_POSTGRES`), if any.
    static var postgresServer: String? {
        ProcessInfo.processInfo.environment["QDWALLET_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The engines an end-to-end test runs on: SQLite, and PostgreSQL when a server is given.
    static var engines: [String] { postgresServer == nil ? ["sqlite"] : ["sqlite", "postgres"] }

    /// A new, empty database on the server for one test (its URL), dropped afterwards.
    static func withPostgresDatabase(_ body: (String) throws -> Void) throws {
        let server = try #require(postgresServer)
        let name = "cli_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let admin = try PostgresConnection(url: server)
        try admin.execute("CREATE DATABASE \(name)", [])
        defer { _ = try? admin.execute("DROP DATABASE \(name) WITH (FORCE)", []) }
        var components = try #require(URLComponents(string: server))
        components.path = "/" + name
        try body(try #require(components.string))
    }

    /// The executable beside the test bundle (`swift build` puts both in one folder).
    static let executable: URL = {
        let candidates = [
            Bundle.main.bundleURL.deletingLastPathComponent(),
            Bundle.main.bundleURL,
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build/debug"),
        ]
        for folder in candidates {
            let url = folder.appendingPathComponent("qdwallet")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return candidates[0].appendingPathComponent("qdwallet")
    }()

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

    func cleanUp() {
        try? FileManager.default.removeItem(at: directory)
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
