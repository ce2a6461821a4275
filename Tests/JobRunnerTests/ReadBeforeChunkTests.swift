import Foundation
import GRDB
import Ledger
import Logging
import QDSQL
import QDTestEngines
import QDTestSupport
import Synchronization
import Testing
@testable import JobRunner

/// Counts the items on a read snapshot before its one chunk, calling `whileReading` between
/// two counts; the chunk records what the reads found.
final class ReadingStep: TypedJobStep, @unchecked Sendable {
    struct Checkpoint: Codable, Sendable { var counted: Int? }
    struct Counts: Sendable { var before: Int; var after: Int }
    typealias Prepared = Counts

    let name = "tally"
    let checkpointVersion = 1
    var readsBeforeChunk: Bool { true }
    var whileReading: ((JobContext) throws -> Void)?
    private(set) var chunkSaw: Counts?

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint() }

    func read(_ context: JobContext, at checkpoint: Checkpoint, db: any SQLConnection, ledger: any LedgerReading) throws -> Counts? {
        let before = try db.int("SELECT count(*) FROM items") ?? -1
        try whileReading?(context)
        return Counts(before: before, after: try db.int("SELECT count(*) FROM items") ?? -1)
    }

    func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        chunkSaw = context.prepared(Counts.self)
        guard let counts = chunkSaw else { throw JobStepNotRead(step: name) }
        return (Checkpoint(counted: counts.after), ChunkCounts(read: counts.after, done: true))
    }
}

extension JobWorld {
    func runner(reading step: ReadingStep, heartbeatEverySeconds: Double? = nil) throws -> JobRunner {
        let definition = try self.definition(Self.countJob.replacingOccurrences(of: "name = \"count\"", with: "name = \"tally\""))
        return JobRunner(
            store: store, clock: clock, logger: Logger(label: "test"),
            definitions: [definition], implementations: [JobImplementation(name: "tally", steps: [step])],
            progress: ProgressReporter(logger: Logger(label: "test"), terminal: false),
            owner: "test-1", sleepMillis: { _ in }, heartbeatEverySeconds: heartbeatEverySeconds)
    }

    /// Takes the job's lock from the execution that holds it (as far as that execution can
    /// tell, as another process's takeover of a stale run does), on a connection of its own.
    func takeLockElsewhere(job: String) throws {
        let (path, postgres) = (path, postgres)
        let sql = "DELETE FROM job_locks WHERE job_name = ?"
        try onAnotherThread {
            if let postgres {
                _ = try TestEngine.anotherPool(postgres).write { try $0.run(sql, [job]) }
            } else {
                var configuration = Configuration()
                configuration.busyMode = .timeout(0.5)
                try DatabasePool(path: path, configuration: configuration).write { db in try db.execute(sql: sql, arguments: [job]) }
            }
        }
    }

    /// Inserts an item as another process would, on a connection of its own that waits at
    /// most half a second for SQLite's writer lock.
    func insertElsewhere(id: Int) throws {
        let (path, postgres) = (path, postgres)
        try onAnotherThread {
            if let postgres {
                _ = try TestEngine.anotherPool(postgres).write { try $0.run("INSERT INTO items (id, value) VALUES (?, ?)", [id, id * 10]) }
            } else {
                var configuration = Configuration()
                configuration.busyMode = .timeout(0.5)
                try DatabasePool(path: path, configuration: configuration).write { db in
                    try db.execute(sql: "INSERT INTO items (id, value) VALUES (?, ?)", arguments: [id, id * 10])
                }
            }
        }
    }
}

