import Foundation
import GRDB
import Ledger
import Testing
@testable import JobRunner
import QDSQL

@Suite struct JobRunnerTests {
    @Test func runsAllChunksOnceAndRecordsTheRun() throws {
        let world = try JobWorld()
        try world.seed(items: 35)
        let report = try world.runner(CountStep()).run("count")
        #expect(report.status == "completed")
        #expect(report.parameters == ["date": "2026-11-27"])
        #expect(report.steps.map(\.read) == [35])
        #expect(report.steps.map(\.chunks) == [4])
        #expect(try world.processed() == Array(1...35))
        // The same instance again: nothing to do.
        let again = try world.runner(CountStep()).run("count")
        #expect(again.status == "already_completed")
        #expect(try world.executions().count == 1)
        // Another date is another instance.
        try world.execute("DELETE FROM processed")
        #expect(try world.runner(CountStep()).run("count", overrides: ["date": "2026-11-28"]).status == "completed")
        #expect(try world.processed().count == 35)
    }

    /// Killed right after chunk k committed (k = 0 ... all), then restarted once the heartbeat
    /// is stale: every item is processed exactly once.
    @Test(arguments: 1...5)
    func restartsAfterACrashAtEveryChunkBoundary(crashBefore: Int) throws {
        let world = try JobWorld()
        try world.seed(items: 40)
        let dying = CountStep()
        dying.crashBeforeChunk = crashBefore
        #expect(throws: SimulatedCrash.self) { try world.runner(dying).run("count") }
        #expect(try world.processed().count == (crashBefore - 1) * 10)
        #expect(try world.executions().map(\.status) == ["started"])

        world.clock.advance(micros: 61_000_000)
        let report = try world.runner(CountStep(), owner: "test-2").run("count")
        #expect(report.status == "completed")
        #expect(report.abandonedExecutionId == 1)
        #expect(report.steps.first?.resumed == true)
        #expect(try world.processed() == Array(1...40))
        #expect(try world.executions().map(\.status) == ["abandoned", "completed"])
    }

    /// Killed in the middle of a chunk: the chunk's work rolls back with its checkpoint.
    @Test(arguments: [(1, 0), (1, 5), (2, 9), (4, 3)])
    func restartsAfterACrashInsideAChunk(chunk: Int, afterItems: Int) throws {
        let world = try JobWorld()
        try world.seed(items: 40)
        let dying = CountStep()
        dying.crashInsideChunk = (chunk, afterItems)
        #expect(throws: SimulatedCrash.self) { try world.runner(dying).run("count") }
        #expect(try world.processed().count == (chunk - 1) * 10)
        world.clock.advance(micros: 61_000_000)
        #expect(try world.runner(CountStep(), owner: "test-2").run("count").status == "completed")
        #expect(try world.processed() == Array(1...40))
        let total = try world.store.database.read { try $0.int("SELECT sum(read_count) FROM job_step_executions WHERE execution_id = 2") }
        #expect(total == 40)
    }

