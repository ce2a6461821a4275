import Foundation
import Ledger
import Logging
import QDSQL

/// What a step sees of its run.
public struct JobContext: Sendable {
    public var jobName: String
    public var executionID: Int64
    public var parameters: [String: String]
    public var chunkSizeMax: Int
    public var clock: any LedgerClock
    public var logger: Logger
    /// What the step's `beforeChunk` prepared outside the transaction for the coming chunk,
    /// as the step made it (read it back with `prepared(_:)`).
    public var prepared: (any Sendable)?
    /// The run's stop request (SIGTERM): long reads look at it and end early, so that a run
    /// ends within seconds whatever it is doing.
    public var stop = StopSignal()

    /// What `beforeChunk` prepared, as the type the step made it; nil when nothing was.
    public func prepared<T: Sendable>(_ type: T.Type) -> T? { prepared as? T }

    /// A parameter the step needs, or a refusal that names it.
    public func parameter(_ key: String) throws -> String {
        guard let value = parameters[key], !value.isEmpty else {
            throw JobRefusal.missingParameter(job: jobName, parameter: key)
        }
        return value
    }

    /// A date parameter ("YYYY-MM-DD").
    public func date(_ key: String) throws -> ShanghaiCalendar.Date {
        let text = try parameter(key)
        guard let date = ShanghaiCalendar.Date(iso: text) else {
            throw JobRefusal.invalidParameter(job: jobName, parameter: key, problem: "\"\(text.prefix(20))\" is not a date (YYYY-MM-DD)")
        }
        return date
    }
}

/// What one chunk did.
public struct ChunkResult: Sendable {
    /// The checkpoint after the chunk, encoded by the step.
    public var checkpoint: Data
    public var read: Int
    public var written: Int
    public var skipped: Int
    public var failed: Int
    /// No more chunks.
    public var done: Bool

    public init(checkpoint: Data, read: Int = 0, written: Int = 0, skipped: Int = 0, failed: Int = 0, done: Bool) {
        self.checkpoint = checkpoint
        self.read = read
        self.written = written
        self.skipped = skipped
        self.failed = failed
        self.done = done
    }
}

/// A restartable step: its work for one chunk and its checkpoint commit in the same database
/// transaction, so a run killed at any instant resumes from the last committed chunk.
public protocol JobStep: Sendable {
    var name: String { get }
    /// Bumped whenever the checkpoint's shape changes.
    var checkpointVersion: Int { get }
    /// The checkpoint before the first chunk.
    func initialCheckpoint(_ context: JobContext) throws -> Data
    /// Reads a checkpoint written by an earlier version (the default refuses, clearly).
    func upgrade(checkpoint: Data, from version: Int) throws -> Data
    /// How many items the step expects in all, when it knows (for progress and ETA).
    func estimatedTotal(_ context: JobContext, db: any SQLConnection) throws -> Int?
    /// Slow work for the coming chunk that must not hold the database (a download), done
    /// outside any transaction; the chunk sees its result as `context.prepared`, a typed value
    /// that stays in the process (it is never stored).
    func beforeChunk(_ context: JobContext, checkpoint: Data) throws -> (any Sendable)?
    /// Whether the coming chunk's reads run first, on one read snapshot and outside the
    /// chunk's transaction (`readBeforeChunk`): a step that reads much and writes little (the
    /// ledger's check, a reconciliation) must not hold the writer while it reads. On SQLite a
    /// write transaction is the one writer's lock, and payments would wait for it (and give up
    /// at their busy timeout) for as long as the reads take, which grows with the journal.
    var readsBeforeChunk: Bool { get }
    /// The reads for the coming chunk, on one snapshot taken after the checkpoint committed;
    /// the chunk sees their result as `context.prepared` (it is never stored). The run's
    /// heartbeat is kept while they go on.
    func readBeforeChunk(_ context: JobContext, checkpoint: Data, db: any SQLConnection, ledger: any LedgerReading) throws -> (any Sendable)?
    /// Runs one chunk of at most `context.chunkSizeMax` items inside the runner's transaction.
    func runChunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, checkpoint: Data) throws -> ChunkResult
}

extension JobStep {
    public func upgrade(checkpoint: Data, from version: Int) throws -> Data {
        throw JobRefusal.checkpointVersion(step: name, stored: version, supported: checkpointVersion)
    }

    public func estimatedTotal(_ context: JobContext, db: any SQLConnection) throws -> Int? { nil }

    public func beforeChunk(_ context: JobContext, checkpoint: Data) throws -> (any Sendable)? { nil }
    public var readsBeforeChunk: Bool { false }
    public func readBeforeChunk(_ context: JobContext, checkpoint: Data, db: any SQLConnection, ledger: any LedgerReading) throws -> (any Sendable)? { nil }
}

/// A step whose checkpoint is a Codable value.
public protocol TypedJobStep: JobStep {
    associatedtype Checkpoint: Codable & Sendable
    /// What `prepare` makes for a chunk outside the transaction (`Never`: nothing).
    associatedtype Prepared: Sendable = Never
    func start(_ context: JobContext) throws -> Checkpoint
    /// Slow work for the chunk that starts at `checkpoint`, outside any transaction; the chunk
    /// reads it with `context.prepared(Prepared.self)`.
    func prepare(_ context: JobContext, at checkpoint: Checkpoint) throws -> Prepared?
    /// The reads for the chunk that starts at `checkpoint`, on one read snapshot outside the
    /// chunk's transaction, when `readsBeforeChunk`; the chunk reads them with
    /// `context.prepared(Prepared.self)`.
    func read(_ context: JobContext, at checkpoint: Checkpoint, db: any SQLConnection, ledger: any LedgerReading) throws -> Prepared?
    /// Runs one chunk; returns the new checkpoint and the counts.
    func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts)
}

