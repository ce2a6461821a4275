import AsyncHTTPClient
import Foundation
import GRDB
import QDSQL
import QDTestEngines
import Synchronization
import Testing

/// `qdwallet serve` as an operator runs it: a child process on a database of each engine, spoken
/// to over HTTP, stopped by SIGTERM; and its refusals of a bad address or a missing database.
@Suite struct ServeProcessTests {
    static let executable = TestEngine.builtExecutable("qdwallet", filePath: #filePath)
    /// The data key of these tests' databases (32 bytes, base64).
    static let dataKey = Data(repeating: 7, count: 32).base64EncodedString()

    /// The test process's environment, without a database and with the data key.
    static func environment(key: String? = dataKey) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "QDWALLET_DB")
        environment.removeValue(forKey: "QDWALLET_DATA_KEY_FILE")
        environment["QDWALLET_DATA_KEY"] = key
        return environment
    }

    enum Engine: String, CaseIterable, Sendable {
        case sqlite, postgres
        static var available: [Engine] { TestEngine.postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }
    }

    /// Runs qdwallet to its end: (status, stdout, stderr).
    func run(_ arguments: [String], key: String? = dataKey) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = Self.executable
        process.arguments = arguments
        process.environment = Self.environment(key: key)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: errors, as: UTF8.self))
    }

    /// A database of the engine, created by `qdwallet init`, for `body`.
    func withDatabase(_ engine: Engine, _ body: (String) async throws -> Void) async throws {
        switch engine {
        case .sqlite:
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-serve-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let path = folder.appendingPathComponent("qdwallet.sqlite").path
            let (status, _, errors) = try run(["init", "--db", path])
            try #require(status == 0, "init: \(errors)")
            try await body(path)
        case .postgres:
            let scratch = try TestEngine.newPostgresDatabase(prefix: "serve")
            defer { scratch.drop() }
            let (status, _, errors) = try run(["init", "--db", scratch.url])
            try #require(status == 0, "init: \(errors)")
            try await body(scratch.url)
        }
    }

    func get(_ url: String) async throws -> Int {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    /// A running `serve`: its process, the base URL it printed, and what it wrote to stderr.
    struct Serving {
        let process: Process
        let url: String
        let errors: Collected
        let out: Pipe
        let err: Pipe

        /// Waits at most `limit` for the process to end; true when it did.
        func ended(within limit: Duration) async throws -> Bool {
            let asked = ContinuousClock.now
            while process.isRunning && ContinuousClock.now - asked < limit {
                try await Task.sleep(for: .milliseconds(20))
            }
            return !process.isRunning
        }

        func stop() {
            out.fileHandleForReading.readabilityHandler = nil
            err.fileHandleForReading.readabilityHandler = nil
            if process.isRunning { process.terminate() }
        }
    }

    /// Starts `serve` on `database` and waits until it says where it listens.
    func serve(_ database: String, _ extra: [String] = []) async throws -> Serving {
        let process = Process()
        process.executableURL = Self.executable
        process.arguments = ["serve", "--db", database, "--listen", "127.0.0.1:0"] + extra
        process.environment = Self.environment()
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let printed = Mutex(""), errors = Collected()
        out.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            printed.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        err.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            errors.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
        var base: String?
        for _ in 0..<1500 where base == nil {
            try await Task.sleep(for: .milliseconds(20))
            let text = printed.withLock { $0 }
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on http://127.0.0.1:") }) {
                base = String(line.dropFirst("listening on ".count))
            }
            if !process.isRunning { break }
        }
        let serving = Serving(process: process, url: base ?? "", errors: errors, out: out, err: err)
        guard base != nil else {
            serving.stop()
            throw ServeFailed(errors: errors.withLock { $0 })
        }
        return serving
    }

    /// What a child process wrote, as it comes.
    final class Collected: Sendable {
        let text = Mutex("")
        func withLock<T>(_ body: (inout String) -> T) -> T { text.withLock { body(&$0) } }
    }

    struct ServeFailed: Error, CustomStringConvertible {
        let errors: String
        var description: String { "serve never said where it listens: \(errors)" }
    }

    @Test(arguments: Engine.available)
    func serveAnswersAndEndsOnSIGTERM(_ engine: Engine) async throws {
        try await withDatabase(engine) { database in
            let serving = try await serve(database)
            defer { serving.stop() }
            #expect(try await get(serving.url + "/healthz") == 200)
            #expect(try await get(serving.url + "/readyz") == 200)
            #expect(try await get(serving.url + "/openapi.json") == 200)

            kill(serving.process.processIdentifier, SIGTERM)
            #expect(try await serving.ended(within: .seconds(15)), "serve still runs 15 s after SIGTERM")
            #expect(serving.process.terminationStatus == 0)
        }
    }

    /// A `serve` left running while a newer qdwallet upgrades the database stops by itself
    /// (as on SIGTERM, exit 4 `database_newer`), within its --schema-check-seconds, rather
    /// than go on writing rows by rules it does not know. The upgrade is a schema step this
    /// version does not know, recorded as the engine records its steps.
    @Test(arguments: Engine.available)
    func serveStopsOnceANewerVersionUpgradedTheDatabase(_ engine: Engine) async throws {
        try await withDatabase(engine) { database in
            let serving = try await serve(database, ["--schema-check-seconds", "1"])
            defer { serving.stop() }
            #expect(try await get(serving.url + "/healthz") == 200)
            try await Task.sleep(for: .seconds(2))
            #expect(serving.process.isRunning, "serve stopped on a database nobody upgraded")
            switch engine {
            case .sqlite:
                let queue = try DatabaseQueue(path: database)
                try await queue.write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('from-a-newer-version')") }
            case .postgres:
                let connection = try PostgresDatabase(url: database)
                _ = try connection.write { try $0.run("INSERT INTO qdwallet_migrations (name) VALUES ('from-a-newer-version')", []) }
            }
            #expect(try await serving.ended(within: .seconds(15)), "serve still runs 15 s after the upgrade")
            #expect(serving.process.terminationStatus == 4)
            #expect(serving.errors.withLock { $0 }.contains("from-a-newer-version"), "\(serving.errors.withLock { $0 })")
        }
    }

    /// A typo in the address is a usage error (exit 2) before anything is opened.
    @Test func aBadListenAddressIsAUsageError() throws {
        for address in ["localhost", "127.0.0.1:65536", "127.0.0.1:-1", "[::1]8080", ":8080", "127.0.0.1:80a", "1:2:3", "127.0.0.1:+80", "127.0.0.1:", "127.0.0.1:٨٠"] {
            let (status, _, errors) = try run(["serve", "--db", "/nonexistent/q.sqlite", "--listen", address])
            #expect(status == 2, "\(address): \(errors)")
            #expect(errors.contains("--listen"), "\(address): \(errors)")
        }
        let (status, _, errors) = try run(["serve", "--db", "/nonexistent/q.sqlite", "--shutdown-grace", "0"])
        #expect(status == 2, "\(errors)")
        let (checkStatus, _, checkErrors) = try run(["serve", "--db", "/nonexistent/q.sqlite", "--schema-check-seconds", "0"])
        #expect(checkStatus == 2, "\(checkErrors)")
        #expect(checkErrors.contains("--schema-check-seconds"), "\(checkErrors)")
        for flag in ["--rate-per-device", "--rate-per-wallet"] {
            let (status, _, errors) = try run(["serve", "--db", "/nonexistent/q.sqlite", flag, "0"])
            #expect(status == 2, "\(flag): \(errors)")
            #expect(errors.contains(flag), "\(flag): \(errors)")
        }
    }

    /// serve never creates a database: a path without one is refused (exit 4) and stays absent.
    @Test func serveRefusesAPathWithoutADatabase() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("typo.sqlite").path
        let (status, _, errors) = try run(["serve", "--db", path, "--listen", "127.0.0.1:0"])
        #expect(status == 4, "\(errors)")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    /// The app's tokens and codes hang on the data key: serve refuses to start without it, or
    /// with a key that is not the database's.
    @Test func serveNeedsTheDatabasesDataKey() async throws {
        try await withDatabase(.sqlite) { database in
            let (none, _, noneErrors) = try run(["serve", "--db", database, "--listen", "127.0.0.1:0"], key: nil)
            #expect(none != 0)
            #expect(noneErrors.contains("QDWALLET_DATA_KEY"), "\(noneErrors)")
            let other = Data(repeating: 9, count: 32).base64EncodedString()
            let (wrong, _, wrongErrors) = try run(["serve", "--db", database, "--listen", "127.0.0.1:0"], key: other)
            #expect(wrong != 0)
            #expect(wrongErrors.contains("not this database's key"), "\(wrongErrors)")
        }
    }
}
