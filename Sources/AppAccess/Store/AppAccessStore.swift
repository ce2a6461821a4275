import Foundation
import Ledger
import QDSQL

/// The app's tables, and the only code that names them.
public struct AppAccessStore {
    let sql: any SQLConnection

    public init(_ connection: any SQLConnection) { sql = connection }

    // MARK: One-time codes

    /// Makes the transactions about one mobile number (its codes, its devices) take turns
    /// until this one ends, when other writers run at once (PostgreSQL: a transaction-scoped
    /// advisory lock in a key space of its own); with one writer at a time (SQLite) they do
    /// already. Without it two requests at once could both pass a throttle or a device count.
    public func lockPhone(_ phone: String) throws {
        guard sql.dialect == .postgres else { return }
        try sql.run("SELECT 1 FROM (SELECT pg_advisory_xact_lock(?, hashtext(?))) AS locked", [Self.phoneLockClass, phone])
    }

    /// The first key of the two-key advisory locks on mobile numbers ("qdap" in ASCII).
    static let phoneLockClass = 0x7164_6170

    public struct Code: Sendable {
        public var id: Int64
        public var mac: [UInt8]
        public var createdAt: TimestampMicros
        public var expiresAt: TimestampMicros
        public var attempts: Int
        public var usedAt: TimestampMicros?
    }

    /// Codes sent to a number since `since`, and the newest one's time.
    public func codesSent(phone: String, since: TimestampMicros) throws -> (count: Int, latest: TimestampMicros?) {
        try sql.one("SELECT count(*), max(created_at) FROM app_sms_codes WHERE phone = ? AND created_at >= ?", [phone, since]) {
            (try $0.int(0), try $0.optionalInt64(1))
        } ?? (0, nil)
    }

    public func insertCode(phone: String, mac: [UInt8], at now: TimestampMicros, expiresAt: TimestampMicros) throws {
        try sql.run("INSERT INTO app_sms_codes (phone, code_mac, created_at, expires_at) VALUES (?, ?, ?, ?)", [phone, mac, now, expiresAt])
    }

    /// The newest code sent to a number: only that one can be used.
    public func latestCode(phone: String) throws -> Code? {
        try sql.one("SELECT id, code_mac, created_at, expires_at, attempts, used_at FROM app_sms_codes WHERE phone = ? ORDER BY id DESC LIMIT 1", [phone]) {
            Code(id: try $0.int64(0), mac: try $0.bytes(1), createdAt: try $0.int64(2), expiresAt: try $0.int64(3), attempts: try $0.int(4), usedAt: try $0.optionalInt64(5))
        }
    }

    /// Counts a try of a code, unless `max` tries were made already (by anyone, at once
    /// included); false when none were left.
    public func countAttempt(codeID: Int64, max: Int) throws -> Bool {
        try sql.run("UPDATE app_sms_codes SET attempts = attempts + 1 WHERE id = ? AND attempts < ? AND used_at IS NULL", [codeID, max]) == 1
    }

    /// Uses a code; false when it was used already (a code opens one session, once).
    public func useCode(codeID: Int64, at now: TimestampMicros) throws -> Bool {
        try sql.run("UPDATE app_sms_codes SET used_at = ? WHERE id = ? AND used_at IS NULL", [now, codeID]) == 1
    }

    // MARK: Devices

    public struct Device: Sendable, Hashable {
        public var id: Int64
        public var walletID: Int64
        public var publicKey: [UInt8]
        public var label: String
        public var registeredAt: TimestampMicros
        public var revokedAt: TimestampMicros?
    }

    public func insertDevice(walletID: Int64, publicKey: [UInt8], label: String, at now: TimestampMicros) throws -> Int64 {
        guard let id = try sql.int64("INSERT INTO app_devices (wallet_id, public_key, label, registered_at) VALUES (?, ?, ?, ?) RETURNING id", [walletID, publicKey, label, now]) else {
            throw SQLError(.other, code: "no_id", message: "the new device has no id", sql: "INSERT INTO app_devices")
        }
        return id
    }

    private static let deviceColumns = "id, wallet_id, public_key, label, registered_at, revoked_at"
    private static func device(_ row: SQLRow) throws -> Device {
        Device(id: try row.int64(0), walletID: try row.int64(1), publicKey: try row.bytes(2), label: try row.text(3), registeredAt: try row.int64(4), revokedAt: try row.optionalInt64(5))
    }

    public func device(id: Int64) throws -> Device? {
        try sendDevice(id: id).get()
    }

    /// `device(id:)`, sent ahead (`SQLConnection.sendQuery`).
    public func sendDevice(id: Int64) throws -> SQLPending<Device?> {
        try sql.sendOne("SELECT \(Self.deviceColumns) FROM app_devices WHERE id = ?", [id], Self.device)
    }

    /// The wallet's devices not revoked, oldest first.
    public func activeDevices(walletID: Int64) throws -> [Device] {
        try sql.all("SELECT \(Self.deviceColumns) FROM app_devices WHERE wallet_id = ? AND revoked_at IS NULL ORDER BY id", [walletID], Self.device)
    }

    /// Revokes a device and every refresh token it holds; false when it was revoked before.
    @discardableResult
    public func revokeDevice(id: Int64, reason: String, at now: TimestampMicros) throws -> Bool {
        let changed = try sql.run("UPDATE app_devices SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL", [now, reason, id]) == 1
        try sql.run("UPDATE app_refresh_tokens SET used_at = ? WHERE device_id = ? AND used_at IS NULL", [now, id])
        return changed
    }

    // MARK: Refresh tokens

    public struct RefreshToken: Sendable {
        public var deviceID: Int64
        public var expiresAt: TimestampMicros
        public var usedAt: TimestampMicros?
    }

