import Foundation

/// One feed prepared ahead, on a thread of its own: the ingest starts the next biller's
/// fetch and read while the writer stages the feed before it, and takes the result when
/// that biller's chunk comes. At most one is kept: starting another discards the one before
/// (a run that stopped or failed in between), its spool removed, at once or when its thread
/// ends; the new one does not wait for it.
final class FeedLookahead: @unchecked Sendable {
    struct Key: Hashable, Sendable {
        var execution: Int64
        var index: Int
    }

    private let condition = NSCondition()
    private var key: Key?
    private var result: Result<IngestStep.Fetched, any Error>?

    /// Runs `work` for `key` on a new thread.
    func start(_ key: Key, _ work: @escaping @Sendable () throws -> IngestStep.Fetched) {
        condition.lock()
        // The one before, never taken and ended: its spool removed (one still running removes
        // its own when it ends).
        Self.discard(result)
        self.key = key
        result = nil
        condition.unlock()
        let thread = Thread { [self] in
            let outcome = Result { try work() }
            condition.lock()
            defer { condition.unlock() }
            guard self.key == key else { return Self.discard(outcome) }
            result = outcome
            condition.broadcast()
        }
        thread.name = "qdwallet-feed-ahead"
        thread.start()
    }

    /// What was prepared for `key`, once its thread has ended; nil when nothing was started
    /// for it (the first biller, a resumed run). Taken once.
    func take(_ key: Key) throws -> IngestStep.Fetched? {
        condition.lock()
        defer { condition.unlock() }
        guard self.key == key else { return nil }
        while result == nil { condition.wait() }
        let taken = result
        self.key = nil
        result = nil
        return try taken?.get()
    }

    /// Removes the spool of a result nobody will take.
    private static func discard(_ result: Result<IngestStep.Fetched, any Error>?) {
        if case .success(.readAhead(_, _, _, let spool?))? = result { spool.remove() }
    }
}
