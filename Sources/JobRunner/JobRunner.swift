import Foundation
import Ledger
import Logging
import QDSQL

/// What one `run` did.
public struct ExecutionReport: Sendable, Codable {
    public struct Step: Sendable, Codable {
        public var name: String
        public var status: String
        public var read: Int
        public var written: Int
        public var skipped: Int
        public var failed: Int
        public var chunks: Int
        /// Resumed from a checkpoint of an earlier execution.
        public var resumed: Bool
        /// Time this execution spent on the step (0 when an earlier one completed it).
        public var seconds: Double = 0
    }

    public var job: String
    public var executionId: Int64
    /// completed, failed, stopped, or already_completed (nothing was run).
    public var status: String
    public var parameters: [String: String]
    public var forced: Bool
    /// The earlier execution this one took over or resumed, if any.
    public var resumedExecutionId: Int64?
    public var abandonedExecutionId: Int64?
    public var steps: [Step]
    public var durationSeconds: Double
    public var message: String?
    /// The job's own summary (JSON).
    public var summary: Data?
    public var assessment: JobAssessment
}

/// Runs jobs: one live execution per job, chunks and checkpoints committed together, restart
/// from the last committed chunk, abandoned runs taken over.
public final class JobRunner: Sendable {
    public let store: SQLLedgerStore
    public let clock: any LedgerClock
    public let logger: Logger
    public let definitions: [String: JobDefinition]
    public let implementations: [String: JobImplementation]
    public let stop: StopSignal
    let progress: ProgressReporter
    let owner: String
    let sleep: @Sendable (Int) -> Void
    /// How often the heartbeat is refreshed while a step reads before its chunk; nil: a
    /// quarter of the job's stale limit, at most 30 s.
    let heartbeatEverySeconds: Double?