    public func insertRefreshToken(hash: [UInt8], deviceID: Int64, at now: TimestampMicros, expiresAt: TimestampMicros) throws {
        try sql.run("INSERT INTO app_refresh_tokens (token_hash, device_id, issued_at, expires_at) VALUES (?, ?, ?, ?)", [hash, deviceID, now, expiresAt])
    }

    public func refreshToken(hash: [UInt8]) throws -> RefreshToken? {
        try sql.one("SELECT device_id, expires_at, used_at FROM app_refresh_tokens WHERE token_hash = ?", [hash]) {
            RefreshToken(deviceID: try $0.int64(0), expiresAt: try $0.int64(1), usedAt: try $0.optionalInt64(2))
        }
    }

    /// Uses a refresh token once; false when it was used (or revoked) before.
    public func useRefreshToken(hash: [UInt8], at now: TimestampMicros) throws -> Bool {
        try sql.run("UPDATE app_refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL", [now, hash]) == 1
    }

    // MARK: Challenges

    public func insertChallenge(deviceID: Int64, nonce: [UInt8], at now: TimestampMicros, expiresAt: TimestampMicros) throws -> Int64 {
        guard let id = try sql.int64("INSERT INTO app_challenges (device_id, nonce, created_at, expires_at) VALUES (?, ?, ?, ?) RETURNING id", [deviceID, nonce, now, expiresAt]) else {
            throw SQLError(.other, code: "no_id", message: "the new challenge has no id", sql: "INSERT INTO app_challenges")
        }
        return id
    }

    /// Spends a challenge of `deviceID` that is neither spent nor expired, in one statement,
    /// and answers its nonce; nil when there is no such challenge (a challenge confirms one
    /// payment, of the device it was made for).
    public func useChallenge(id: Int64, deviceID: Int64, at now: TimestampMicros) throws -> [UInt8]? {
        try sql.one("UPDATE app_challenges SET used_at = ? WHERE id = ? AND device_id = ? AND used_at IS NULL AND expires_at > ? RETURNING nonce",
                    [now, id, deviceID, now]) { try $0.bytes(0) }
    }

    /// Forgets challenges made before `before`; how many.
    public func purgeChallenges(before: TimestampMicros, limit: Int) throws -> Int {
        try sql.run("DELETE FROM app_challenges WHERE id IN (SELECT id FROM app_challenges WHERE created_at < ? ORDER BY created_at LIMIT ?)", [before, limit])
    }

    // MARK: Idempotent requests

    public struct Request: Sendable {
        public var operation: String
        public var requestHash: [UInt8]
        /// nil while the first request with the key is in flight.
        public var status: Int?
        public var response: String?
        public var leaseUntil: TimestampMicros
    }

    /// Records a request with its key as in flight until `leaseUntil`, unless the key was
    /// used before; the key's row as it stands either way, and whether this call made it.
    public func claimRequest(walletID: Int64, key: String, operation: String, requestHash: [UInt8], at now: TimestampMicros, leaseUntil: TimestampMicros) throws -> (Request, created: Bool) {
        let created = try sql.run("""
            INSERT INTO app_requests (wallet_id, idempotency_key, operation, request_hash, created_at, lease_until) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (wallet_id, idempotency_key) DO NOTHING
            """, [walletID, key, operation, requestHash, now, leaseUntil]) == 1
        if created { return (Request(operation: operation, requestHash: requestHash, status: nil, response: nil, leaseUntil: leaseUntil), true) }
        guard let row = try request(walletID: walletID, key: key) else {
            throw SQLError(.other, code: "no_row", message: "the request's row vanished", sql: "app_requests")
        }
        return (row, created)
    }

    public func request(walletID: Int64, key: String) throws -> Request? {
        try sql.one("SELECT operation, request_hash, status, response, lease_until FROM app_requests WHERE wallet_id = ? AND idempotency_key = ?", [walletID, key]) {
            Request(operation: try $0.text(0), requestHash: try $0.bytes(1), status: try $0.optionalInt(2), response: try $0.optionalText(3), leaseUntil: try $0.int64(4))
        }
    }

    /// Takes over a request whose lease ran out (its server died or gave up on it); false
    /// when another took it first or it finished meanwhile.
    public func renewLease(walletID: Int64, key: String, expired: TimestampMicros, leaseUntil: TimestampMicros) throws -> Bool {
        try sql.run("UPDATE app_requests SET lease_until = ? WHERE wallet_id = ? AND idempotency_key = ? AND status IS NULL AND lease_until = ?",
                    [leaseUntil, walletID, key, expired]) == 1
    }

    /// Stores the response a retry gets back.
    public func finishRequest(walletID: Int64, key: String, status: Int, response: String) throws {
        try sql.send("UPDATE app_requests SET status = ?, response = ? WHERE wallet_id = ? AND idempotency_key = ? AND status IS NULL", status, response, walletID, key)
    }

    /// Forgets a request that ended without an answer to keep (the server failed, or the
    /// credentials were wrong): the key may be used again.
    public func releaseRequest(walletID: Int64, key: String) throws {
        try sql.run("DELETE FROM app_requests WHERE wallet_id = ? AND idempotency_key = ? AND status IS NULL", [walletID, key])
    }

    /// Forgets finished requests made before `before`; how many.
    public func purgeRequests(before: TimestampMicros, limit: Int) throws -> Int {
        try sql.run("""
            DELETE FROM app_requests WHERE (wallet_id, idempotency_key) IN
                (SELECT wallet_id, idempotency_key FROM app_requests WHERE created_at < ? AND status IS NOT NULL ORDER BY created_at LIMIT ?)
            """, [before, limit])
    }
}
