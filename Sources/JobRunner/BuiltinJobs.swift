import Foundation
import Ledger
import QDSQL

/// The jobs that need nothing but the ledger.
public enum BuiltinJobs {
    public static var all: [JobImplementation] { [ledgerCheck, expireHolds] }

    /// `ledger-check`: the full verification of `qdwallet ledger check`, as a scheduled job
    /// (exit 3 when it finds violations).
    public static let ledgerCheck = JobImplementation(
        name: "ledger-check",
        steps: [LedgerCheckStep()],
        summary: { db, context in
            try JobQueries.checkpoint(db, executionID: context.executionID, step: "verify")
        },
        assess: { db, context in
            guard let data = try JobQueries.checkpoint(db, executionID: context.executionID, step: "verify") else { return .clean }
            return (try? JSONDecoder().decode(LedgerCheckStep.Checkpoint.self, from: data))?.ok == false ? .breaks : .clean
        })

    /// `expire-holds`: releases holds whose expiry has passed, in chunks.
    public static let expireHolds = JobImplementation(name: "expire-holds", steps: [ExpireHoldsStep()])
}

struct LedgerCheckStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable {
        var done: Bool
        var ok: Bool?
        var violationCount: Int?
        var violations: [String]?
    }

    let name = "verify"
    let checkpointVersion = 1
    /// The check reads the whole journal on a read snapshot: payments go on meanwhile (on
    /// SQLite a write transaction would hold the one writer's lock as long as the journal
    /// takes to read), and every pass sees the same state (on PostgreSQL a write transaction
    /// reads each statement's own latest commits).
    var readsBeforeChunk: Bool { true }

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(done: false) }

    func read(_ context: JobContext, at checkpoint: Checkpoint, db: any SQLConnection, ledger: any LedgerReading) throws -> LedgerCheckReport? {
        try Ledger.check(ledger, stopWhen: { context.stop.requested })
    }

    func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        guard let report = context.prepared(LedgerCheckReport.self) else {
            throw JobStepNotRead(step: name)
        }
        let result = Checkpoint(done: true, ok: report.ok, violationCount: report.violationCount, violations: report.violations.prefix(50).map(\.description))
        return (result, ChunkCounts(read: report.transactions, written: 0, failed: report.violationCount, done: true))
    }
}

struct ExpireHoldsStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable {
        var expired: Int
    }

    let name = "expire"
    let checkpointVersion = 1

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(expired: 0) }

    func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        let now = context.clock.nowMicros()
        let holds = try ledger.expiredOpenHolds(asOf: now, limit: context.chunkSizeMax)
        let requests = holds.map { PostingRequest(key: "ledger.expire.\($0.id)", action: .expireHold(holdID: $0.id), memo: "hold expired") }
        let results = try Ledger.postInBatches(requests, in: ledger, clock: context.clock)
        let committed = results.filter { $0.transactionID != nil }.count
        return (Checkpoint(expired: checkpoint.expired + committed), ChunkCounts(read: holds.count, written: committed, failed: holds.count - committed, done: holds.count < context.chunkSizeMax))
    }
}