@Suite(.serialized) struct ReadBeforeChunkTests {
    /// The 04:30 `ledger-check` job reads the whole journal without holding the writer: a
    /// payment another process posts while it reads commits at once (on SQLite it would wait
    /// for the check's write transaction, and give up after its half-second busy timeout
    /// here), and the check verifies one state: the journal as it was when its snapshot
    /// began, every pass of it (on PostgreSQL a write transaction's statements each read the
    /// latest commits).
    @Test func theLedgerCheckJobVerifiesOneStateWhilePaymentsGoOn() throws {
        let world = try JobWorld()
        let ledger = Ledger(store: world.store, clock: world.clock)
        let bank = try ledger.openAccount(AccountSpec(code: "bank", asset: .cny, kind: .suspense, rules: .unrestricted))
        let wallet = try ledger.openAccount(AccountSpec(code: "wallet", asset: .cny, kind: .suspense, rules: .unrestricted))
        for n in 1...3 {
            _ = try ledger.post(.transfer(key: "before-\(n)", from: bank.id, to: wallet.id, amount: 100))
        }
        let (path, postgres, clock) = (world.path, world.postgres, world.clock)
        let step = HookedStep(inner: BuiltinJobs.ledgerCheck.steps[0]) {
            try onAnotherThread {
                let other: SQLLedgerStore
                if let postgres {
                    other = SQLLedgerStore(database: try TestEngine.anotherPool(postgres))
                } else {
                    var configuration = Configuration()
                    configuration.busyMode = .timeout(0.5)
                    other = SQLiteLedgerStore(pool: try DatabasePool(path: path, configuration: configuration))
                }
                _ = try Ledger(store: other, clock: clock).post(.transfer(key: "during", from: bank.id, to: wallet.id, amount: 7))
            }
        }
        let definition = try world.definition(JobWorld.countJob.replacingOccurrences(of: "name = \"count\"", with: "name = \"ledger-check\""))
        let runner = JobRunner(
            store: world.store, clock: world.clock, logger: Logger(label: "test"), definitions: [definition],
            implementations: [JobImplementation(name: "ledger-check", steps: [step], assess: BuiltinJobs.ledgerCheck.assess)],
            progress: ProgressReporter(logger: Logger(label: "test"), terminal: false), owner: "test-1", sleepMillis: { _ in })
        let report = try runner.run("ledger-check")
        #expect(report.status == "completed")
        #expect(report.assessment == .clean)
        // Three transactions checked (read counts them), not the one posted meanwhile.
        #expect(report.steps.first?.read == 3)
        #expect(report.steps.first?.failed == 0)
        #expect(try ledger.account(id: wallet.id).balance == 307)
        #expect(try ledger.check().transactions == 4)
    }

    /// A step that reads much (the ledger's check, a reconciliation) reads on a snapshot that
    /// holds no lock: another writer commits meanwhile (on SQLite it would otherwise wait for
    /// the one writer's lock and give up at its busy timeout), the reads see one state (the
    /// second count equals the first), and the chunk gets what they read.
    @Test func aStepReadsBeforeItsChunkWithoutHoldingTheWriter() throws {
        let world = try JobWorld()
        try world.seed(items: 5)
        let step = ReadingStep()
        step.whileReading = { _ in try world.insertElsewhere(id: 6) }
        let report = try world.runner(reading: step).run("tally")
        #expect(report.status == "completed")
        #expect(step.chunkSaw?.before == 5)
        #expect(step.chunkSaw?.after == 5)
        #expect(report.steps.first?.read == 5)
        #expect(try world.store.database.read { try $0.int("SELECT count(*) FROM items") } == 6)
    }

    /// SIGTERM during the check of a long journal ends the run within a few thousand rows
    /// (`stopped`, exit 4 from the CLI), not after the whole journal; the next run checks it
    /// all and completes.
    @Test func aStopRequestedDuringTheCheckEndsTheRunBeforeTheJournalIsRead() throws {
        let world = try JobWorld()
        let ledger = Ledger(store: world.store, clock: world.clock)
        let bank = try ledger.openAccount(AccountSpec(code: "bank", asset: .cny, kind: .suspense, rules: .unrestricted))
        let wallet = try ledger.openAccount(AccountSpec(code: "wallet", asset: .cny, kind: .suspense, rules: .unrestricted))
        // 2,100 transactions and 4,200 entries: more rows than the check reads between two looks.
        _ = try ledger.post((1...2_100).map { PostingRequest.transfer(key: "t\($0)", from: bank.id, to: wallet.id, amount: 1) })
        let stop = StopSignal()
        let step = HookedStep(inner: BuiltinJobs.ledgerCheck.steps[0]) { stop.request() }
        let definition = try world.definition(JobWorld.countJob.replacingOccurrences(of: "name = \"count\"", with: "name = \"ledger-check\""))
        func runner(_ step: any JobStep, stop: StopSignal) -> JobRunner {
            JobRunner(
                store: world.store, clock: world.clock, logger: Logger(label: "test"), definitions: [definition],
                implementations: [JobImplementation(name: "ledger-check", steps: [step], assess: BuiltinJobs.ledgerCheck.assess)],
                stop: stop, progress: ProgressReporter(logger: Logger(label: "test"), terminal: false), owner: "test-1", sleepMillis: { _ in })
        }
        let stopped = try runner(step, stop: stop).run("ledger-check")
        #expect(stopped.status == "stopped")
        #expect(stopped.steps.first?.status != "completed")
        let resumed = try runner(BuiltinJobs.ledgerCheck.steps[0], stop: StopSignal()).run("ledger-check")
        #expect(resumed.status == "completed")
        #expect(resumed.steps.first?.read == 2_100)
        #expect(resumed.assessment == .clean)
        // The check itself: it looks every 4,096 rows, and reads no further once told.
        #expect(throws: CheckStopped.self) { try world.store.read { try Ledger.check($0, stopWhen: { true }) } }
        #expect(try world.store.read { try Ledger.check($0, stopWhen: { false }) }.ok)
    }

