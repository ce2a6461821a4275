import Crypto
import Feeds
import Foundation
import JobRunner
import Billing
import Ledger
import Logging
import Synchronization
import Wallet
import QDSQL

/// `notify`: queues reminders for bills still payable (three days before the due date, and
/// once overdue, once each), then delivers the outbox at least once, with a stable message id,
/// bounded retries with backoff, quiet hours for notices, and dead letters after the last try.
public enum NotifyJob {
    /// `pool` is the database the delivery step reads outside its transaction.
    public static func implementation(config: NotifyConfig, secret: [UInt8]?, fetcher: FeedFetcher, database: any SQLDatabase) -> JobImplementation {
        JobImplementation(
            name: "notify",
            steps: [ReminderStep(), DeliverStep(config: config, secret: secret, fetcher: fetcher.with(limits: deliveryLimits(config, fetcher.limits)), database: database)],
            summary: { db, context in
                let outbox = OutboxStore(db)
                var counts = try outbox.countsByStatus()
                // What is due and still waiting when the run ends: the backlog the next run meets.
                counts["backlog"] = try outbox.backlog(at: context.clock.nowMicros())
                return try JSONEncoder().encode(counts)
            },
            assess: { db, _ in
                try OutboxStore(db).deadCount() > 0 ? .breaks : .clean
            })
    }

    /// A delivery's bounds: the whole exchange within `deliveryTimeoutSeconds`, and one try per
    /// run (a failure waits for its backoff, not for a retry inside the run).
    static func deliveryLimits(_ config: NotifyConfig, _ base: FetchLimits) -> FetchLimits {
        var limits = base
        limits.totalTimeoutSeconds = min(base.totalTimeoutSeconds, config.deliveryTimeoutSeconds)
        limits.connectTimeoutSeconds = min(base.connectTimeoutSeconds, config.deliveryTimeoutSeconds)
        limits.lowSpeedSeconds = min(base.lowSpeedSeconds, config.deliveryTimeoutSeconds)
        limits.attemptsMax = 1
        return limits
    }

