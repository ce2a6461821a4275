import Foundation

extension FeedReader {
    /// `read` with the parse and the XSD validation on a thread of their own: the records come
    /// to the caller's thread in batches through a bounded queue, so that a feed is parsed on
    /// one core while the caller writes what it read on the other. The callbacks run on the
    /// caller's thread, in document order, and the feed's errors are thrown as `read` throws
    /// them. Memory is bounded by `batch` times `depth` records, whatever the feed's size.
    /// When a callback throws, the reader thread is stopped and waited for before the error
    /// goes on: nothing of the feed outlives the call.
    public func readBeside(
        path: String, expectedBiller: String, expectedDate: String?, batch: Int = 512, depth: Int = 4,
        onHeader: (FeedHeader) throws -> Void,
        onBill: (FeedBill) throws -> Void,
        onCancel: (FeedCancel) throws -> Void
    ) throws -> FeedSummary {
        let channel = RecordChannel(depth: max(1, depth))
        let reader = self
        let batch = max(1, batch)
        let thread = Thread {
            defer { channel.finish() }
            var pending: [RecordChannel.Record] = []
            func send(_ event: RecordChannel.Event) throws {
                guard channel.put(event) else { throw RecordChannel.Stopped() }
            }
            do {
                let summary = try reader.read(
                    path: path, expectedBiller: expectedBiller, expectedDate: expectedDate,
                    onHeader: { try send(.header($0)) },
                    onBill: { bill in
                        pending.append(.bill(bill))
                        if pending.count >= batch {
                            try send(.records(pending))
                            pending.removeAll(keepingCapacity: true)
                        }
                    },
                    onCancel: { cancel in
                        pending.append(.cancel(cancel))
                        if pending.count >= batch {
                            try send(.records(pending))
                            pending.removeAll(keepingCapacity: true)
                        }
                    })
                if !pending.isEmpty { try send(.records(pending)) }
                try send(.done(summary))
            } catch is RecordChannel.Stopped {
                // The caller stopped reading: nothing to hand over.
            } catch {
                // The records read before the fault go first, as `read` hands them over.
                if !pending.isEmpty { guard channel.put(.records(pending)) else { return } }
                _ = channel.put(.failed(error))
            }
        }
        thread.name = "qdwallet-feed-reader"
        thread.start()
        defer {
            channel.cancel()
            channel.waitFinished()
        }
        while true {
            switch channel.take() {
            case .header(let header):
                try onHeader(header)
            case .records(let records):
                for record in records {
                    switch record {
                    case .bill(let bill): try onBill(bill)
                    case .cancel(let cancel): try onCancel(cancel)
                    }
                }
            case .done(let summary):
                return summary
            case .failed(let error):
                throw error
            }
        }
    }
}

/// The bounded queue between the reader thread and the caller.
final class RecordChannel: @unchecked Sendable {
    enum Record: Sendable {
        case bill(FeedBill)
        case cancel(FeedCancel)
    }

    enum Event: Sendable {
        case header(FeedHeader)
        case records([Record])
        case done(FeedSummary)
        case failed(any Error)
    }

    struct Stopped: Error {}

    private let condition = NSCondition()
    private var events: [Event] = []
    private var cancelled = false
    private var finished = false
    private let depth: Int

    init(depth: Int) { self.depth = depth }

    /// Waits for room; false when the caller stopped reading.
    func put(_ event: Event) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while events.count >= depth && !cancelled { condition.wait() }
        guard !cancelled else { return false }
        events.append(event)
        condition.broadcast()
        return true
    }

    /// Waits for the next event. The reader thread always ends with `done` or `failed`, or
    /// finishes without one only after `cancel`.
    func take() -> Event {
        condition.lock()
        defer { condition.unlock() }
        while events.isEmpty && !finished { condition.wait() }
        guard !events.isEmpty else {
            return .failed(FeedError(.io, "the feed reader stopped without an answer"))
        }
        let event = events.removeFirst()
        condition.broadcast()
        return event
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }

    func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    func waitFinished() {
        condition.lock()
        while !finished { condition.wait() }
        condition.unlock()
    }
}
