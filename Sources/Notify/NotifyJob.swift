import Crypto
import Feeds
import Foundation
import GRDB
import JobRunner
import Ledger
import Logging

/// `notify`: queues reminders for bills still payable (three days before the due date, and
/// once overdue, once each), then delivers the outbox at least once, with a stable message id,
/// bounded retries with backoff, quiet hours for notices, and dead letters after the last try.
public enum NotifyJob {
    /// `pool` is the database the delivery step reads outside its transaction.
    public static func implementation(config: NotifyConfig, secret: [UInt8]?, fetcher: FeedFetcher, pool: DatabasePool) -> JobImplementation {
        JobImplementation(
            name: "notify",
            steps: [ReminderStep(), DeliverStep(config: config, secret: secret, fetcher: fetcher, pool: pool)],
            summary: { db, context in
                let rows = try Row.fetchAll(db, sql: "SELECT status, count(*) AS n FROM outbox GROUP BY status")
                var counts: [String: Int] = [:]
                for row in rows { counts[row["status"]] = row["n"] }
                return try JSONEncoder().encode(counts)
            },
            assess: { db, _ in
                (try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE status = 'dead'") ?? 0) > 0 ? .breaks : .clean
            })
    }

    /// The signature header of a body: hex HMAC-SHA256 under the shared secret.
    public static func signature(_ body: Data, secret: [UInt8]) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: secret))
        return "sha256=" + code.map { String(format: "%02x", $0) }.joined()
    }

    struct ReminderStep: TypedJobStep {
        struct Checkpoint: Codable, Sendable { var done: Bool }
        let name = "reminders"
        let checkpointVersion = 1
        func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(done: false) }
        func chunk(_ context: JobContext, db: Database, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            let now = context.clock.nowMicros()
            let today = ShanghaiCalendar.date(at: now)
            let soon = today.adding(days: 3).iso
            var written = 0
            for row in try Row.fetchAll(db, sql: """
                SELECT b.biller, b.bill_id, b.due_fen, b.due_date, b.wallet_id, w.phone FROM bills b JOIN wallets w ON w.id = b.wallet_id
                WHERE b.status = 'payable' AND b.due_date <= ? ORDER BY b.id LIMIT ?
                """, arguments: [soon, context.chunkSizeMax]) {
                let overdue = (row["due_date"] as String) < today.iso
                let id = "\(overdue ? "overdue" : "reminder"):\(row["biller"] as String):\(row["bill_id"] as String)"
                let phone: String = row["phone"]
                let payload = ["biller": row["biller"] as String, "bill_id": row["bill_id"] as String, "amount": Money(fen: row["due_fen"]).yuanString,
                               "due_date": row["due_date"] as String, "phone": String(phone.prefix(3)) + "****" + String(phone.suffix(4)), "event": overdue ? "overdue" : "due_soon"]
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                try db.execute(sql: """
                    INSERT INTO outbox (message_id, wallet_id, kind, urgent, payload, created_at, not_before) VALUES (?, ?, 'reminder', 0, ?, ?, ?)
                    ON CONFLICT (message_id) DO NOTHING
                    """, arguments: [id, row["wallet_id"] as Int64, String(decoding: try encoder.encode(payload), as: UTF8.self), now, now])
                written += db.changesCount
            }
            return (Checkpoint(done: true), ChunkCounts(written: written, done: true))
        }
    }

    struct DeliverStep: TypedJobStep {
        struct Checkpoint: Codable, Sendable { var round: Int }
        struct Outcome: Codable { var id: Int64; var delivered: Bool; var error: String? }

        let config: NotifyConfig
        let secret: [UInt8]?
        let fetcher: FeedFetcher
        let pool: DatabasePool
        let name = "deliver"
        let checkpointVersion = 1

        func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(round: 0) }

        /// Messages due now; outside quiet hours all of them, inside only the urgent ones.
        func due(_ db: Database, now: TimestampMicros) throws -> [Row] {
            let quiet = config.isQuiet(minuteOfDay: Int(ShanghaiCalendar.microsOfDay(at: now) / 60_000_000))
            return try Row.fetchAll(db, sql: """
                SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? AND not_before <= ? \(quiet ? "AND urgent = 1" : "")
                ORDER BY urgent DESC, id LIMIT ?
                """, arguments: [now, now, config.batchMax])
        }

        /// Delivery happens outside the transaction; a crash before the outcome commits means
        /// the message goes again (at least once; the receiver deduplicates by message id).
        func beforeChunk(_ context: JobContext, checkpoint: Data) throws -> Data? {
            let now = context.clock.nowMicros()
            let messages = try pool.read { db in try due(db, now: now) }
            var outcomes: [Outcome] = []
            for message in messages {
                let body = try JSONSerialization.data(withJSONObject: [
                    "message_id": message["message_id"] as String, "kind": message["kind"] as String,
                    "wallet_id": message["wallet_id"] as Int64? ?? 0, "created_at": PaymentReportWriter.isoTime(message["created_at"]),
                    "payload": (try? JSONSerialization.jsonObject(with: Data((message["payload"] as String).utf8))) ?? [:],
                ], options: [.sortedKeys])
                do {
                    switch config.sink {
                    case .webhook(let url):
                        guard let secret else { throw FeedError(.authentication, "QDWALLET_WEBHOOK_SECRET is not set: webhook messages must be signed") }
                        let status = try fetcher.post(url: url, body: body, headers: [
                            "X-QDWallet-Message-Id: \(message["message_id"] as String)",
                            "X-QDWallet-Signature: \(NotifyJob.signature(body, secret: secret))",
                        ])
                        guard (200..<300).contains(status) else { throw FeedError(.unreachable, "the webhook answered HTTP \(status)") }
                    case .file(let path):
                        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) }
                        guard let handle = FileHandle(forWritingAtPath: path) else { throw FeedError(.io, "cannot write the notification file", context: path) }
                        handle.seekToEndOfFile()
                        handle.write(body + Data("\n".utf8))
                        try handle.close()
                    }
                    outcomes.append(Outcome(id: message["id"], delivered: true, error: nil))
                } catch {
                    outcomes.append(Outcome(id: message["id"], delivered: false, error: "\(error)"))
                }
            }
            return try JSONEncoder().encode(outcomes)
        }

        func chunk(_ context: JobContext, db: Database, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            let outcomes = try context.prepared.map { try JSONDecoder().decode([Outcome].self, from: $0) } ?? []
            let now = context.clock.nowMicros()
            var counts = ChunkCounts(read: outcomes.count)
            for outcome in outcomes {
                if outcome.delivered {
                    try db.execute(sql: "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL WHERE id = ? AND status = 'pending'", arguments: [now, outcome.id])
                    counts.written += 1
                } else {
                    let attempts = (try Int.fetchOne(db, sql: "SELECT attempts FROM outbox WHERE id = ?", arguments: [outcome.id]) ?? 0) + 1
                    let wait = min(config.backoffMaxSeconds, config.backoffInitialSeconds << min(attempts - 1, 20))
                    let jittered = Int64(Int.random(in: max(1, wait / 2)...max(1, wait))) * 1_000_000
                    let dead = attempts >= config.attemptsMax
                    try db.execute(sql: "UPDATE outbox SET attempts = ?, status = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                                   arguments: [attempts, dead ? "dead" : "pending", now + jittered, String((outcome.error ?? "").prefix(300)), outcome.id])
                    counts.failed += 1
                }
            }
            // One pass a run: what failed waits for its backoff and a later run.
            counts.done = true
            return (Checkpoint(round: checkpoint.round + 1), counts)
        }
    }
}
