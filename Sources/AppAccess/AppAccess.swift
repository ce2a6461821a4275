import Crypto
import Foundation
import Ledger
import QDSQL
import Wallet

/// The wallet app's sign-in and sessions, on the wallet service: one-time codes by SMS
/// (through the outbox), devices with their P-256 keys, access tokens and rotating refresh
/// tokens, and the app's idempotent requests. Each operation is one database transaction.
public struct AppAccess: Sendable {
    public struct Policy: Sendable {
        public var codeLifetimeSeconds: Int64 = 300
        public var codeAttemptsMax = 5
        /// The least time between two codes to one number, and the most codes a day.
        public var codeIntervalSeconds: Int64 = 60
        public var codesPerDayMax = 10
        public var accessTokenSeconds: Int64 = 600
        public var refreshTokenSeconds: Int64 = 30 * 86_400
        public var devicesMax = 5
        /// How long a request with an idempotency key may stay in flight before a retry may
        /// take it over, and how long its answer is kept (at least 24 hours).
        public var requestLeaseSeconds: Int64 = 60
        public var requestKeptSeconds: Int64 = 48 * 3_600
        /// How long a payment challenge may be signed.
        public var challengeSeconds: Int64 = 120
        /// A device this young confirms payments with both factors.
        public var newDeviceSeconds: Int64 = 86_400
        /// For this long after the payment password was reset, payments need both factors.
        public var passwordResetSeconds: Int64 = 86_400

        public init() {}
    }

    public let wallets: WalletService
    public let policy: Policy
    private let signingKeyBytes: [UInt8]
    private let codeKeyBytes: [UInt8]
    var signingKey: SymmetricKey { SymmetricKey(data: signingKeyBytes) }
    var codeKey: SymmetricKey { SymmetricKey(data: codeKeyBytes) }

    public init(wallets: WalletService, dataKey: DataKey, policy: Policy = Policy()) {
        self.wallets = wallets
        self.policy = policy
        signingKeyBytes = dataKey.derivedKey(purpose: "app access token v1").withUnsafeBytes { Array($0) }
        codeKeyBytes = dataKey.derivedKey(purpose: "app sms code v1").withUnsafeBytes { Array($0) }
    }

    var store: SQLLedgerStore { wallets.store }
    var now: TimestampMicros { wallets.ledger.clock.nowMicros() }
    static let micros: Int64 = 1_000_000

    // MARK: One-time codes

    /// Sends a six-digit code to a number (a wallet may not exist yet): queued in the outbox
    /// as an urgent `sms_code` message, kept here only as an HMAC. At most one a minute and
    /// ten a day per number. Returns the seconds the code is valid.
    public func sendCode(phone: String) throws -> Int64 {
        let phone = try Validation.phone(phone)
        let code = String(format: "%06d", Int.random(in: 0..<1_000_000))
        let at = now
        try store.transaction { db, _ in
            let access = AppAccessStore(db)
            try access.lockPhone(phone)
            let sent = try access.codesSent(phone: phone, since: at - 86_400 * Self.micros)
            if sent.count >= policy.codesPerDayMax { throw AppRefusal.codeThrottled }
            if let latest = sent.latest, at - latest < policy.codeIntervalSeconds * Self.micros { throw AppRefusal.codeThrottled }
            try access.insertCode(phone: phone, mac: mac(code, phone: phone), at: at, expiresAt: at + policy.codeLifetimeSeconds * Self.micros)
            let walletID = try? wallets.wallet(db, phone: phone).id
            try Outbox.enqueue(db, walletID: walletID, kind: .smsCode, payload: ["phone": phone, "code": code, "minutes": String(policy.codeLifetimeSeconds / 60)], now: at)
        }
        return policy.codeLifetimeSeconds
    }

    /// Seconds until a number may ask for another code (for Retry-After).
    public func codeRetryAfter(phone: String) throws -> Int64 {
        guard let phone = try? Validation.phone(phone) else { return policy.codeIntervalSeconds }
        let at = now
        let sent = try store.database.read { db in try AppAccessStore(db).codesSent(phone: phone, since: at - 86_400 * Self.micros) }
        guard let latest = sent.latest else { return 1 }
        if sent.count >= policy.codesPerDayMax { return max(1, (latest + 86_400 * Self.micros - at) / Self.micros) }
        return max(1, (latest + policy.codeIntervalSeconds * Self.micros - at + Self.micros - 1) / Self.micros)
    }