    @Test func aLiveRunIsNotRunTwice() throws {
        let world = try JobWorld()
        try world.seed(items: 40)
        let dying = CountStep()
        dying.crashBeforeChunk = 3
        #expect(throws: SimulatedCrash.self) { try world.runner(dying).run("count") }
        world.clock.advance(micros: 59_000_000)
        #expect {
            try world.runner(CountStep(), owner: "test-2").run("count")
        } throws: { error in
            guard case JobRefusal.alreadyRunning(let job, let executionID, let owner, let age) = error else { return false }
            return job == "count" && executionID == 1 && owner == "test-1" && age == 59 && "\(error)".contains("held by test-1")
        }
        #expect(try world.processed().count == 20)
    }

    @Test func aRunWhoseProcessIsGoneIsTakenOverAtOnce() throws {
        // A process of this host that has exited: its pid names no process any more.
        let exited = Process()
        exited.executableURL = URL(fileURLWithPath: "/bin/true")
        try exited.run()
        exited.waitUntilExit()
        let host = ProcessInfo.processInfo.hostName
        let world = try JobWorld()
        try world.seed(items: 40)
        let dying = CountStep()
        dying.crashBeforeChunk = 3
        #expect(throws: SimulatedCrash.self) { try world.runner(dying, owner: "\(host):\(exited.processIdentifier)").run("count") }
        world.clock.advance(micros: 1_000_000) // heartbeat fresh: only the owner's absence lets the run go on
        let report = try world.runner(CountStep(), owner: "\(host):\(getpid())").run("count")
        #expect(report.status == "completed")
        #expect(try world.processed().count == 40)
        let message = try world.store.database.read { try $0.one("SELECT exit_message FROM job_executions WHERE id = 1") { try $0.optionalText(0) } ?? nil }
        #expect(message?.contains("is gone") == true)
        // Another host's owner is never judged by this host's processes.
        #expect(!JobRunner.ownerIsGone("elsewhere.example:\(exited.processIdentifier)"))
        #expect(!JobRunner.ownerIsGone("\(host):\(getpid())"))
        #expect(!JobRunner.ownerIsGone("test-1"))
    }

    @Test func forcingANewAttemptIsRecorded() throws {
        let world = try JobWorld()
        try world.seed(items: 15)
        _ = try world.runner(CountStep()).run("count")
        try world.execute("DELETE FROM processed")
        let forced = try world.runner(CountStep()).run("count", force: true)
        #expect(forced.status == "completed" && forced.forced)
        #expect(forced.steps.first?.resumed == false)
        #expect(try world.processed() == Array(1...15))
        #expect(try world.executions().map(\.forced) == [false, true])
    }

    @Test func transientFaultsAreRetriedPermanentOnesFail() throws {
        let world = try JobWorld()
        try world.seed(items: 15)
        let flaky = CountStep()
        flaky.busyErrors = 2
        #expect(try world.runner(flaky).run("count").status == "completed")
        #expect(try world.processed().count == 15)

        let other = try JobWorld()
        try other.seed(items: 15)
        let tooFlaky = CountStep()
        tooFlaky.busyErrors = 3
        let failed = try other.runner(tooFlaky).run("count")
        #expect(failed.status == "failed")
        #expect(failed.message?.contains("busy") == true)
        let broken = CountStep()
        broken.permanentError = true
        let third = try JobWorld()
        try third.seed(items: 5)
        #expect(try third.runner(broken).run("count").status == "failed")
        #expect(broken.chunksRun == 1)
        // A failed run leaves no lock: the next run resumes at once.
        #expect(try third.runner(CountStep()).run("count").status == "completed")
        #expect(try third.processed().count == 5)
    }

    @Test func stopFinishesTheCurrentChunkThenStops() throws {
        let world = try JobWorld()
        try world.seed(items: 40)
        let stop = StopSignal()
        let step = CountStep()
        step.onChunk = { chunk in if chunk == 2 { stop.request() } }
        let report = try world.runner(step, stop: stop).run("count")
        #expect(report.status == "stopped")
        #expect(try world.processed().count == 20)
        #expect(report.message?.contains("resumes at chunk 3") == true)
        let resumed = try world.runner(CountStep()).run("count")
        #expect(resumed.status == "completed" && resumed.resumedExecutionId == 1)
        #expect(try world.processed() == Array(1...40))
    }

    @Test func checkpointsOfAnotherVersionAreRefusedClearly() throws {
        let world = try JobWorld()
        try world.seed(items: 40)
        let dying = CountStep()
        dying.crashBeforeChunk = 2
        #expect(throws: SimulatedCrash.self) { try world.runner(dying).run("count") }
        world.clock.advance(micros: 61_000_000)
        let upgraded = CountStep()
        upgraded.checkpointVersion = 2
        let report = try world.runner(upgraded, owner: "test-2").run("count")
        #expect(report.status == "failed")
        #expect(report.message?.contains("checkpoint of version 1, this build reads version 2") == true)
        #expect(try world.processed().count == 10)
    }

    @Test func purgeKeepsCompletedInstancesCompleted() throws {
        let world = try JobWorld()
        try world.seed(items: 5)
        _ = try world.runner(CountStep()).run("count")
        world.clock.advance(micros: 31 * ShanghaiCalendar.dayMicros)
        let runner = try world.runner(CountStep())
        let removed = try runner.purge(olderThanDays: 30)
        #expect(removed.executions == 1 && removed.steps == 1)
        #expect(try world.executions().isEmpty)
        #expect(try runner.run("count", overrides: ["date": "2026-11-27"]).status == "already_completed")
    }

    @Test func missingParametersAreNamed() throws {
        let world = try JobWorld()
        let definition = try world.definition("name = \"count\"\nidentifying = []\n")
        let step = CountStep()
        let runner = try world.runner(step, definition: definition)
        struct NeedsDate: TypedJobStep {
            let name = "needs"
            let checkpointVersion = 1
            func start(_ context: JobContext) throws -> Int { _ = try context.date("date"); return 0 }
            func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Int) throws -> (Int, ChunkCounts) { (0, ChunkCounts(done: true)) }
        }
        _ = runner
        let strict = JobRunner(store: world.store, clock: world.clock, logger: .init(label: "t"), definitions: [definition], implementations: [JobImplementation(name: "count", steps: [NeedsDate()])], sleepMillis: { _ in })
        let report = try strict.run("count")
        #expect(report.status == "failed")
        #expect(report.message?.contains("needs the parameter date") == true)
        #expect(throws: JobRefusal.self) { try strict.run("nope") }
    }
}

