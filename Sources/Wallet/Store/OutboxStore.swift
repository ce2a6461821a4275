import Foundation
import GRDB
import Ledger

/// The outbox table, and the only code that names it: messages are queued in the transaction
/// of what they report (`Outbox.enqueue`), then claimed, delivered or retried by the notify
/// job, and listed or queued again by operators.
public struct OutboxStore {
    let db: Database

    public init(_ db: Database) { self.db = db }

    /// Where a message stands.
    public enum Status: String, Sendable, Codable {
        case pending
        case delivered
        /// Failed after the last try: it waits for an operator (`notify retry`).
        case dead
    }

    /// Queues a message unless one with its id was queued before; true when it was queued now.
    @discardableResult
    public func enqueue(messageID: String, walletID: Int64?, kind: Outbox.Kind, payload: String, at now: TimestampMicros) throws -> Bool {
        try db.cachedStatement(sql: """
                INSERT INTO outbox (message_id, wallet_id, kind, urgent, payload, created_at, not_before)
                VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING
                """).execute(arguments: [messageID, walletID, kind.rawValue, kind == .securityAlert ? 1 : 0, payload, now, now])
        return db.changesCount == 1
    }

    /// How many messages stand in each status.
    public func countsByStatus() throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT status, count(*) FROM outbox GROUP BY status") { counts[row[0]] = row[1] }
        return counts
    }

    /// Messages due at `now` and not yet delivered.
    public func backlog(at now: TimestampMicros) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE status = ? AND next_attempt_at <= ? AND not_before <= ?", arguments: [Status.pending.rawValue, now, now]) ?? 0
    }

    public func deadCount() throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE status = ?", arguments: [Status.dead.rawValue]) ?? 0
    }

    /// A message as the delivery sends it.
    public struct Message: Sendable {
        public var id: Int64
        public var messageID: String
        public var kind: String
        public var walletID: Int64
        public var createdAt: Int64
        public var payload: String
    }

    /// Messages due now and claimed by no live delivery, urgent first; `urgentOnly` in quiet hours.
    public func due(at now: TimestampMicros, urgentOnly: Bool, limit: Int) throws -> [Message] {
        try Row.fetchAll(db, sql: """
            SELECT id, message_id, kind, wallet_id, created_at, payload FROM outbox WHERE status = ? AND next_attempt_at <= ? AND not_before <= ?
                AND (claimed_until IS NULL OR claimed_until < ?) \(urgentOnly ? "AND urgent = 1" : "")
            ORDER BY urgent DESC, id LIMIT ?
            """, arguments: [Status.pending.rawValue, now, now, now, limit])
            .map { Message(id: $0[0], messageID: $0[1], kind: $0[2], walletID: ($0[3] as Int64?) ?? 0, createdAt: $0[4], payload: $0[5]) }
    }

    /// Claims a pending message for `owner` until `until`, unless a live claim holds it.
    public func claim(id: Int64, owner: Int64, until: TimestampMicros, at now: TimestampMicros) throws -> Bool {
        try db.execute(sql: """
            UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id = ? AND status = ? AND (claimed_until IS NULL OR claimed_until < ?)
            """, arguments: [owner, until, id, Status.pending.rawValue, now])
        return db.changesCount == 1
    }

    /// Records a delivery made under `owner`'s claim.
    public func markDelivered(id: Int64, owner: Int64, at now: TimestampMicros) throws {
        try db.execute(sql: "UPDATE outbox SET status = ?, attempts = attempts + 1, delivered_at = ?, last_error = NULL, claimed_by = NULL, claimed_until = NULL WHERE id = ? AND claimed_by = ?",
                       arguments: [Status.delivered.rawValue, now, id, owner])
    }

    public func attempts(id: Int64) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT attempts FROM outbox WHERE id = ?", arguments: [id]) ?? 0
    }

    /// Records a failed try made under `owner`'s claim: tried again at `nextAttemptAt`, or dead.
    public func markFailed(id: Int64, owner: Int64, attempts: Int, dead: Bool, nextAttemptAt: TimestampMicros, error: String) throws {
        try db.execute(sql: "UPDATE outbox SET attempts = ?, status = ?, next_attempt_at = ?, last_error = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ? AND claimed_by = ?",
                       arguments: [attempts, (dead ? Status.dead : Status.pending).rawValue, nextAttemptAt, error, id, owner])
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
        let columns = "SELECT id, message_id, kind, status, attempts, created_at, last_error FROM outbox"
        let rows = deadOnly
            ? try Row.fetchAll(db, sql: columns + " WHERE status = ? ORDER BY id DESC LIMIT ?", arguments: [Status.dead.rawValue, limit])
            : try Row.fetchAll(db, sql: columns + " ORDER BY id DESC LIMIT ?", arguments: [limit])
        return rows.map { Line(id: $0[0], messageId: $0[1], kind: $0[2], status: $0[3], attempts: $0[4], createdAt: $0[5], lastError: $0[6]) }
    }

    /// Queues dead letters again (one, or all with `id` nil); how many were.
    public func requeueDead(id: Int64?) throws -> Int {
        if let id {
            try db.execute(sql: "UPDATE outbox SET status = ?, attempts = 0, next_attempt_at = 0 WHERE id = ? AND status = ?", arguments: [Status.pending.rawValue, id, Status.dead.rawValue])
        } else {
            try db.execute(sql: "UPDATE outbox SET status = ?, attempts = 0, next_attempt_at = 0 WHERE status = ?", arguments: [Status.pending.rawValue, Status.dead.rawValue])
        }
        return db.changesCount
    }
}