    public init(
        store: SQLLedgerStore, clock: any LedgerClock, logger: Logger,
        definitions: [JobDefinition], implementations: [JobImplementation],
        stop: StopSignal = StopSignal(), progress: ProgressReporter? = nil,
        owner: String? = nil, sleepMillis: @escaping @Sendable (Int) -> Void = { usleep(useconds_t($0) * 1_000) },
        heartbeatEverySeconds: Double? = nil
    ) {
        self.store = store
        self.clock = clock
        self.logger = logger
        self.definitions = Dictionary(definitions.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.implementations = Dictionary(implementations.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.stop = stop
        self.progress = progress ?? ProgressReporter(logger: logger)
        self.owner = owner ?? "\(ProcessInfo.processInfo.hostName):\(getpid())"
        self.sleep = sleepMillis
        self.heartbeatEverySeconds = heartbeatEverySeconds
    }

    private enum Start {
        case alreadyCompleted(instanceID: Int64)
        case started(executionID: Int64, instanceID: Int64, abandoned: Int64?)
    }

    /// A step's position while running.
    private struct Running {
        var state: JobRepository.StepState
        var resumed: Bool
    }

    /// Runs (or resumes) a job. Refuses a second live run of the same job; returns
    /// `already_completed` for an instance that completed, unless `force`.
    /// Whether a lock's owner ("host:pid") is a process of this host that no longer exists:
    /// its run was killed, and waiting out the stale limit would only delay the restart. A
    /// reused pid reads as alive, so the heartbeat rule still decides then.
    static func ownerIsGone(_ owner: String) -> Bool {
        guard let colon = owner.lastIndex(of: ":"), let pid = pid_t(owner[owner.index(after: colon)...]), pid > 0,
              String(owner[..<colon]) == ProcessInfo.processInfo.hostName, pid != getpid() else { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    public func run(_ name: String, overrides: [String: String] = [:], force: Bool = false, parametersAt: TimestampMicros? = nil) throws -> ExecutionReport {
        guard let definition = definitions[name] else {
            throw JobRefusal.unknownJob(name, known: definitions.keys.sorted())
        }
        guard let implementation = implementations[name] else { throw JobRefusal.notImplemented(name) }
        for key in overrides.keys.sorted() where definition.parameters[key] == nil {
            let known = definition.parameters.keys.sorted().joined(separator: ", ")
            guard let extra = implementation.extraParameter else {
                throw JobRefusal.unknownParameter(job: name, parameter: key, problem: "its parameters are \(known.isEmpty ? "none" : known)")
            }
            if let problem = extra(key) { throw JobRefusal.unknownParameter(job: name, parameter: key, problem: problem) }
        }
        let began = DispatchTime.now().uptimeNanoseconds
        let parameters = definition.resolvedParameters(now: parametersAt ?? clock.nowMicros(), overrides: overrides)
        // A business date is today or earlier: a run for 2099 would pay bills effective then.
        if let text = parameters["date"], let date = ShanghaiCalendar.Date(iso: text) {
            let today = ShanghaiCalendar.date(at: clock.nowMicros())
            guard date <= today else {
                throw JobRefusal.invalidParameter(job: name, parameter: "date", problem: "\(text) is in the future (today is \(today.iso) in Asia/Shanghai): a business date is today or earlier")
            }
        }
        // Credentials in a URL (--feed sftp://user:pass@...) are used, never stored or printed.
        let shownParameters = Redaction.parameters(parameters)
        let parametersText = Self.encode(shownParameters)
        let instanceKey = definition.instanceKey(parameters)
        let staleMicros = Int64(definition.staleAfterSeconds) * 1_000_000

        var abandonedID: Int64?
        let start: Start = try store.transaction { db, _ in
            let now = clock.nowMicros()
            if let lock = try JobRepository.lock(db, job: name) {
                let age = now - lock.heartbeatAt
                let ownerGone = Self.ownerIsGone(lock.owner)
                if age < staleMicros && !ownerGone {
                    throw JobRefusal.alreadyRunning(job: name, executionID: lock.executionID, owner: lock.owner, heartbeatAgeSeconds: max(0, age / 1_000_000))
                }
                let why = ownerGone ? "its process \(lock.owner) is gone" : "heartbeat stopped \(age / 1_000_000) s"
                try JobRepository.markAbandoned(db, executionID: lock.executionID, message: "\(why) before \(owner) took over", now: now)
                abandonedID = lock.executionID
            }
            let instance = try JobRepository.instance(db, job: name, key: instanceKey, parameters: parametersText, now: now)
            if instance.completedAt != nil && !force {
                return .alreadyCompleted(instanceID: instance.id)
            }
            let executionID = try JobRepository.startExecution(db, instanceID: instance.id, forced: force, owner: owner, parameters: parametersText, now: now)
            try JobRepository.takeLock(db, job: name, executionID: executionID, owner: owner, now: now)
            return .started(executionID: executionID, instanceID: instance.id, abandoned: abandonedID)
        }
        if let abandonedID {
            logger.warning("took over an abandoned run", metadata: ["job": "\(name)", "abandoned_execution": "\(abandonedID)"])
        }

        guard case .started(let executionID, let instanceID, _) = start else {
            logger.info("instance already completed; nothing to do", metadata: ["job": "\(name)", "instance": "\(instanceKey)"])
            return ExecutionReport(job: name, executionId: 0, status: "already_completed", parameters: shownParameters, forced: false, resumedExecutionId: nil, abandonedExecutionId: abandonedID, steps: [], durationSeconds: 0, message: "this instance completed earlier; use --force for a new attempt", summary: nil, assessment: .clean)
        }
        logger.info("job started", metadata: ["job": "\(name)", "execution": "\(executionID)", "parameters": "\(instanceKey)", "forced": "\(force)"])
        let context = JobContext(jobName: name, executionID: executionID, parameters: parameters, chunkSizeMax: definition.chunkSizeMax, clock: clock, logger: logger, stop: stop)

        var reports: [ExecutionReport.Step] = []
        var resumedFrom: Int64?
        func finish(_ status: String, _ message: String?) throws -> ExecutionReport {
            var summary: Data?
            var assessment = JobAssessment.clean
            try store.transaction { db, _ in
                let now = clock.nowMicros()
                if status == "completed" {
                    summary = try implementation.summary?(db, context)
                    assessment = try implementation.assess?(db, context) ?? .clean
                    try JobRepository.completeInstance(db, instanceID: instanceID, now: now)
                }
                try JobRepository.finishExecution(db, executionID: executionID, status: status, message: message, summary: summary, now: now)
                try JobRepository.releaseLock(db, job: name, executionID: executionID)
            }
            let duration = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
            let level: Logger.Level = status == "completed" ? .info : .error
            logger.log(level: level, "job \(status)", metadata: ["job": "\(name)", "execution": "\(executionID)", "seconds": "\(String(format: "%.2f", duration))", "message": "\(message ?? "")"])
            return ExecutionReport(job: name, executionId: executionID, status: status, parameters: shownParameters, forced: force, resumedExecutionId: resumedFrom, abandonedExecutionId: abandonedID, steps: reports, durationSeconds: duration, message: message, summary: summary, assessment: assessment)
        }

        for step in implementation.steps {
            var running: Running
            let stepBegan = DispatchTime.now().uptimeNanoseconds
            do {
                running = try prepare(step, context: context, instanceID: instanceID, executionID: executionID, force: force)
            } catch {
                return try finish("failed", "step \(step.name) could not start: \(error)")
            }
            if running.resumed { resumedFrom = resumedFrom ?? previousExecution(instanceID: instanceID, before: executionID) }
            if running.state.status == "completed" {
                reports.append(report(step.name, running))
                continue
            }
            let total = try? store.database.read { db in try step.estimatedTotal(context, db: db) }
            progress.begin(step: step.name, total: total)
            while running.state.status != "completed" {
                if stop.requested {
                    progress.end(done: running.state.read)
                    reports.append(report(step.name, running, since: stepBegan))
                    return try finish("stopped", "stop requested; restart resumes at chunk \(running.state.chunks + 1) of step \(step.name)")
                }
                do {
                    var chunkContext = context
                    if step.readsBeforeChunk {
                        // On PostgreSQL the journal rows still waiting for their seal are
                        // sealed first, so that the reads' chain head is the latest commit's.
                        // A chain lock held past its timeout leaves them waiting: the check
                        // counts them as unsealed, and the reads go on.
                        do {
                            try store.sealPending()
                        } catch {
                            logger.warning("the journal's queue was not sealed before the reads", metadata: ["job": "\(name)", "step": "\(step.name)", "cause": "\(error)"])
                        }
                        let checkpoint = running.state.checkpoint
                        chunkContext.prepared = try keepingHeartbeat(context, definition: definition) { stop in
                            // The reads see a stop request of their own: the run's, or a lost lock.
                            var reading = context
                            reading.stop = stop
                            return try store.snapshot { db, ledger in try step.readBeforeChunk(reading, checkpoint: checkpoint, db: db, ledger: ledger) }
                        }
                    } else {
                        chunkContext.prepared = try step.beforeChunk(context, checkpoint: running.state.checkpoint)
                    }
                    running.state = try chunk(step, context: chunkContext, definition: definition, executionID: executionID, state: running.state)
                    logger.trace("chunk committed", metadata: ["job": "\(name)", "step": "\(step.name)", "chunk": "\(running.state.chunks)", "read": "\(running.state.read)"])
                } catch let abort as any AbortingError {
                    // The process must not touch the execution any more (it lost its lock, or
                    // it is dying): leave everything as a crash would.
                    progress.end(done: running.state.read)
                    throw abort
                } catch {
                    progress.end(done: running.state.read)
                    reports.append(report(step.name, running, since: stepBegan))
                    // Work interrupted by the stop request (a download cut short) is a stop.
                    if stop.requested {
                        return try finish("stopped", "stop requested; restart resumes at chunk \(running.state.chunks + 1) of step \(step.name)")
                    }
                    return try finish("failed", "step \(step.name), chunk \(running.state.chunks + 1): \(error)")
                }
                progress.update(done: running.state.read)
            }
            progress.end(done: running.state.read)
            reports.append(report(step.name, running, since: stepBegan))
        }
        return try finish("completed", nil)
    }

    private func report(_ name: String, _ running: Running, since began: UInt64? = nil) -> ExecutionReport.Step {
        let seconds = began.map { Double(DispatchTime.now().uptimeNanoseconds - $0) / 1e9 } ?? 0
        return ExecutionReport.Step(name: name, status: running.state.status, read: running.state.read, written: running.state.written, skipped: running.state.skipped, failed: running.state.failed, chunks: running.state.chunks, resumed: running.resumed, seconds: seconds)
    }

    private func previousExecution(instanceID: Int64, before executionID: Int64) -> Int64? {
        try? store.database.read { db in
            try JobRepository.previousExecution(db, instanceID: instanceID, before: executionID)
        }
    }

    /// The step's starting state in this execution: fresh, or carried over from the last
    /// committed chunk of an earlier execution of the same instance.
    private func prepare(_ step: any JobStep, context: JobContext, instanceID: Int64, executionID: Int64, force: Bool) throws -> Running {
        try store.transaction { db, _ in
            let now = clock.nowMicros()
            var resumed = false
            var state: JobRepository.StepState
            if !force, let prior = try JobRepository.latestStep(db, instanceID: instanceID, step: step.name, before: executionID) {
                resumed = true
                state = prior
                if prior.checkpointVersion != step.checkpointVersion {
                    state.checkpoint = try step.upgrade(checkpoint: prior.checkpoint, from: prior.checkpointVersion)
                    state.checkpointVersion = step.checkpointVersion
                }
                state.status = prior.status == "completed" ? "completed" : "started"
            } else {
                state = JobRepository.StepState(status: "started", read: 0, written: 0, skipped: 0, failed: 0, chunks: 0, checkpointVersion: step.checkpointVersion, checkpoint: try step.initialCheckpoint(context))
            }
            try JobRepository.insertStep(db, executionID: executionID, step: step.name, state: state, now: now)
            return Running(state: state, resumed: resumed)
        }
    }

    /// One chunk and its checkpoint in one transaction, with bounded retries for transient
    /// faults (a database busy past its timeout).
    private func chunk(_ step: any JobStep, context: JobContext, definition: JobDefinition, executionID: Int64, state: JobRepository.StepState) throws -> JobRepository.StepState {
        var attempt = 1
        while true {
            do {
                let work: (any SQLConnection, any LedgerWriting) throws -> JobRepository.StepState = { db, ledger in
                    let now = self.clock.nowMicros()
                    guard try JobRepository.heartbeat(db, job: context.jobName, executionID: executionID, now: now) else {
                        throw JobRunnerError.lostLock(job: context.jobName, executionID: executionID)
                    }
                    let result = try step.runChunk(context, db: db, ledger: ledger, checkpoint: state.checkpoint)
                    var next = state
                    next.checkpoint = result.checkpoint
                    next.read += result.read
                    next.written += result.written
                    next.skipped += result.skipped
                    next.failed += result.failed
                    next.chunks += 1
                    next.status = result.done ? "completed" : "started"
                    try JobRepository.saveStep(db, executionID: executionID, step: step.name, state: next, now: now)
                    return next
                }
                return try store.transaction(work)
            } catch let error as LedgerError where error.code == .busy && attempt < definition.retry.attemptsMax {
                attempt += 1
                var wait = definition.retry.backoffMillis(beforeAttempt: attempt)
                if definition.retry.jitter { wait = Int.random(in: max(1, wait / 2)...max(1, wait)) }
                logger.warning("chunk retry", metadata: ["job": "\(context.jobName)", "step": "\(step.name)", "attempt": "\(attempt)", "wait_ms": "\(wait)", "cause": "\(error)"])
                sleep(wait)
            }
        }
    }

    /// Runs `body` (reads that hold no lock, for as long as they take) while another thread
    /// refreshes the run's heartbeat, so that the run is not taken for abandoned meanwhile.
    /// `body` gets a stop request of its own, raised by the run's (SIGTERM) and by a beat that
    /// finds the job's lock taken over: long reads look at it and end within a few thousand
    /// rows, and the run then aborts as having lost its lock (nothing of it written), instead
    /// of reading on for nothing.
    private func keepingHeartbeat<T>(_ context: JobContext, definition: JobDefinition, _ body: (StopSignal) throws -> T) throws -> T {
        let every = heartbeatEverySeconds ?? min(30, Double(definition.staleAfterSeconds) / 4)
        let (store, clock, job, executionID) = (store, clock, context.jobName, context.executionID)
        let lockLost = StopSignal()
        let stop = StopSignal(parent: context.stop)
        let keeper = HeartbeatKeeper(every: every) {
            do {
                let held = try store.database.write { db in try JobRepository.heartbeat(db, job: job, executionID: executionID, now: clock.nowMicros()) }
                if !held {
                    lockLost.request()
                    stop.request()
                }
                return held
            } catch {
                return true  // a busy writer: the next beat tries again
            }
        }
        defer { keeper.stop() }
        // Whatever the reads ended with (their stop included), a lost lock is what the run is told.
        let result = Result { try body(stop) }
        if lockLost.requested { throw JobRunnerError.lostLock(job: job, executionID: executionID) }
        return try result.get()
    }

    // MARK: Operator views

    /// Removes finished executions older than `days` days; instances are kept.
    public func purge(olderThanDays days: Int) throws -> (executions: Int, steps: Int) {
        let cutoff = clock.nowMicros() - Int64(days) * ShanghaiCalendar.dayMicros
        return try store.transaction { db, _ in try JobRepository.purge(db, endedBefore: cutoff) }
    }

    static func encode(_ parameters: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(parameters)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// An error after which the runner leaves the execution exactly as it is: no status, no lock
/// release. The chunk in progress is rolled back; a later run takes the job over once its
/// heartbeat is stale.
public protocol AbortingError: Error {}

/// For steps that write outside their chunk's transaction (a delivery recorded message by
/// message): before each such write, the run proves it still holds its job's lock, and
/// refreshes its heartbeat, so a run that lost its lock stops before doing more.
public enum JobLease {
    /// True, with the heartbeat refreshed, while the execution holds the job's lock.
    public static func refresh(_ db: any SQLConnection, context: JobContext, now: TimestampMicros) throws -> Bool {
        try JobRepository.heartbeat(db, job: context.jobName, executionID: context.executionID, now: now)
    }
}

/// Faults of the runner itself.
public enum JobRunnerError: AbortingError, Sendable, CustomStringConvertible {
    /// Another process took the job over (this one was stale): stop without committing.
    case lostLock(job: String, executionID: Int64)

    public var description: String {
        switch self {
        case .lostLock(let job, let executionID):
            "execution \(executionID) of \(job) lost its lock to another process (its heartbeat was stale); this process stops without committing"
        }
    }
}

/// A step that reads before its chunk (`readsBeforeChunk`) found its chunk given no reads:
/// a fault of the code, which fails the run rather than read inside the chunk's transaction.
public struct JobStepNotRead: Error, Sendable, CustomStringConvertible {
    public var step: String
    public init(step: String) { self.step = step }
    public var description: String { "step \(step) reads before its chunk, but its chunk was given no reads" }
}

/// A thread that calls `beat` every `every` seconds until stopped, or until a beat returns
/// false. `stop` returns once the thread has ended: no beat runs after it.
final class HeartbeatKeeper: @unchecked Sendable {
    private let condition = NSCondition()
    private var stopped = false
    private let ended = DispatchSemaphore(value: 0)

    init(every seconds: Double, beat: @escaping @Sendable () -> Bool) {
        let thread = Thread { [self] in
            condition.lock()
            while !stopped {
                let signalled = condition.wait(until: Date(timeIntervalSinceNow: seconds))
                if signalled || stopped { continue }
                condition.unlock()
                let held = beat()
                condition.lock()
                if !held { break }
            }
            condition.unlock()
            ended.signal()
        }
        thread.name = "qdwallet-heartbeat"
        thread.start()
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
        ended.wait()
    }
}