@Suite struct SchedulerTests {
    func scheduler(_ world: JobWorld, catchUp: String = "once", step: CountStep = CountStep()) throws -> Scheduler {
        let definition = try world.definition(JobWorld.countJob.replacingOccurrences(of: "chunk_size = 10", with: "chunk_size = 10\ncatch_up = \"\(catchUp)\""))
        return Scheduler(runner: try world.runner(step, definition: definition))
    }

    @Test func runsWhenDueAndRecordsTheFire() throws {
        let world = try JobWorld()
        try world.seed(items: 5)
        world.clock.set(shanghai(2026, 11, 27, 12, 0))
        let scheduler = try scheduler(world)
        #expect(try scheduler.tick().map(\.action) == ["first_seen"])
        #expect(try scheduler.tick().isEmpty)
        world.clock.set(shanghai(2026, 11, 28, 2, 0))
        let decisions = try scheduler.tick()
        #expect(decisions.map(\.action) == ["ran"] && decisions[0].status == "completed")
        #expect(decisions[0].fireAt == shanghai(2026, 11, 28, 2, 0))
        #expect(try scheduler.tick().isEmpty)
        #expect(try world.processed().count == 5)
    }

    @Test func missedRunsAreCaughtUpOnceNotManyTimes() throws {
        let world = try JobWorld()
        try world.seed(items: 5)
        world.clock.set(shanghai(2026, 11, 20, 12, 0))
        let scheduler = try scheduler(world)
        _ = try scheduler.tick()
        // The machine was down for a week.
        world.clock.set(shanghai(2026, 11, 28, 9, 0))
        let decisions = try scheduler.tick()
        #expect(decisions.count == 1)
        #expect(decisions[0].action == "ran" && decisions[0].missedFires == 7)
        #expect(decisions[0].fireAt == shanghai(2026, 11, 28, 2, 0))
        #expect(try scheduler.tick().isEmpty)
        #expect(try world.executions().count == 1)
        let parameters = try world.store.database.read { try $0.one("SELECT parameters FROM job_executions") { try $0.text(0) } }
        #expect(parameters == "{\"date\":\"2026-11-27\"}")
    }

