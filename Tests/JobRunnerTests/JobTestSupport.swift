import Foundation
import GRDB
import Ledger
import Logging
@testable import JobRunner
@testable import QDConfig
import QDSQL
import QDTestEngines

/// A job runner on its own database with a manual clock and no real sleeping.
final class JobWorld {
    let directory: URL
    let path: String
    let store: SQLLedgerStore
    let clock = ManualClock(shanghai(2026, 11, 28, 2, 0))
    /// The database, when on PostgreSQL.
    let postgres: PostgresDatabase?
    /// The tables the test jobs read and write.
    static let testTables = SQLMigration("test-items", """
        CREATE TABLE items (id INTEGER PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE processed (item_id INTEGER PRIMARY KEY, execution_id INTEGER NOT NULL);
        """)

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-jobs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("jobs.sqlite").path
        if let database = try TestEngine.postgres("jobs", migrations: {
            (try LedgerSchema.postgres) + (try JobSchema.postgres()) + [SQLMigration(Self.testTables.name, try SQLDialect.postgresSchema(Self.testTables.sql))]
        }) {
            store = SQLLedgerStore(database: database)
            postgres = database
        } else {
            var migrator = DatabaseMigrator()
            LedgerSchema.register(in: &migrator)
            JobSchema.register(in: &migrator)
            migrator.registerMigration(Self.testTables.name) { db in try db.execute(sql: Self.testTables.sql) }
            store = SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: path, migrator: migrator))
            postgres = nil
        }
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
        try? postgres?.dropSchema()
    }

    func seed(items: Int) throws {
        _ = try store.database.write { db in
            for id in 1...items {
                try db.execute("INSERT INTO items (id, value) VALUES (?, ?)", id, id * 10)
            }
        }
    }

    /// Runs one statement behind the runner's back.
    func execute(_ sql: String, _ binds: [any SQLBindable] = []) throws {
        _ = try store.database.write { try $0.run(sql, binds) }
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
        try store.database.read { try $0.int64s("SELECT item_id FROM processed ORDER BY item_id") }
    }

    func executions() throws -> [(status: String, forced: Bool)] {
        try store.database.read { try $0.all("SELECT status, forced FROM job_executions ORDER BY id") { (try $0.text(0), try $0.bool(1)) } }
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
