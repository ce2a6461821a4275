import Feeds
import Foundation
import Ledger
import Logging
import QDSQL
import Wallet

/// One delivery of outbox messages to the configured sink, at least once: each message is
/// claimed for a bounded lease before it is sent and its outcome recorded at once, so two
/// deliverers (the notify job, and `qdwallet serve` for urgent messages) never send a message
/// both, and one that dies mid-way leaves it to be sent again when its claim lapses.
public struct OutboxDelivery: Sendable {
    public enum Outcome: Sendable { case delivered, failed, skipped, lostLock }

    let config: NotifyConfig
    let secret: [UInt8]?
    let fetcher: FeedFetcher
    let database: any SQLDatabase
    let clock: any LedgerClock
    let logger: Logger

    /// `fetcher` is bounded by the config's delivery deadline here.
    public init(config: NotifyConfig, secret: [UInt8]?, fetcher: FeedFetcher, database: any SQLDatabase, clock: any LedgerClock, logger: Logger) {
        self.config = config
        self.secret = secret
        self.fetcher = fetcher.with(limits: NotifyJob.deliveryLimits(config, fetcher.limits))
        self.database = database
        self.clock = clock
        self.logger = logger
    }

    /// A claim outlives the slowest delivery, so it never lapses while its message is sent.
    var leaseMicros: Int64 { Int64(config.deliveryTimeoutSeconds + 30) * 1_000_000 }

    /// Delivers the urgent messages due now (one-time codes and security alerts), at most
    /// `limit`, one after another; what fails waits for its backoff as in the notify job.
    public func deliverUrgent(owner: Int64, limit: Int = 50) throws -> (delivered: Int, failed: Int) {
        let now = clock.nowMicros()
        let messages = try database.read { db in try OutboxStore(db).due(at: now, urgentOnly: true, limit: limit) }
        var delivered = 0, failed = 0
        for message in messages {
            switch deliver(message, owner: owner, proof: { _, _ in true }) {
            case .delivered: delivered += 1
            case .failed: failed += 1
            case .skipped, .lostLock: break
            }
        }
        return (delivered, failed)
    }

    /// Claims, sends and records one message; `proof` runs in the claim's transaction and
    /// says whether the deliverer may still send (the job's lock), else `.lostLock`.
    public func deliver(_ message: OutboxStore.Message, owner: Int64, proof: @escaping (any SQLConnection, TimestampMicros) throws -> Bool) -> Outcome {
        let id = message.id
        do {
            let claimed: Bool? = try database.write { db in
                let now = clock.nowMicros()
                guard try proof(db, now) else { return nil }
                return try OutboxStore(db).claim(id: id, owner: owner, until: now + leaseMicros, at: now)
            }
            guard let claimed else { return .lostLock }
            guard claimed else { return .skipped }
        } catch {
            logger.warning("cannot claim a message", metadata: ["id": "\(id)", "error": "\(error)"])
            return .skipped
        }
        var failure: String?
        do {
            try send(message)
        } catch {
            failure = "\(error)"
        }
        do {
            try database.write { db in
                let now = clock.nowMicros()
                let outbox = OutboxStore(db)
                if failure == nil {
                    try outbox.markDelivered(id: id, owner: owner, at: now)
                } else {
                    let attempts = try outbox.attempts(id: id) + 1
                    let wait = min(config.backoffMaxSeconds, config.backoffInitialSeconds << min(attempts - 1, 20))
                    let jittered = Int64(Int.random(in: max(1, wait / 2)...max(1, wait))) * 1_000_000
                    let dead = attempts >= config.attemptsMax
                    try outbox.markFailed(id: id, owner: owner, attempts: attempts, dead: dead, nextAttemptAt: now + jittered, error: String((failure ?? "").prefix(300)))
                }
            }
        } catch {
            // The claim lapses and the message goes again: at least once, never lost.
            logger.warning("cannot record a delivery", metadata: ["id": "\(id)", "error": "\(error)"])
        }
        return failure == nil ? .delivered : .failed
    }

    /// One message to the configured sink, within the delivery deadline.
    func send(_ message: OutboxStore.Message) throws {
        let body = try JSONSerialization.data(withJSONObject: [
            "message_id": message.messageID, "kind": message.kind,
            "wallet_id": message.walletID.map { $0 as Any } ?? NSNull(), "created_at": PaymentReportWriter.isoTime(message.createdAt),
            "payload": (try? JSONSerialization.jsonObject(with: Data(message.payload.utf8))) ?? [:],
        ], options: [.sortedKeys])
        switch config.sink {
        case .webhook(let url):
            guard let secret else { throw FeedError(.authentication, "QDWALLET_WEBHOOK_SECRET is not set: webhook messages must be signed") }
            let status = try fetcher.post(url: url, body: body, headers: [
                "X-QDWallet-Message-Id: \(message.messageID)",
                "X-QDWallet-Signature: \(NotifyJob.signature(body, secret: secret))",
            ])
            guard (200..<300).contains(status) else { throw FeedError(.unreachable, "the webhook answered HTTP \(status)") }
        case .file(let path):
            try NotifyJob.FileSink.append(body + Data("\n".utf8), to: path)
        }
    }
}