/// The counts of a typed chunk.
public struct ChunkCounts: Sendable {
    public var read = 0
    public var written = 0
    public var skipped = 0
    public var failed = 0
    public var done = false
    public init(read: Int = 0, written: Int = 0, skipped: Int = 0, failed: Int = 0, done: Bool = false) {
        self.read = read
        self.written = written
        self.skipped = skipped
        self.failed = failed
        self.done = done
    }
}

extension TypedJobStep {
    /// Nothing prepared (a step whose `Prepared` comes from `read`, or that has none).
    public func prepare(_ context: JobContext, at checkpoint: Checkpoint) throws -> Prepared? { nil }
    /// Nothing read (a step that does not read before its chunk).
    public func read(_ context: JobContext, at checkpoint: Checkpoint, db: any SQLConnection, ledger: any LedgerReading) throws -> Prepared? { nil }
}

extension TypedJobStep {
    public func initialCheckpoint(_ context: JobContext) throws -> Data {
        try JSONEncoder().encode(try start(context))
    }

    public func beforeChunk(_ context: JobContext, checkpoint: Data) throws -> (any Sendable)? {
        try prepare(context, at: try JSONDecoder().decode(Checkpoint.self, from: checkpoint))
    }

    public func readBeforeChunk(_ context: JobContext, checkpoint: Data, db: any SQLConnection, ledger: any LedgerReading) throws -> (any Sendable)? {
        try read(context, at: try JSONDecoder().decode(Checkpoint.self, from: checkpoint), db: db, ledger: ledger)
    }

    public func runChunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, checkpoint: Data) throws -> ChunkResult {
        let current = try JSONDecoder().decode(Checkpoint.self, from: checkpoint)
        let (next, counts) = try chunk(context, db: db, ledger: ledger, from: current)
        return ChunkResult(checkpoint: try JSONEncoder().encode(next), read: counts.read, written: counts.written, skipped: counts.skipped, failed: counts.failed, done: counts.done)
    }
}

/// How a completed run turned out, beyond "it ran".
public enum JobAssessment: String, Sendable, Codable {
    /// Nothing to report.
    case clean
    /// The run found breaks or rejected input: the operator must look (exit 3).
    case breaks
    /// Part of the work could not be done for an infrastructure fault (exit 4).
    case fault
}

/// A job's implementation: its steps in order, and what its run reports.
public struct JobImplementation: Sendable {
    public var name: String
    public var steps: [any JobStep]
    /// The job's own summary of an execution (JSON), for `jobs run --json`.
    public var summary: (@Sendable (any SQLConnection, JobContext) throws -> Data?)?
    /// How the completed run turned out.
    public var assess: (@Sendable (any SQLConnection, JobContext) throws -> JobAssessment)?
    /// Parameters the job takes beyond those its definition declares (`feed.QD-WATER` for
    /// the nightly run), with what is wrong with one it does not take; nil when it takes it.
    public var extraParameter: (@Sendable (String) -> String?)?

    public init(name: String, steps: [any JobStep], summary: (@Sendable (any SQLConnection, JobContext) throws -> Data?)? = nil,
                extraParameter: (@Sendable (String) -> String?)? = nil, assess: (@Sendable (any SQLConnection, JobContext) throws -> JobAssessment)? = nil) {
        self.name = name
        self.steps = steps
        self.summary = summary
        self.assess = assess
        self.extraParameter = extraParameter
    }
}

/// Why the job runner refused or stopped a run.
public enum JobRefusal: Error, Sendable, CustomStringConvertible {
    case unknownJob(String, known: [String])
    case notImplemented(String)
    case missingParameter(job: String, parameter: String)
    case invalidParameter(job: String, parameter: String, problem: String)
    /// A parameter the job does not take: a typo must not let a run fall back to defaults.
    case unknownParameter(job: String, parameter: String, problem: String)
    case alreadyRunning(job: String, executionID: Int64, owner: String, heartbeatAgeSeconds: Int64)
    case checkpointVersion(step: String, stored: Int, supported: Int)

    public var description: String {
        switch self {
        case .unknownJob(let name, let known):
            "no job named \"\(name.prefix(64))\" in the jobs folder (known: \(known.joined(separator: ", ")))"
        case .notImplemented(let name):
            "job \"\(name)\" is defined but this build has no implementation for it"
        case .missingParameter(let job, let parameter):
            "job \(job) needs the parameter \(parameter) (give --\(parameter) or --param \(parameter)=VALUE)"
        case .invalidParameter(let job, let parameter, let problem):
            "job \(job), parameter \(parameter): \(problem)"
        case .unknownParameter(let job, let parameter, let problem):
            "job \(job) takes no parameter \(parameter.prefix(64)): \(problem)"
        case .alreadyRunning(let job, let executionID, let owner, let age):
            "job \(job) is already running: execution \(executionID) held by \(owner), last heartbeat \(age) s ago"
        case .checkpointVersion(let step, let stored, let supported):
            "step \(step) has a checkpoint of version \(stored), this build reads version \(supported): finish or abandon that run with the build that wrote it, or force a new attempt"
        }
    }
}
