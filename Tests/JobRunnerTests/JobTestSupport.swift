import Foundation
import GRDB
import Ledger
import Logging
@testable import JobRunner
@testable import QDConfig
import QDSQL

/// A job runner on its own database with a manual clock and no real sleeping.
final class JobWorld {
    let directory: URL
    let path: String
    let store: SQLiteLedgerStore
    let clock = ManualClock(shanghai(2026, 11, 28, 2, 0))

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-jobs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("jobs.sqlite").path
        var migrator = DatabaseMigrator()
        LedgerSchema.register(in: &migrator)
        JobSchema.register(in: &migrator)
        migrator.registerMigration("test-items") { db in
            try db.execute(sql: """
                CREATE TABLE items (id INTEGER PRIMARY KEY, value INTEGER NOT NULL);
                CREATE TABLE processed (item_id INTEGER PRIMARY KEY, execution_id INTEGER NOT NULL);
                """)
        }
        store = SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: path, migrator: migrator))
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func seed(items: Int) throws {
        try store.pool.write { db in
            for id in 1...items {
                try db.execute(sql: "INSERT INTO items (id, value) VALUES (?, ?)", arguments: [id, id * 10])
            }
        }
    }

    func definition(_ toml: String) throws -> JobDefinition {
        try JobDefinition(ConfigTable.parse(toml, file: "test.job.toml"))
    }

    static let countJob = """
        name = "count"
        schedule = "0 2 * * *"
        chunk_size = 10
        stale_after_seconds = 60
        [parameters]
        date = "{yesterday}"
        [retry]
        attempts = 3
        backoff_initial_ms = 1
        """

    func runner(_ step: CountStep, definition: JobDefinition? = nil, stop: StopSignal = StopSignal(), owner: String = "test-1") throws -> JobRunner {
        JobRunner(
            store: store, clock: clock, logger: Logger(label: "test"),
            definitions: [try definition ?? self.definition(Self.countJob)],
            implementations: [JobImplementation(name: "count", steps: [step])],
            stop: stop, progress: ProgressReporter(logger: Logger(label: "test"), terminal: false),
            owner: owner, sleepMillis: { _ in })
    }

    func processed() throws -> [Int64] {
        try store.pool.read { try Int64.fetchAll($0, sql: "SELECT item_id FROM processed ORDER BY item_id") }
    }

    func executions() throws -> [(status: String, forced: Bool)] {
        try store.pool.read { try Row.fetchAll($0, sql: "SELECT status, forced FROM job_executions ORDER BY id").map { ($0["status"], $0["forced"]) } }
    }
}

/// Dies like a killed process: the runner leaves the execution as it is.
struct SimulatedCrash: AbortingError {}

/// A fault that may go away on retry.
struct Hiccup: Error {}

/// Processes the `items` table in id order, one row into `processed` per item. Faults can be
/// injected: a crash before chunk N (just after chunk N-1 committed) or inside it, after some
/// items, and transient errors.
final class CountStep: TypedJobStep, @unchecked Sendable {
    struct Checkpoint: Codable, Sendable { var lastID: Int64 }

    let name = "count"
    var checkpointVersion = 1
    /// Crash when starting this chunk number (1-based, counted in this step object).
    var crashBeforeChunk: Int?
    /// Crash inside this chunk after this many items.
    var crashInsideChunk: (chunk: Int, afterItems: Int)?
    /// Throw this many busy errors before succeeding.
    var busyErrors = 0
    var permanentError = false
    var onChunk: ((Int) -> Void)?
    /// Called inside the chunk's transaction, with its connection.
    var inChunk: ((Int, any SQLConnection) throws -> Void)?
    private(set) var chunksRun = 0

    init() {}

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(lastID: 0) }

    func estimatedTotal(_ context: JobContext, db: any SQLConnection) throws -> Int? {
        try db.int("SELECT count(*) FROM items")
    }

    func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        chunksRun += 1
        if busyErrors > 0 {
            busyErrors -= 1
            throw LedgerError(.busy, "simulated busy database")
        }
        if permanentError { throw Hiccup() }
        if crashBeforeChunk == chunksRun { throw SimulatedCrash() }
        onChunk?(chunksRun)
        try inChunk?(chunksRun, db)
        let ids = try db.int64s("SELECT id FROM items WHERE id > ? ORDER BY id LIMIT ?", [checkpoint.lastID, context.chunkSizeMax])
        for (index, id) in ids.enumerated() {
            if let crash = crashInsideChunk, crash.chunk == chunksRun, crash.afterItems == index { throw SimulatedCrash() }
            try db.execute("INSERT INTO processed (item_id, execution_id) VALUES (?, ?)", id, context.executionID)
        }
        return (Checkpoint(lastID: ids.last ?? checkpoint.lastID), ChunkCounts(read: ids.count, written: ids.count, done: ids.count < context.chunkSizeMax))
    }
}
