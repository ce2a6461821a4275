import Foundation
import Ledger
import QDSQL

/// The outbox table, and the only code that names it: messages are queued in the transaction
/// of what they report (`Outbox.enqueue`), then claimed, delivered or retried by the notify
/// job, and listed or queued again by operators. Written once against the SQL layer.
public struct OutboxStore {
    let sql: any SQLConnection

    public init(_ connection: any SQLConnection) { sql = connection }

    /// Where a message stands.
    public enum Status: String, Sendable, Codable {
        case pending
        case delivered
        /// Failed after the last try: it waits for an operator (`notify retry`).
        case dead
    }

    /// A message to queue.
    public struct NewMessage: Sendable {
        var messageID: String
        var walletID: Int64?
        var kind: Outbox.Kind
        var payload: String
        var at: TimestampMicros

        public init(messageID: String, walletID: Int64?, kind: Outbox.Kind, payload: String, at: TimestampMicros) {
            (self.messageID, self.walletID, self.kind, self.payload, self.at) = (messageID, walletID, kind, payload, at)
        }
    }

    /// Queues messages in a few multi-row statements; one whose id was queued before (or
    /// earlier in the list) is left out.
    public func enqueue(_ messages: [NewMessage]) throws {
        try sql.sendRows("INSERT INTO outbox (message_id, wallet_id, kind, urgent, payload, created_at, not_before) VALUES", row: "(?, ?, ?, ?, ?, ?, ?)",
                        "ON CONFLICT (message_id) DO NOTHING",
                        values: messages.map { [.text($0.messageID), $0.walletID.sqlValue, .text($0.kind.rawValue), $0.kind.isUrgent.sqlValue, .text($0.payload), .integer($0.at), .integer($0.at)] })
    }

    /// Queues a message unless one with its id was queued before; true when it was queued now.
    @discardableResult
    public func enqueue(messageID: String, walletID: Int64?, kind: Outbox.Kind, payload: String, at now: TimestampMicros) throws -> Bool {
        try sql.execute("""
            INSERT INTO outbox (message_id, wallet_id, kind, urgent, payload, created_at, not_before)
            VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING
            """, messageID, walletID, kind.rawValue, kind.isUrgent, payload, now, now) == 1
    }

    /// Of `messageIDs`, those queued before (500 a statement).
    public func queued(messageIDs: [String]) throws -> Set<String> {
        var found: Set<String> = []
        for start in stride(from: 0, to: messageIDs.count, by: 500) {
            let part = Array(messageIDs[start..<min(start + 500, messageIDs.count)])
            found.formUnion(try sql.texts("SELECT message_id FROM outbox WHERE message_id IN (\(part.map { _ in "?" }.joined(separator: ",")))", part))
        }
        return found
    }

