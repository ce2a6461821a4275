@testable import Billing
import Foundation
import JobRunner
import Ledger
import QDSQL
import Testing

/// A step whose chunks' prepared values are shown to `observe` before the chunk runs.
struct WatchedStep: JobStep {
    let inner: any JobStep
    let observe: @Sendable ((any Sendable)?) throws -> Void
    var name: String { inner.name }
    var checkpointVersion: Int { inner.checkpointVersion }
    func initialCheckpoint(_ context: JobContext) throws -> Data { try inner.initialCheckpoint(context) }
    func estimatedTotal(_ context: JobContext, db: any SQLConnection) throws -> Int? { try inner.estimatedTotal(context, db: db) }
    func beforeChunk(_ context: JobContext, checkpoint: Data) throws -> (any Sendable)? {
        let prepared = try inner.beforeChunk(context, checkpoint: checkpoint)
        try observe(prepared)
        return prepared
    }
    func runChunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, checkpoint: Data) throws -> ChunkResult {
        try inner.runChunk(context, db: db, ledger: ledger, checkpoint: checkpoint)
    }
}

/// What every step's `Lookahead` must do with what nobody takes, run through one sequence:
/// a start superseded while its thread still runs (the new start does not wait; the old
/// result is discarded when its thread ends, never handed over), the new one taken once, and
/// one ended and never taken, discarded at the next start.
enum LookaheadHarness {
    /// Polls `condition` for up to five seconds.
    static func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<500 where !condition() { usleep(10_000) }
        return condition()
    }

    /// `make(name)` writes the file `name` in `directory` and returns the value that names
    /// it; `last` is the value of the final start, handed over as it is. Returns what the
    /// second start handed over.
    static func discardsWhatNobodyTakes<Value: Sendable>(_ lookahead: Lookahead<Value>, in directory: URL, suffix: String,
                                                         make: @escaping @Sendable (String) throws -> Value, last: @escaping @Sendable () throws -> Value) throws -> (taken: Value?, last: Value?) {
        func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: directory.appendingPathComponent(name + suffix).path) }
        let release = DispatchSemaphore(value: 0)
        lookahead.start(.init(execution: 1, index: 1)) {
            release.wait()
            return try make("slow")
        }
        // Started again for another run while the first still runs: no wait.
        let began = Date()
        lookahead.start(.init(execution: 2, index: 1)) { try make("next") }
        #expect(Date().timeIntervalSince(began) < 1)
        release.signal()
        #expect(eventually { exists("next") })
        let taken = try lookahead.take(.init(execution: 2, index: 1))
        #expect(exists("next"))
        // The first run's result is discarded when its thread ends, and never handed over.
        #expect(eventually { !exists("slow") })
        #expect(try lookahead.take(.init(execution: 1, index: 1)) == nil)
        #expect(try lookahead.take(.init(execution: 2, index: 1)) == nil)
        // Ended and never taken, then another started: discarded.
        lookahead.start(.init(execution: 3, index: 1)) { try make("ended") }
        #expect(eventually { exists("ended") })
        usleep(50_000)
        lookahead.start(.init(execution: 4, index: 2)) { try last() }
        #expect(eventually { !exists("ended") })
        return (taken, try lookahead.take(.init(execution: 4, index: 2)))
    }
}
