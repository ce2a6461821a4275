import Foundation

/// Pieces of a step's work prepared ahead, each on a thread of its own: the ingest starts the
/// next biller's fetch and read while the writer stages the feed before it; a biller's
/// payment report is written once the processing has passed the biller's last bill, or while
/// the report before it is written. Each is taken when its biller's chunk comes.
///
/// What is kept: one run's pieces, at most one an index. Starting one discards (with
/// `discard`, at once or when its thread ends) every piece of another run (one that stopped
/// or failed in between) and the piece started before for the same index. A new start never
/// waits for a thread that is still running.
final class Lookahead<Value: Sendable>: @unchecked Sendable {
    struct Key: Hashable, Sendable {
        var execution: Int64
        var index: Int
    }

    /// A piece kept: the start that made it, and its result once its thread has ended.
    private struct Piece {
        var generation: UInt64
        var result: Result<Value, any Error>?
    }

    private let threadName: String
    /// What a result nobody will take leaves behind, removed (a feed's spool).
    private let discard: @Sendable (Value) -> Void
    private let condition = NSCondition()
    private var pieces: [Key: Piece] = [:]
    private var generation: UInt64 = 0

    init(threadName: String, discard: @escaping @Sendable (Value) -> Void = { _ in }) {
        self.threadName = threadName
        self.discard = discard
    }

    /// Runs `work` for `key` on a new thread.
    func start(_ key: Key, _ work: @escaping @Sendable () throws -> Value) {
        condition.lock()
        for (kept, piece) in pieces where kept.execution != key.execution || kept == key {
            // Ended: discarded now; still running: its thread discards its own when it ends.
            discard(piece.result)
            pieces[kept] = nil
        }
        generation += 1
        let mine = generation
        pieces[key] = Piece(generation: mine)
        condition.unlock()
        let thread = Thread { [self] in
            let outcome = Result { try work() }
            condition.lock()
            defer { condition.unlock() }
            // Discarded meanwhile, or started again: the result is nobody's.
            guard pieces[key]?.generation == mine else { return discard(outcome) }
            pieces[key]?.result = outcome
            condition.broadcast()
        }
        thread.name = threadName
        thread.start()
    }

    /// Whether a piece was started for `key` and not taken yet (running or ended).
    func holds(_ key: Key) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return pieces[key] != nil
    }

    /// Whether a piece's thread is still running.
    var running: Bool {
        condition.lock()
        defer { condition.unlock() }
        return pieces.values.contains { $0.result == nil }
    }

    /// What was prepared for `key`, once its thread has ended; nil when nothing was started
    /// for it (the first biller, a resumed run) or it was discarded meanwhile. Taken once.
    func take(_ key: Key) throws -> Value? {
        condition.lock()
        defer { condition.unlock() }
        while let piece = pieces[key], piece.result == nil { condition.wait() }
        guard let taken = pieces[key]?.result else { return nil }
        pieces[key] = nil
        return try taken.get()
    }

    private func discard(_ result: Result<Value, any Error>?) {
        if case .success(let value)? = result { discard(value) }
    }
}
