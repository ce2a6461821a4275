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
    /// a page of `chunk_size` bills a chunk, the bills not reminded yet and due within three
    /// days (or overdue) first, then those told they were due soon and now overdue, each soonest
    /// due first. Each bill read moves to its next stage in the chunk's transaction, whether a
    /// message was queued for it or not (one queued before, a wallet without a phone), so the
    /// next run reads only bills to remind; the pages of a run follow each other in index
    /// order (a run that stopped resumes after the last page it committed), so a run reads a
    /// bill once. Only the messages not queued before are written.
    struct ReminderStep: TypedJobStep {
        struct Checkpoint: Codable, Sendable {
            var done: Bool
            /// The stage being read (`ReminderStage`: 0, then 1) and the last bill read in it,
            /// by due date and id.
            var stage: Int64 = 0
            var dueDate: String = ""
            var after: Int64 = 0
        }
        let name = "reminders"
        let checkpointVersion = 2
        func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(done: false) }
        func upgrade(checkpoint: Data, from version: Int) throws -> Data {
            // Version 1 paged every payable bill by id: a run under way starts the stages
            // over (the bills it reminded are found queued, and moved).
            struct Version1: Decodable { var done: Bool }
            return try JSONEncoder().encode(Checkpoint(done: try JSONDecoder().decode(Version1.self, from: checkpoint).done))
        }
        func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            guard !checkpoint.done else { return (checkpoint, ChunkCounts(done: true)) }
            let now = context.clock.nowMicros()
            let today = ShanghaiCalendar.date(at: now)
            let bills = BillStore(db)
            let limit = context.chunkSizeMax
            var next = checkpoint
            var due: [BillStore.PayableBill] = []
            if next.stage == BillStore.ReminderStage.none.rawValue {
                due = try bills.toRemind(at: .none, dueOnOrBefore: today.adding(days: 3).iso, afterDate: next.dueDate, afterID: next.after, limit: limit)
                if due.count < limit {
                    next = Checkpoint(done: false, stage: BillStore.ReminderStage.dueSoon.rawValue)
                } else if let last = due.last {
                    (next.dueDate, next.after) = (last.dueDate, last.id)
                }
            }
            if due.count < limit {
                let asked = limit - due.count
                let late = try bills.toRemind(at: .dueSoon, dueOnOrBefore: today.adding(days: -1).iso, afterDate: next.dueDate, afterID: next.after, limit: asked)
                due += late
                if let last = late.last { (next.dueDate, next.after) = (last.dueDate, last.id) }
                next.done = late.count < asked
            }
            let outbox = OutboxStore(db)
            func overdue(_ bill: BillStore.PayableBill) -> Bool { bill.dueDate < today.iso }
            func messageID(_ bill: BillStore.PayableBill) -> String { "\(overdue(bill) ? "overdue" : "reminder"):\(bill.key.reference)" }
            let queued = try outbox.queued(messageIDs: due.map(messageID))
            let waiting = due.filter { !queued.contains(messageID($0)) }
            let wallets = try WalletStore(db).wallets(ids: waiting.map(\.walletID))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            var messages: [OutboxStore.NewMessage] = []
            for bill in waiting {
                guard let phone = wallets[bill.walletID]?.phone else { continue }
                let payload = ["biller": bill.key.biller, "bill_id": bill.key.billID, "amount": Money(fen: bill.dueFen).yuanString,
                               "due_date": bill.dueDate, "phone": Mask.phone(phone), "event": overdue(bill) ? "overdue" : "due_soon"]
                messages.append(OutboxStore.NewMessage(messageID: messageID(bill), walletID: bill.walletID, kind: .reminder,
                                                       payload: String(decoding: try encoder.encode(payload), as: UTF8.self), at: now))
            }
            // In a few multi-row statements (on PostgreSQL one round trip a message made the
            // step six times SQLite's). Only this step, under the job's lock, makes reminder
            // ids, and none of these was queued a moment ago in this transaction: each is new.
            try outbox.enqueue(messages)
            try bills.markReminded(due.map(\.id), overdueBefore: today.iso)
            return (next, ChunkCounts(read: due.count, written: messages.count, skipped: due.count - messages.count, done: next.done))
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