    /// However long the reads take, the run keeps its heartbeat: another runner that comes
    /// after the stale limit (60 s here, passed on the run's clock) finds it alive and is
    /// refused, instead of taking the run over as abandoned.
    @Test func aRunThatReadsLongKeepsItsHeartbeat() throws {
        let world = try JobWorld()
        try world.seed(items: 3)
        let step = ReadingStep()
        var refusal: (any Error)?
        let shared = Shared(value: world)
        step.whileReading = { _ in
            world.clock.advance(micros: 120_000_000)
            usleep(400_000)  // the keeper beats every 0.05 s
            refusal = try onAnotherThread {
                do {
                    _ = try shared.value.runner(reading: ReadingStep(), heartbeatEverySeconds: 0.05).run("tally")
                    return Shared<any Error>?.none
                } catch {
                    return Shared(value: error)
                }
            }?.value
        }
        let report = try world.runner(reading: step, heartbeatEverySeconds: 0.05).run("tally")
        #expect(report.status == "completed")
        guard case .alreadyRunning(let job, _, _, let age)? = refusal as? JobRefusal else {
            Issue.record("the second run was not refused as already running: \(String(describing: refusal))")
            return
        }
        #expect(job == "tally")
        #expect(age < 60)
    }

    /// Without the keeper the same wait is a takeover: the test above can fail.
    @Test func aRunThatReadsLongWithoutHeartbeatsIsTakenOver() throws {
        let world = try JobWorld()
        try world.seed(items: 3)
        let step = ReadingStep()
        var second: ExecutionReport?
        let shared = Shared(value: world)
        step.whileReading = { _ in
            world.clock.advance(micros: 120_000_000)
            second = try onAnotherThread { try shared.value.runner(reading: ReadingStep(), heartbeatEverySeconds: 3_600).run("tally") }
        }
        #expect(throws: JobRunnerError.self) { try world.runner(reading: step, heartbeatEverySeconds: 3_600).run("tally") }
        #expect(second?.status == "completed")
        #expect(second?.abandonedExecutionId != nil)
    }

    /// A run whose lock is taken over while it reads is told so by its next heartbeat: its
    /// reads' stop request is raised at once (the ledger's check and the reconciliation end
    /// within a few thousand rows), the run aborts as having lost its lock, its chunk never
    /// runs, and the run's own stop request (SIGTERM's) is left alone.
    @Test func aRunThatLosesItsLockWhileReadingIsToldToStopReading() throws {
        let world = try JobWorld()
        try world.seed(items: 3)
        let step = ReadingStep()
        let runStop = StopSignal()
        var stopSeen = false
        step.whileReading = { context in
            #expect(!context.stop.requested)
            try world.takeLockElsewhere(job: "tally")
            // The keeper beats every 0.05 s; the reads look at their stop request as they go.
            let deadline = Date().addingTimeInterval(10)
            while !context.stop.requested && Date() < deadline { usleep(10_000) }
            stopSeen = context.stop.requested
        }
        let definition = try world.definition(JobWorld.countJob.replacingOccurrences(of: "name = \"count\"", with: "name = \"tally\""))
        let runner = JobRunner(
            store: world.store, clock: world.clock, logger: Logger(label: "test"),
            definitions: [definition], implementations: [JobImplementation(name: "tally", steps: [step])], stop: runStop,
            progress: ProgressReporter(logger: Logger(label: "test"), terminal: false),
            owner: "test-1", sleepMillis: { _ in }, heartbeatEverySeconds: 0.05)
        let error = #expect(throws: JobRunnerError.self) { try runner.run("tally") }
        guard case .lostLock(let job, _)? = error else {
            Issue.record("the run did not abort as having lost its lock: \(String(describing: error))")
            return
        }
        #expect(job == "tally")
        #expect(stopSeen)
        #expect(step.chunkSaw == nil)
        #expect(!runStop.requested)
    }

    /// A stop request of a part of the run (its reads) answers to the run's own, not the other
    /// way round.
    @Test func aPartsStopRequestAnswersToTheRuns() {
        let run = StopSignal()
        let part = StopSignal(parent: run)
        #expect(!part.requested)
        part.request()
        #expect(part.requested && !run.requested)
        let other = StopSignal(parent: run)
        run.request()
        #expect(other.requested)
    }
}
