import Foundation

/// One piece of a step's work prepared ahead, on a thread of its own: the ingest starts the
/// next biller's fetch and read while the writer stages the feed before it, and the reports
/// step writes the next biller's report while this one is written; each takes the result
/// when that biller's chunk comes. At most one is kept: starting another discards the one
/// before (a run that stopped or failed in between) with `discard`, at once or when its
/// thread ends; the new one does not wait for it.
final class Lookahead<Value: Sendable>: @unchecked Sendable {
    struct Key: Hashable, Sendable {
        var execution: Int64
        var index: Int
    }

    private let threadName: String
    /// What a result nobody will take leaves behind, removed (a feed's spool).
    private let discard: @Sendable (Value) -> Void
    private let condition = NSCondition()
    private var key: Key?
    private var result: Result<Value, any Error>?

    init(threadName: String, discard: @escaping @Sendable (Value) -> Void = { _ in }) {
        self.threadName = threadName
        self.discard = discard
    }

    /// Runs `work` for `key` on a new thread.
    func start(_ key: Key, _ work: @escaping @Sendable () throws -> Value) {
        condition.lock()
        // The one before, never taken and ended: discarded (one still running discards its
        // own when it ends).
        discard(result)
        self.key = key
        result = nil
        condition.unlock()
        let thread = Thread { [self] in
            let outcome = Result { try work() }
            condition.lock()
            defer { condition.unlock() }
            guard self.key == key else { return discard(outcome) }
            result = outcome
            condition.broadcast()
        }
        thread.name = threadName
        thread.start()
    }

    /// What was prepared for `key`, once its thread has ended; nil when nothing was started
    /// for it (the first biller, a resumed run). Taken once.
    func take(_ key: Key) throws -> Value? {
        condition.lock()
        defer { condition.unlock() }
        guard self.key == key else { return nil }
        while result == nil { condition.wait() }
        let taken = result
        self.key = nil
        result = nil
        return try taken?.get()
    }

    private func discard(_ result: Result<Value, any Error>?) {
        if case .success(let value)? = result { discard(value) }
    }
}
