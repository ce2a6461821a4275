import Foundation
import JobRunner
import Ledger
import QDSQL
import Synchronization

/// A shipped job step with a hook in its reads before its chunk, which it otherwise runs as
/// it is: `whileReading` runs once the reads' snapshot has begun.
public struct HookedStep: JobStep {
    public let inner: any JobStep
    public let whileReading: @Sendable () throws -> Void

    public init(inner: any JobStep, whileReading: @escaping @Sendable () throws -> Void) {
        self.inner = inner
        self.whileReading = whileReading
    }

    public var name: String { inner.name }
    public var checkpointVersion: Int { inner.checkpointVersion }
    public var readsBeforeChunk: Bool { inner.readsBeforeChunk }
    public func initialCheckpoint(_ context: JobContext) throws -> Data { try inner.initialCheckpoint(context) }
    public func readBeforeChunk(_ context: JobContext, checkpoint: Data, db: any SQLConnection, ledger: any LedgerReading) throws -> (any Sendable)? {
        _ = try db.int("SELECT count(*) FROM ledger_transactions")  // the snapshot begins
        try whileReading()
        return try inner.readBeforeChunk(context, checkpoint: checkpoint, db: db, ledger: ledger)
    }
    public func runChunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, checkpoint: Data) throws -> ChunkResult {
        try inner.runChunk(context, db: db, ledger: ledger, checkpoint: checkpoint)
    }
}

/// Runs `body` on a thread of its own and waits for it (at most 20 s): a lock the calling
/// thread holds is then a failure of `body`, not a deadlock, and GRDB sees no nested access.
public func onAnotherThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Thread {
        let outcome = Result<T, any Error> { try body() }
        result.withLock { $0 = outcome }
        done.signal()
    }.start()
    guard done.wait(timeout: .now() + 20) == .success else { throw SupportError("the other thread did not end within 20 s") }
    return try result.withLock { $0 }!.get()
}

/// A value handed to another thread by a test that waits for it.
public struct Shared<T>: @unchecked Sendable {
    public let value: T
    public init(value: T) { self.value = value }
}