    @Test func catchUpNoneSkipsMissedFires() throws {
        let world = try JobWorld()
        try world.seed(items: 5)
        world.clock.set(shanghai(2026, 11, 20, 12, 0))
        let scheduler = try scheduler(world, catchUp: "none")
        _ = try scheduler.tick()
        world.clock.set(shanghai(2026, 11, 28, 9, 0))
        #expect(try scheduler.tick().map(\.action) == ["skipped_missed"])
        #expect(try world.executions().isEmpty)
        world.clock.set(shanghai(2026, 11, 29, 2, 0))
        #expect(try scheduler.tick().map(\.action) == ["ran"])
    }

    @Test func aFireDuringALiveRunIsSkipped() throws {
        let world = try JobWorld()
        try world.seed(items: 40)
        world.clock.set(shanghai(2026, 11, 27, 12, 0))
        let dying = CountStep()
        dying.crashBeforeChunk = 2
        _ = try scheduler(world).tick()
        world.clock.set(shanghai(2026, 11, 28, 2, 0))
        #expect(throws: SimulatedCrash.self) { try scheduler(world, step: dying).tick() }
        world.clock.set(shanghai(2026, 11, 28, 2, 0) + 10_000_000)
        // Pretend the next fire is due while that run is still live.
        try world.execute("UPDATE job_schedules SET last_fire_at = ?", [shanghai(2026, 11, 27, 2, 0)])
        let decisions = try scheduler(world).tick()
        #expect(decisions.map(\.action) == ["skipped_overlap"])
        #expect(decisions[0].message?.contains("already running") == true)
    }
}

@Suite struct DefinitionTests {
    @Test(arguments: [
        ("name = \"x\"\nschedul = \"* * * * *\"", "test.job.toml: schedul: unknown key"),
        ("name = \"x\"\nschedule = \"61 * * * *\"", "test.job.toml: schedule: schedule \"61 * * * *\": minute field"),
        ("name = \"X Y\"", "test.job.toml: name: use 1 to 64"),
        ("name = \"x\"\noverlap = \"queue\"", "test.job.toml: overlap: must be"),
        ("name = \"x\"\nchunk_size = 0", "test.job.toml: chunk_size: must be between"),
        ("name = \"x\"\nchunk_size = \"ten\"", "test.job.toml: chunk_size: must be an integer"),
        ("name = \"x\"\nidentifying = [\"date\"]", "test.job.toml: identifying: names \"date\""),
        ("name = \"x\"\n[retry]\nattempt = 2", "test.job.toml: retry.attempt: unknown key"),
        ("description = \"no name\"", "test.job.toml: name: is required"),
        ("name = ", "test.job.toml: line 1"),
    ])
    func errorsNameTheFileAndTheKey(toml: String, message: String) throws {
        let world = try JobWorld()
        #expect {
            _ = try world.definition(toml)
        } throws: { error in
            "\(error)".hasPrefix(message)
        }
    }

    @Test func theShippedJobsLoad() throws {
        let jobs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Jobs").path
        let definitions = try JobDefinition.loadAll(directory: jobs)
        #expect(definitions.map(\.name).contains("ledger-check"))
        let expire = try #require(definitions.first { $0.name == "expire-holds" })
        #expect(expire.resolvedParameters(now: shanghai(2026, 11, 28, 4, 15), overrides: [:]) == ["slot": "2026-11-28T04:15"])
        #expect(expire.retry.backoffMillis(beforeAttempt: 2) == 200 && expire.retry.backoffMillis(beforeAttempt: 3) == 400)
    }
}

/// Business-date jobs catch up every missed day, in order, within a bound; the rest is
/// recorded and shown, never silently dropped.
@Suite struct CatchUpEveryTests {
    func scheduler(_ world: JobWorld, max: Int, step: CountStep = CountStep()) throws -> Scheduler {
        let definition = try world.definition(JobWorld.countJob.replacingOccurrences(of: "chunk_size = 10", with: "chunk_size = 10\ncatch_up = \"every\"\ncatch_up_max = \(max)"))
        return Scheduler(runner: try world.runner(step, definition: definition))
    }

    func dates(_ world: JobWorld) throws -> [String] {
        try world.store.database.read { try $0.texts("SELECT parameters FROM job_executions ORDER BY id") }
    }