    /// How many messages stand in each status.
    public func countsByStatus() throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for (status, count) in try sql.all("SELECT status, count(*) FROM outbox GROUP BY status", [], { (try $0.text(0), try $0.int(1)) }) {
            counts[status] = count
        }
        return counts
    }

    /// Messages due at `now` and not yet delivered.
    public func backlog(at now: TimestampMicros) throws -> Int {
        Int(try sql.int64("SELECT count(*) FROM outbox WHERE status = ? AND next_attempt_at <= ? AND not_before <= ?", [Status.pending.rawValue, now, now]) ?? 0)
    }

    public func deadCount() throws -> Int {
        Int(try sql.int64("SELECT count(*) FROM outbox WHERE status = ?", [Status.dead.rawValue]) ?? 0)
    }

    /// A message as the delivery sends it.
    public struct Message: Sendable {
        public var id: Int64
        public var messageID: String
        public var kind: String
        /// None for a code sent to a number that has no wallet yet.
        public var walletID: Int64?
        public var createdAt: Int64
        public var payload: String
    }

    /// A wallet's security alerts after the one with id `after` (all kept, delivered or not:
    /// the app's stream reads them as they are queued), oldest first.
    public func securityAlerts(walletID: Int64, after: Int64, limit: Int) throws -> [(id: Int64, createdAt: Int64, payload: String)] {
        try sql.all("SELECT id, created_at, payload FROM outbox WHERE wallet_id = ? AND kind = ? AND id > ? ORDER BY id LIMIT ?",
                    [walletID, Outbox.Kind.securityAlert.rawValue, after, limit]) { (try $0.int64(0), try $0.int64(1), try $0.text(2)) }
    }

    /// The id of a wallet's newest security alert (0: none).
    public func latestSecurityAlert(walletID: Int64) throws -> Int64 {
        try sql.int64("SELECT coalesce(max(id), 0) FROM outbox WHERE wallet_id = ? AND kind = ?", [walletID, Outbox.Kind.securityAlert.rawValue]) ?? 0
    }

    /// Messages due now and claimed by no live delivery, urgent first; `urgentOnly` in quiet hours.
    public func due(at now: TimestampMicros, urgentOnly: Bool, limit: Int) throws -> [Message] {
        try sql.all("""
            SELECT id, message_id, kind, wallet_id, created_at, payload FROM outbox WHERE status = ? AND next_attempt_at <= ? AND not_before <= ?
                AND (claimed_until IS NULL OR claimed_until < ?) AND (urgent = 1 OR ? = 0)
            ORDER BY urgent DESC, id LIMIT ?
            """, [Status.pending.rawValue, now, now, now, urgentOnly, limit]) {
            Message(id: try $0.int64(0), messageID: try $0.text(1), kind: try $0.text(2), walletID: try $0.optionalInt64(3), createdAt: try $0.int64(4), payload: try $0.text(5))
        }
    }

    /// Claims a pending message for `owner` until `until`, unless a live claim holds it.
    public func claim(id: Int64, owner: Int64, until: TimestampMicros, at now: TimestampMicros) throws -> Bool {
        try sql.execute("""
            UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id = ? AND status = ? AND (claimed_until IS NULL OR claimed_until < ?)
            """, owner, until, id, Status.pending.rawValue, now) == 1
    }

    /// Records a delivery made under `owner`'s claim; a one-time code's payload is emptied.
    public func markDelivered(id: Int64, owner: Int64, at now: TimestampMicros) throws {
        try sql.execute("""
            UPDATE outbox SET status = ?, attempts = attempts + 1, delivered_at = ?, last_error = NULL, claimed_by = NULL, claimed_until = NULL,
                payload = CASE WHEN kind = ? THEN '{}' ELSE payload END
            WHERE id = ? AND claimed_by = ?
            """, Status.delivered.rawValue, now, Outbox.Kind.smsCode.rawValue, id, owner)
    }

    public func attempts(id: Int64) throws -> Int {
        Int(try sql.int64("SELECT attempts FROM outbox WHERE id = ?", [id]) ?? 0)
    }

    /// Records a failed try made under `owner`'s claim: tried again at `nextAttemptAt`, or dead.
    public func markFailed(id: Int64, owner: Int64, attempts: Int, dead: Bool, nextAttemptAt: TimestampMicros, error: String) throws {
        try sql.execute("UPDATE outbox SET attempts = ?, status = ?, next_attempt_at = ?, last_error = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ? AND claimed_by = ?",
                        attempts, (dead ? Status.dead : Status.pending).rawValue, nextAttemptAt, error, id, owner)
    }

    /// A message as operators see it.
    public struct Line: Sendable, Codable {
        public var id: Int64
        public var messageId: String
        public var kind: String
        public var status: String
        public var attempts: Int
        public var createdAt: Int64
        public var lastError: String?
    }

    /// Messages newest first (dead letters only with `deadOnly`).
    public func list(deadOnly: Bool, limit: Int) throws -> [Line] {
        try sql.all("SELECT id, message_id, kind, status, attempts, created_at, last_error FROM outbox WHERE status = ? OR ? = 0 ORDER BY id DESC LIMIT ?",
                    [Status.dead.rawValue, deadOnly, limit]) {
            Line(id: try $0.int64(0), messageId: try $0.text(1), kind: try $0.text(2), status: try $0.text(3), attempts: try $0.int(4), createdAt: try $0.int64(5), lastError: try $0.optionalText(6))
        }
    }

    /// Queues dead letters again (one, or all with `id` nil); how many were.
    public func requeueDead(id: Int64?) throws -> Int {
        if let id {
            return try sql.execute("UPDATE outbox SET status = ?, attempts = 0, next_attempt_at = 0 WHERE id = ? AND status = ?", Status.pending.rawValue, id, Status.dead.rawValue)
        }
        return try sql.execute("UPDATE outbox SET status = ?, attempts = 0, next_attempt_at = 0 WHERE status = ?", Status.pending.rawValue, Status.dead.rawValue)
    }
}