    /// The signature header of a body: hex HMAC-SHA256 under the shared secret.
    public static func signature(_ body: Data, secret: [UInt8]) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: secret))
        return "sha256=" + code.map { String(format: "%02x", $0) }.joined()
    }

    /// Every payable bill due within three days is reminded once, and once more when overdue:
    /// a page of `chunk_size` bills a chunk, in bill order, from the first to the last (a run
    /// that stopped resumes after the last page it committed). Only the messages not queued
    /// before are written: a run reads what earlier runs reminded, it does not queue it again.
    struct ReminderStep: TypedJobStep {
        struct Checkpoint: Codable, Sendable {
            var done: Bool
            /// The last bill of the pages done (absent in a checkpoint of the first version,
            /// which read one page only: start from the first bill).
            var after: Int64?
        }
        let name = "reminders"
        let checkpointVersion = 1
        func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(done: false, after: 0) }
        func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            guard !checkpoint.done else { return (checkpoint, ChunkCounts(done: true)) }
            let now = context.clock.nowMicros()
            let today = ShanghaiCalendar.date(at: now)
            let soon = today.adding(days: 3).iso
            var written = 0
            let due = try BillStore(db).payable(dueOnOrBefore: soon, afterID: checkpoint.after ?? 0, limit: context.chunkSizeMax)
            let outbox = OutboxStore(db)
            func messageID(_ bill: BillStore.PayableBill) -> String { "\(bill.dueDate < today.iso ? "overdue" : "reminder"):\(bill.key.reference)" }
            let queued = try outbox.queued(messageIDs: due.map(messageID))
            let waiting = due.filter { !queued.contains(messageID($0)) }
            let wallets = try WalletStore(db).wallets(ids: waiting.map(\.walletID))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            for bill in waiting {
                guard let phone = wallets[bill.walletID]?.phone else { continue }
                let overdue = bill.dueDate < today.iso
                let payload = ["biller": bill.key.biller, "bill_id": bill.key.billID, "amount": Money(fen: bill.dueFen).yuanString,
                               "due_date": bill.dueDate, "phone": Mask.phone(phone), "event": overdue ? "overdue" : "due_soon"]
                if try outbox.enqueue(messageID: messageID(bill), walletID: bill.walletID, kind: .reminder, payload: String(decoding: try encoder.encode(payload), as: UTF8.self), at: now) {
                    written += 1
                }
            }
            let done = due.count < context.chunkSizeMax
            return (Checkpoint(done: done, after: due.last?.id ?? checkpoint.after),
                    ChunkCounts(read: due.count, written: written, skipped: due.count - written, done: done))
        }
    }

    /// Delivers the outbox until it is drained, the run's time budget is spent or a stop is
    /// asked: in rounds of at most `batchMax` due messages, each round with up to
    /// `concurrency` deliveries at once. Each message is claimed for a bounded lease before it
    /// is sent (after proving the run still holds its job lock) and its outcome recorded at
    /// once, so progress is kept message by message, a run that lost its lock sends nothing
    /// more, and two live runs never send the same message.
    struct DeliverStep: TypedJobStep {
        struct Checkpoint: Codable, Sendable { var round: Int; var startedAt: Int64 }
        struct Round: Sendable { var delivered: Int; var failed: Int; var more: Bool }

        let config: NotifyConfig
        let secret: [UInt8]?
        let fetcher: FeedFetcher
        let database: any SQLDatabase
        let name = "deliver"
        let checkpointVersion = 2

        func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(round: 0, startedAt: context.clock.nowMicros()) }

        func upgrade(checkpoint: Data, from version: Int) throws -> Data {
            // Version 1 was one pass a run: start this run's budget now.
            try JSONEncoder().encode(Checkpoint(round: 0, startedAt: SystemClock().nowMicros()))
        }

        /// Messages due now and claimed by no live delivery; outside quiet hours all of them,
        /// inside only the urgent ones.
        func due(_ db: any SQLConnection, now: TimestampMicros) throws -> [OutboxStore.Message] {
            let quiet = config.isQuiet(minuteOfDay: Int(ShanghaiCalendar.microsOfDay(at: now) / 60_000_000))
            return try OutboxStore(db).due(at: now, urgentOnly: quiet, limit: config.batchMax)
        }

        func prepare(_ context: JobContext, at checkpoint: Checkpoint) throws -> Round? {
            let now = context.clock.nowMicros()
            guard now - checkpoint.startedAt < Int64(config.runSecondsMax) * 1_000_000 else {
                return Round(delivered: 0, failed: 0, more: false)
            }
            let messages = try database.read { db in try due(db, now: now) }
            guard !messages.isEmpty else { return Round(delivered: 0, failed: 0, more: false) }
            let queue = Mutex((next: 0, delivered: 0, failed: 0, lostLock: false))
            let workers = max(1, min(config.concurrency, messages.count))
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while true {
                    let index: Int? = queue.withLock { state in
                        guard !state.lostLock, state.next < messages.count, !fetcher.shouldStop() else { return nil }
                        state.next += 1
                        return state.next - 1
                    }
                    guard let index else { return }
                    switch deliver(messages[index], context: context) {
                    case .delivered: queue.withLock { $0.delivered += 1 }
                    case .failed: queue.withLock { $0.failed += 1 }
                    case .skipped: break
                    case .lostLock: queue.withLock { $0.lostLock = true }
                    }
                }
            }
            let state = queue.withLock { $0 }
            if state.lostLock { throw JobRunnerError.lostLock(job: context.jobName, executionID: context.executionID) }
            context.logger.info("delivery round", metadata: ["delivered": "\(state.delivered)", "failed": "\(state.failed)"])
            return Round(delivered: state.delivered, failed: state.failed, more: messages.count == config.batchMax || state.next < messages.count)
        }

        typealias Delivery = OutboxDelivery.Outcome

        /// Claims (after proving the run still holds its job lock), sends and records one message.
        func deliver(_ message: OutboxStore.Message, context: JobContext) -> Delivery {
            OutboxDelivery(config: config, secret: secret, fetcher: fetcher, database: database, clock: context.clock, logger: context.logger)
                .deliver(message, owner: context.executionID) { db, now in try JobLease.refresh(db, context: context, now: now) }
        }

        func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            let round = context.prepared(Round.self) ?? Round(delivered: 0, failed: 0, more: false)
            let next = Checkpoint(round: checkpoint.round + 1, startedAt: checkpoint.startedAt)
            let budgetLeft = context.clock.nowMicros() - checkpoint.startedAt < Int64(config.runSecondsMax) * 1_000_000
            return (next, ChunkCounts(read: round.delivered + round.failed, written: round.delivered, failed: round.failed, done: !(round.more && budgetLeft)))
        }
    }

    /// The development sink: one JSON line per message, appended under a lock so that
    /// concurrent deliveries never interleave.
    enum FileSink {
        static let lock = Mutex(())

        static func append(_ line: Data, to path: String) throws {
            try lock.withLock { _ in
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) }
                guard let handle = FileHandle(forWritingAtPath: path) else { throw FeedError(.io, "cannot write the notification file", context: path) }
                defer { try? handle.close() }
                try handle.seekToEnd()
                try handle.write(contentsOf: line)
            }
        }
    }
}