    @Test func everyMissedDayRunsOldestFirst() throws {
        // No items: each day's run has nothing to count and completes.
        let world = try JobWorld()
        world.clock.set(shanghai(2026, 11, 20, 12, 0))
        _ = try scheduler(world, max: 7).tick()
        // Down from the 21st 02:00 to the 24th 09:00: the fires of the 21st to the 24th.
        world.clock.set(shanghai(2026, 11, 24, 9, 0))
        let decisions = try scheduler(world, max: 7).tick()
        #expect(decisions.map(\.action) == ["ran", "ran", "ran", "ran"])
        #expect(decisions.allSatisfy { $0.status == "completed" })
        #expect(try dates(world) == ["{\"date\":\"2026-11-20\"}", "{\"date\":\"2026-11-21\"}", "{\"date\":\"2026-11-22\"}", "{\"date\":\"2026-11-23\"}"])
        #expect(try scheduler(world, max: 7).tick().isEmpty)
    }

    @Test func firesBeyondTheBoundAreLeftUnrunAndShown() throws {
        // No items: each day's run has nothing to count and completes.
        let world = try JobWorld()
        world.clock.set(shanghai(2026, 11, 10, 12, 0))
        let first = try scheduler(world, max: 3)
        _ = try first.tick()
        world.clock.set(shanghai(2026, 11, 18, 9, 0))
        let decisions = try scheduler(world, max: 3).tick()
        // Eight fires (the 11th to the 18th): the oldest five left unrun, the newest three run.
        #expect(decisions.map(\.action) == ["left_unrun", "ran", "ran", "ran"])
        #expect(decisions[0].missedFires == 5)
        #expect(try dates(world) == ["{\"date\":\"2026-11-15\"}", "{\"date\":\"2026-11-16\"}", "{\"date\":\"2026-11-17\"}"])
        let lines = try JobQueries.list(world.store.database, definitions: Array(first.runner.definitions.values), now: world.clock.nowMicros())
        #expect(lines[0].unrunFires == (11...15).reversed().map { shanghai(2026, 11, $0, 2, 0) })
    }

    /// A day whose run does not complete stops the catch-up there; the next tick retries it
    /// before any later day.
    @Test func aFailedDayIsRetriedBeforeLaterDays() throws {
        // No items: each day's run has nothing to count and completes.
        let world = try JobWorld()
        world.clock.set(shanghai(2026, 11, 20, 12, 0))
        _ = try scheduler(world, max: 7).tick()
        world.clock.set(shanghai(2026, 11, 23, 9, 0))
        let failing = CountStep()
        failing.permanentError = true
        let decisions = try scheduler(world, max: 7, step: failing).tick()
        #expect(decisions.map(\.action) == ["ran"])
        #expect(decisions[0].status == "failed")
        let again = try scheduler(world, max: 7).tick()
        #expect(again.map(\.status) == ["completed", "completed", "completed"])
        #expect(try dates(world).suffix(3) == ["{\"date\":\"2026-11-20\"}", "{\"date\":\"2026-11-21\"}", "{\"date\":\"2026-11-22\"}"])
    }
}

/// A run whose lock was taken over commits nothing more: its next chunk's transaction finds
/// the lock gone, and the run stops as a crashed process would.
@Suite struct LostLockTests {
    @Test func aRunThatLostItsLockCommitsNothingMore() throws {
        let world = try JobWorld()
        try world.seed(items: 40)
        let step = CountStep()
        // During the third chunk another process takes the job over (the lock is no longer
        // this execution's when the chunk commits).
        step.inChunk = { chunk, db in
            if chunk == 3 { try db.execute("DELETE FROM job_locks") }
        }
        #expect(throws: JobRunnerError.self) { try world.runner(step).run("count") }
        // Chunks 1 to 3 committed; the fourth found the lock gone and committed nothing.
        #expect(try world.processed() == Array(1...30))
        #expect(step.chunksRun == 3)
    }
}