    func mac(_ code: String, phone: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Data("\(phone):\(code)".utf8), using: codeKey))
    }

    /// Checks the newest code of a number inside a transaction; the try is counted whatever
    /// the outcome, and the caller commits it (a wrong code is returned, not thrown).
    func checkCode(_ access: AppAccessStore, phone: String, code: String, at: TimestampMicros) throws -> AppRefusal? {
        guard let stored = try access.latestCode(phone: phone), stored.usedAt == nil else { return .codeInvalid }
        if stored.expiresAt <= at { return .codeExpired }
        guard try access.countAttempt(codeID: stored.id, max: policy.codeAttemptsMax) else { return .codeAttemptsExhausted }
        guard code.utf8.count == 6, code.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), HMAC<SHA256>.isValidAuthenticationCode(stored.mac, authenticating: Data("\(phone):\(code)".utf8), using: codeKey) else { return .codeInvalid }
        guard try access.useCode(codeID: stored.id, at: at) else { return .codeInvalid }
        return nil
    }

    // MARK: Devices and sessions

    /// What a sign-in or a refresh hands the app.
    public struct Session: Sendable, Hashable {
        public var walletID: Int64
        public var deviceID: Int64
        public var accessToken: String
        public var accessTokenExpiresIn: Int64
        public var refreshToken: String
        public var walletOpened: Bool
    }

    /// What a device registration asks for.
    public struct Registration: Sendable {
        public var phone: String
        public var code: String
        /// Base64 of the P-256 public key, X9.63 uncompressed (65 bytes).
        public var publicKey: String
        public var label: String
        /// Opens the wallet when the number has none.
        public var name: String?
        /// Needed for a new device of a wallet that has a password; sets it on a new wallet.
        public var paymentPassword: String?

        public init(phone: String, code: String, publicKey: String, label: String, name: String?, paymentPassword: String?) {
            self.phone = phone
            self.code = code
            self.publicKey = publicKey
            self.label = label
            self.name = name
            self.paymentPassword = paymentPassword
        }
    }

    /// Registers a device after the SMS code: opens the wallet when the number has none (its
    /// name and a new payment password needed), else needs the payment password (a new
    /// device is the moment an attacker with a stolen SIM would choose), and alerts the
    /// wallet's other devices. A wrong code or password is counted and committed.
    public func register(_ request: Registration) throws -> Session {
        let phone = try Validation.phone(request.phone)
        let key = try Self.devicePublicKey(request.publicKey)
        guard let label = Validation.text(request.label, charactersMax: 50) else { throw AppRefusal.invalidDeviceLabel }
        // The slow password work happens before the transaction, on what the wallet was then.
        let before = try store.database.read { db in try? wallets.wallet(db, phone: phone) }
        var newHash: PasswordHasher.Hash?
        var matched: Bool?
        if let before, before.hasPassword {
            guard let password = request.paymentPassword else { throw AppRefusal.passwordRequired }
            matched = try wallets.checkPasswordForPayment(phone: phone, password: password)
        } else {
            guard let password = request.paymentPassword else { throw AppRefusal.passwordRequired }
            if before == nil {
                guard let name = request.name else { throw AppRefusal.nameRequired }
                _ = try Validation.name(name)
            }
            newHash = try wallets.hashPassword(password)
        }
        let at = now
        let outcome: Result<Session, any Error> = try store.transaction { db, tx in
            let access = AppAccessStore(db)
            // The number's code, wallet and device count, read and changed by one request at a time.
            try access.lockPhone(phone)
            if let refusal = try checkCode(access, phone: phone, code: request.code, at: at) { return .failure(refusal) }
            var record = try? wallets.wallet(db, phone: phone)
            if (record == nil) != (before == nil) || record?.hasPassword != before?.hasPassword { throw AppRefusal.registrationConflict }
            var opened = false
            if let existing = record {
                if let matched {
                    if let refusal = try wallets.recordPassword(db, wallet: existing, matched: matched) { return .failure(refusal) }
                } else if let newHash {
                    try wallets.setPassword(db, walletID: existing.id, newHash)
                }
            } else {
                record = try wallets.openWallet(db, tx, phone: phone, name: try Validation.name(request.name ?? ""))
                try wallets.setPassword(db, walletID: record!.id, newHash!)
                opened = true
            }
            let wallet = record!
            let others = try access.activeDevices(walletID: wallet.id)
            if others.count >= policy.devicesMax { return .failure(AppRefusal.tooManyDevices) }
            let deviceID = try access.insertDevice(walletID: wallet.id, publicKey: key, label: label, at: at)
            if !others.isEmpty {
                try Outbox.enqueue(db, walletID: wallet.id, kind: .securityAlert, payload: [
                    "event": "new_device", "phone": Mask.phone(wallet.phone), "device": label,
                ], now: at)
            }
            return .success(try issue(access, walletID: wallet.id, deviceID: deviceID, at: at, opened: opened))
        }
        return try outcome.get()
    }

    /// A new access token and a new refresh token for a device; the old refresh token is
    /// spent. A refresh token used twice means it was copied: the device is signed out and
    /// the wallet alerted.
    public func refresh(token: String) throws -> Session {
        let hash = Self.refreshHash(token)
        let at = now
        let outcome: Result<Session, any Error> = try store.transaction { db, _ in
            let access = AppAccessStore(db)
            guard let stored = try access.refreshToken(hash: hash), let device = try access.device(id: stored.deviceID) else { return .failure(AppRefusal.refreshTokenInvalid) }
            if device.revokedAt != nil { return .failure(AppRefusal.deviceRevoked) }
            if try stored.usedAt != nil || !access.useRefreshToken(hash: hash, at: at) {
                try access.revokeDevice(id: device.id, reason: "refresh_token_reused", at: at)
                let wallet = try wallets.wallet(db, id: device.walletID)
                try Outbox.enqueue(db, walletID: device.walletID, kind: .securityAlert, payload: [
                    "event": "device_signed_out", "phone": Mask.phone(wallet.phone), "device": device.label, "reason": "refresh_token_reused",
                ], now: at)
                return .failure(AppRefusal.refreshTokenReused)
            }
            if stored.expiresAt <= at { return .failure(AppRefusal.refreshTokenInvalid) }
            return .success(try issue(access, walletID: device.walletID, deviceID: device.id, at: at, opened: false))
        }
        return try outcome.get()
    }

    func issue(_ access: AppAccessStore, walletID: Int64, deviceID: Int64, at: TimestampMicros, opened: Bool) throws -> Session {
        var random = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in random.indices { random[index] = generator.next() }
        let refresh = "rt1." + Base64URL.encode(random)
        try access.insertRefreshToken(hash: Self.refreshHash(refresh), deviceID: deviceID, at: at, expiresAt: at + policy.refreshTokenSeconds * Self.micros)
        let token = AccessToken(walletID: walletID, deviceID: deviceID, expiresAt: at / Self.micros + policy.accessTokenSeconds)
        return Session(walletID: walletID, deviceID: deviceID, accessToken: token.signed(with: signingKey), accessTokenExpiresIn: policy.accessTokenSeconds,
                       refreshToken: refresh, walletOpened: opened)
    }

    /// An access token for a registered device, as a sign-in would issue (for tools that act
    /// as many devices at once: the load benchmark).
    public func accessToken(walletID: Int64, deviceID: Int64) -> String {
        AccessToken(walletID: walletID, deviceID: deviceID, expiresAt: now / Self.micros + policy.accessTokenSeconds).signed(with: signingKey)
    }

    /// SHA-256 of a payment's parameters as a JSON object, members sorted, no spaces, slashes
    /// unescaped: what the idempotency key is checked against and the device signs.
    public static func requestHash(_ parameters: [String: String]) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(SHA256.hash(data: (try? encoder.encode(parameters)) ?? Data()))
    }

    static func refreshHash(_ token: String) -> [UInt8] {
        Array(SHA256.hash(data: Data(token.utf8)))
    }

    static func devicePublicKey(_ text: String) throws(AppRefusal) -> [UInt8] {
        guard text.utf8.count <= 200, let data = Data(base64Encoded: text), data.count == 65,
              (try? P256.Signing.PublicKey(x963Representation: data)) != nil else { throw .invalidDeviceKey }
        return Array(data)
    }

    /// Who a request comes from: the wallet and the device of a valid access token whose
    /// device is still registered.
    public struct Principal: Sendable, Hashable {
        public var walletID: Int64
        public var deviceID: Int64
        /// The wallet's mobile number (what the wallet service names a wallet by).
        public var phone: String
        /// When the device was registered.
        public var registeredAt: TimestampMicros
        /// When the wallet's payment password was last reset (nil: never).
        public var passwordResetAt: TimestampMicros?
        /// The device's P-256 public key (X9.63), which signs its payments' challenges.
        public var publicKey: [UInt8]

        public init(walletID: Int64, deviceID: Int64, phone: String, registeredAt: TimestampMicros, passwordResetAt: TimestampMicros? = nil, publicKey: [UInt8]) {
            self.walletID = walletID
            self.deviceID = deviceID
            self.phone = phone
            self.registeredAt = registeredAt
            self.passwordResetAt = passwordResetAt
            self.publicKey = publicKey
        }
    }

    public func authenticate(bearer: String) throws -> Principal {
        let token = try AccessToken.verify(bearer, key: signingKey, now: now / Self.micros)
        // The device and its wallet: two reads in one round trip, no snapshot needed (a device
        // removed between them is refused by the next request).
        let (device, wallet) = try store.database.readEach { db in
            let device = try AppAccessStore(db).sendDevice(id: token.deviceID)
            let wallet = try wallets.sendWallet(db, id: token.walletID)
            return (try device.get(), try? wallet.get())
        }
        guard let device, device.walletID == token.walletID, let wallet else { throw AppRefusal.tokenInvalid }
        guard device.revokedAt == nil else { throw AppRefusal.deviceRevoked }
        return Principal(walletID: token.walletID, deviceID: token.deviceID, phone: wallet.phone, registeredAt: device.registeredAt, passwordResetAt: wallet.passwordResetAt, publicKey: device.publicKey)
    }

    /// The wallet's devices that are not removed.
    public func devices(walletID: Int64) throws -> [AppAccessStore.Device] {
        try store.database.read { db in try AppAccessStore(db).activeDevices(walletID: walletID) }
    }

    /// Removes a device of the wallet (signs it out everywhere).
    public func removeDevice(walletID: Int64, deviceID: Int64) throws {
        let at = now
        try store.transaction { db, _ in
            let access = AppAccessStore(db)
            guard let device = try access.device(id: deviceID), device.walletID == walletID, device.revokedAt == nil else { throw AppRefusal.deviceNotFound }
            try access.revokeDevice(id: deviceID, reason: "removed", at: at)
        }
    }

    // MARK: Payment challenges

    /// A one-time challenge for the device to sign (its key unlocked by fingerprint or face on
    /// the phone): the nonce, base64url, valid `challengeSeconds`.
    public struct Challenge: Sendable, Hashable {
        public var id: Int64
        public var nonce: String
        public var expiresIn: Int64
    }

    public func challenge(for principal: Principal) throws -> Challenge {
        var nonce = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in nonce.indices { nonce[index] = generator.next() }
        let at = now
        let id = try store.database.write { db in
            try AppAccessStore(db).insertChallenge(deviceID: principal.deviceID, nonce: nonce, at: at, expiresAt: at + policy.challengeSeconds * Self.micros)
        }
        return Challenge(id: id, nonce: Base64URL.encode(nonce), expiresIn: policy.challengeSeconds)
    }

    /// What the device signs to confirm a payment: the challenge's nonce, the operation and
    /// the SHA-256 (hex) of the payment's parameters in the canonical form the idempotency
    /// key is checked against (a JSON object, members sorted, no spaces, slashes unescaped).
    public static func paymentMessage(nonce: String, operation: String, requestHash: [UInt8]) -> Data {
        Data("qdwallet-payment-v1\n\(nonce)\n\(operation)\n\(requestHash.map { String(format: "%02x", $0) }.joined())".utf8)
    }

    /// Verifies the device's ECDSA P-256 (SHA-256) signature, DER or raw 64 bytes in base64,
    /// over `paymentMessage`, and spends the challenge whatever the outcome: one try each. In
    /// the caller's transaction (the payment's); the refusal is returned, to be committed.
    public func checkPaymentSignature(_ db: any SQLConnection, _ principal: Principal, challengeID: Int64, signature: String, operation: String, requestHash: [UInt8]) throws -> AppRefusal? {
        let at = now
        // The device's key as the request's token check read it (a device removed since is
        // refused from its next request on).
        guard let nonce = try AppAccessStore(db).useChallenge(id: challengeID, deviceID: principal.deviceID, at: at) else { return .challengeInvalid }
        let message = Self.paymentMessage(nonce: Base64URL.encode(nonce), operation: operation, requestHash: requestHash)
        return Self.verify(signature, message: message, publicKey: principal.publicKey) ? nil : .signatureInvalid
    }

    static func verify(_ signature: String, message: Data, publicKey: [UInt8]) -> Bool {
        guard signature.utf8.count <= 200, let bytes = Data(base64Encoded: signature),
              let key = try? P256.Signing.PublicKey(x963Representation: publicKey) else { return false }
        if let der = try? P256.Signing.ECDSASignature(derRepresentation: bytes), key.isValidSignature(der, for: message) { return true }
        if bytes.count == 64, let raw = try? P256.Signing.ECDSASignature(rawRepresentation: bytes), key.isValidSignature(raw, for: message) { return true }
        return false
    }

    /// Whether a payment from this device needs both factors whatever its amount: the device
    /// was registered within `newDeviceSeconds`, or the wallet's payment password was reset
    /// within `passwordResetSeconds` (whoever reset it may not be its owner).
    public func needsBothFactors(_ principal: Principal) -> Bool {
        let at = now
        if at - principal.registeredAt < policy.newDeviceSeconds * Self.micros { return true }
        if let reset = principal.passwordResetAt, at - reset < policy.passwordResetSeconds * Self.micros { return true }
        return false
    }

    // MARK: Idempotent requests

    /// What to do with a request that carries an idempotency key.
    public enum Claim: Sendable, Equatable {
        /// The first time (or a retry of one whose server gave up): go on, then `finish`.
        case proceed
        /// Answered before: send this again.
        case replay(status: Int, body: String)
        case inFlight
        /// The key was used with a different request.
        case mismatch
    }

    /// Claims an idempotency key in the caller's transaction (the payment's, so the key's
    /// record and its answer commit with the payment or not at all; a second request with the
    /// key waits for the first's transaction, then finds its answer). `requestHash`: SHA-256
    /// of the operation's parameters in a canonical form, without credentials (a retry with
    /// a corrected password is the same request).
    public func claim(_ db: any SQLConnection, walletID: Int64, key: String, operation: String, requestHash: [UInt8]) throws -> Claim {
        let at = now
        let access = AppAccessStore(db)
        let lease = at + policy.requestLeaseSeconds * Self.micros
        let (row, created) = try access.claimRequest(walletID: walletID, key: key, operation: operation, requestHash: requestHash, at: at, leaseUntil: lease)
        if created { return .proceed }
        guard row.operation == operation, row.requestHash == requestHash else { return .mismatch }
        if let status = row.status { return .replay(status: status, body: row.response ?? "") }
        if row.leaseUntil > at { return .inFlight }
        return try access.renewLease(walletID: walletID, key: key, expired: row.leaseUntil, leaseUntil: lease) ? .proceed : .inFlight
    }

    /// Keeps a request's answer for its retries (in the request's transaction).
    public func finish(_ db: any SQLConnection, walletID: Int64, key: String, status: Int, body: String) throws {
        try AppAccessStore(db).finishRequest(walletID: walletID, key: key, status: status, response: body)
    }

    /// Lets a key be used again: the request ended with nothing to keep.
    public func release(_ db: any SQLConnection, walletID: Int64, key: String) throws {
        try AppAccessStore(db).releaseRequest(walletID: walletID, key: key)
    }

    /// Forgets stored answers older than the policy keeps them, and challenges an hour past
    /// their making; how many rows, at most `limit` of each.
    public func purge(limit: Int = 1_000) throws -> Int {
        let at = now
        return try store.database.write { db in
            let access = AppAccessStore(db)
            return try access.purgeRequests(before: at - policy.requestKeptSeconds * Self.micros, limit: limit)
                + access.purgeChallenges(before: at - 3_600 * Self.micros, limit: limit)
        }
    }
}
