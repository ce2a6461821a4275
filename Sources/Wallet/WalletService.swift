import Crypto
import Foundation
import Ledger
import QDSQL
import Synchronization

/// A wallet as stored (personal data stays sealed; the name is the one given at opening).
public struct WalletRecord: Sendable, Hashable {
    public var id: Int64
    public var phone: String
    public var name: String
    public var frozen: Bool
    public var kycClass: Int
    public var kycVerified: Bool
    public var openedAt: TimestampMicros
    public var walletAccountID: AccountID
    public var pointsAccountID: AccountID
    public var hasPassword: Bool
    public var failedPasswordCount: Int
    public var lockedUntil: TimestampMicros
    /// The most autopay may take from this wallet on one business day; nil means the
    /// policy's default.
    public var autopayDailyLimitFen: Int64?
    /// When the payment password was last replaced (nil: set once, never reset).
    public var passwordResetAt: TimestampMicros?
}

/// Every wallet rule of qdwallet, for the CLI and the app alike. Each operation is one
/// database transaction; money moves only through the ledger, in that same transaction.
public struct WalletService: Sendable {
    public let store: SQLLedgerStore
    public let ledger: Ledger
    public let policy: WalletPolicy
    public let hasher: PasswordHasher
    /// Needed by real-name verification and cards only; `nil` makes those refuse clearly.
    public let dataKey: DataKey?
    /// Plans QR payments with the campaigns (the payment pipeline bill payments use too);
    /// nil: a QR payment is a plain transfer.
    public let planner: (any PaymentPlanner)?
    /// The cash account of each wallet locked so far, by mobile number (a wallet's account
    /// never changes): the next payment sends its lock ahead of reading the wallet.
    let lockHints = LockHints()

    public init(store: SQLLedgerStore, ledger: Ledger, policy: WalletPolicy = WalletPolicy(), hasher: PasswordHasher = PasswordHasher(), dataKey: DataKey?, planner: (any PaymentPlanner)? = nil) {
        self.store = store
        self.ledger = ledger
        self.policy = policy
        self.hasher = hasher
        self.dataKey = dataKey
        self.planner = planner
    }

    var now: TimestampMicros { ledger.clock.nowMicros() }

    func requireDataKey() throws -> DataKey {
        guard let dataKey else {
            throw WalletError(.dataKey, "this command needs the personal-data key: set QDWALLET_DATA_KEY (base64 of 32 bytes) or QDWALLET_DATA_KEY_FILE")
        }
        return dataKey
    }

    /// The ledger's idempotency key of a resident's request: the caller's key scoped by the
    /// wallet that makes it (as Stripe scopes keys by account), so two wallets choosing the
    /// same key never collide. A request committed before keys were scoped keeps its old
    /// key when it moved this wallet's money, so its retry is still a replay.
    func ledgerKey(_ kind: String, _ key: String, wallet: WalletRecord, tx: any LedgerWriting) throws -> String {
        let (legacy, scoped) = ledgerKeys(kind, key, wallet: wallet)
        // Both in one read: the posting then knows the scoped key's record without asking.
        if let record = try tx.idempotencyRecords(keys: [legacy, scoped])[legacy], let transactionID = record.transactionID,
           try tx.entries(transactionID: transactionID).contains(where: { $0.accountID == wallet.walletAccountID })
            || tx.hold(id: transactionID)?.debitAccountID == wallet.walletAccountID {
            return legacy
        }
        return scoped
    }

    /// The two keys `ledgerKey` chooses between: the pre-scoping one and the scoped one.
    func ledgerKeys(_ kind: String, _ key: String, wallet: WalletRecord) -> (legacy: String, scoped: String) {
        ("\(kind):\(key)", "\(kind):w\(wallet.id):\(key)")
    }

    // MARK: Wallets

    /// Opens a wallet for a mobile number, with its CNY wallet account and PTS points account.
    public func openWallet(phone: String, name: String) throws -> WalletRecord {
        let phone = try Validation.phone(phone)
        let name = try Validation.name(name)
        return try store.transaction { db, tx in try openWallet(db, tx, phone: phone, name: name) }
    }

    /// Opens a wallet inside the caller's transaction (the app's registration opens the wallet
    /// and its first device together); `phone` and `name` must have passed `Validation`.
    public func openWallet(_ db: any SQLConnection, _ tx: any LedgerWriting, phone: String, name: String) throws -> WalletRecord {
        let wallets = WalletStore(db)
        if try wallets.phoneTaken(phone) {
            throw WalletRefusal.walletExists
        }
        let openedAt = now
        // Ledger codes carry the wallet's number, never the phone.
        let nextID = try wallets.nextWalletID()
        let cash = try ledger.openAccount(AccountSpec(code: "wallet:\(nextID)", asset: .cny, kind: .userWallet, rules: .noOverdraft), in: tx)
        // Points may go negative when a refund takes back points that were already spent.
        let points = try ledger.openAccount(AccountSpec(code: "points:\(nextID)", asset: .pts, kind: .userPoints, rules: .unrestricted), in: tx)
        try wallets.insertWallet(id: nextID, phone: phone, name: name, openedAt: openedAt, walletAccountID: cash.id, pointsAccountID: points.id)
        return try wallet(db, id: nextID)
    }


    /// The wallet of a mobile number.
    public func wallet(phone: String) throws -> WalletRecord {
        let phone = try Validation.phone(phone)
        return try store.database.read { db in try wallet(db, phone: phone) }
    }

    /// The wallet of a mobile number, inside the caller's transaction.
    public func wallet(_ db: any SQLConnection, phone: String) throws -> WalletRecord {
        guard let record = try WalletStore(db).wallet(phone: phone) else { throw WalletRefusal.walletNotFound }
        return record
    }

    /// The wallet, with its cash account locked until the transaction ends when other
    /// writers run at once (PostgreSQL), before anything a payment depends on is read: the
    /// password failures, the class limit's usage, the balance, a bill's status. Payments of
    /// one wallet take turns; those of different wallets never wait for each other. With one
    /// writer at a time (SQLite) the transaction already has the database to itself.
    ///
    /// A wallet locked before in this process has its lock sent ahead of the read, in one
    /// round trip: the read runs once the lock is granted, and is the read under the lock.
    public func lockedWallet(_ db: any SQLConnection, _ tx: any LedgerWriting, phone: String) throws -> WalletRecord {
        guard tx.concurrentWriters else { return try wallet(db, phone: phone) }
        if let known = lockHints.account(phone: phone) {
            try tx.lockAhead([known])
            let record = try wallet(db, phone: phone)
            if record.walletAccountID == known { return record }
        }
        let record = try wallet(db, phone: phone)
        _ = try tx.accountsForPosting([record.walletAccountID])
        lockHints.remember(phone: phone, account: record.walletAccountID)
        // Read again under the lock: a freeze or a verification may have committed meanwhile.
        return try wallet(db, phone: phone)
    }

    /// Locks the wallets' cash accounts (in one order, so two transactions never wait for
    /// each other in a cycle) when other writers run at once; see `lockedWallet`. The locked
    /// accounts as they stand (none with one writer at a time).
    @discardableResult
    public func lock(_ tx: any LedgerWriting, wallets: [WalletRecord]) throws -> [Account] {
        guard tx.concurrentWriters, !wallets.isEmpty else { return [] }
        return try tx.accountsForPosting(wallets.map(\.walletAccountID))
    }

    public func wallet(_ db: any SQLConnection, id: Int64) throws -> WalletRecord {
        try sendWallet(db, id: id).get()
    }

    /// `wallet(_:id:)`, sent ahead (`SQLConnection.sendQuery`): refused when its answer is read.
    public func sendWallet(_ db: any SQLConnection, id: Int64) throws -> SQLPending<WalletRecord> {
        try WalletStore(db).sendWallet(id: id).map { record in
            guard let record else { throw WalletRefusal.walletNotFound }
            return record
        }
    }

    /// Freezes or unfreezes a wallet: a frozen wallet cannot pay or withdraw and can still
    /// receive. The ledger account's rule changes in the same transaction.
    public func setFrozen(phone: String, frozen: Bool, reason: String) throws -> WalletRecord {
        guard reason.isEmpty || Validation.text(reason, charactersMax: 200) != nil else { throw WalletRefusal.invalidText }
        let phone = try Validation.phone(phone)
        return try store.transaction { db, tx in
            let record = try wallet(db, phone: phone)
            try WalletStore(db).setFrozen(walletID: record.id, frozen)
            var rules = AccountRules.noOverdraft
            rules.frozen = frozen
            _ = try ledger.setRules(accountID: record.walletAccountID, rules: rules, reason: reason.isEmpty ? (frozen ? "frozen by operator" : "unfrozen by operator") : reason, in: tx)
            return try wallet(db, id: record.id)
        }
    }

    // MARK: Real-name verification

    /// A submission as the operator sees it: masked.
    public struct KYCSubmission: Sendable, Hashable, Codable {
        public var id: Int64
        public var status: String
        public var idNumberMasked: String
        public var kycClass: Int?
        public var reason: String?
    }

    /// Submits name and resident ID number for review; both are sealed under the data key.
    public func submitKYC(phone: String, name: String, idNumber: String) throws -> KYCSubmission {
        let phone = try Validation.phone(phone)
        let name = try Validation.name(name)
        let id = try Validation.residentID(idNumber, today: ShanghaiCalendar.date(at: now))
        _ = try requireDataKey()
        return try store.transaction { db, tx in
            let key = try verifiedDataKey(db)
            let record = try lockedWallet(db, tx, phone: phone)
            let wallets = WalletStore(db)
            if try wallets.hasWaitingSubmission(walletID: record.id) {
                throw WalletRefusal.kycPending
            }
            // One person, one verified wallet: the class limits are per person, and a second
            // wallet would double them. Submissions from before fingerprints get theirs now.
            for old in try wallets.submissionsWithoutFingerprint() {
                let number = try key.open([UInt8](old.sealedNumber))
                try wallets.setFingerprint(submissionID: old.id, Data(key.fingerprint(number)))
            }
            let fingerprint = Data(key.fingerprint(id))
            if try wallets.fingerprintInUse(fingerprint, besides: record.id) {
                throw WalletRefusal.idNumberInUse
            }
            let submissionID = try wallets.insertSubmission(walletID: record.id, nameSealed: Data(try key.seal(name)), idNumberSealed: Data(try key.seal(id)),
                                                            idNumberMasked: Mask.residentID(id), fingerprint: fingerprint, at: now)
            return KYCSubmission(id: submissionID, status: "submitted", idNumberMasked: Mask.residentID(id), kycClass: nil, reason: nil)
        }
    }

    /// Approves the waiting submission with an account class (1, 2 or 3).
    public func approveKYC(phone: String, kycClass: Int) throws -> KYCSubmission {
        let phone = try Validation.phone(phone)
        guard (1...3).contains(kycClass) else { throw WalletRefusal.invalidClass }
        return try store.transaction { db, tx in
            let record = try lockedWallet(db, tx, phone: phone)
            let wallets = WalletStore(db)
            guard let waiting = try wallets.waitingSubmission(walletID: record.id) else { throw WalletRefusal.noKYCSubmission }
            try wallets.approveSubmission(id: waiting.id, kycClass: kycClass, at: now)
            try wallets.setVerified(walletID: record.id, kycClass: kycClass)
            return KYCSubmission(id: waiting.id, status: "approved", idNumberMasked: waiting.idNumberMasked, kycClass: kycClass, reason: nil)
        }
    }

    /// Rejects the waiting submission with a reason.
    public func rejectKYC(phone: String, reason: String) throws -> KYCSubmission {
        let phone = try Validation.phone(phone)
        guard let reason = Validation.text(reason, charactersMax: 200) else { throw WalletRefusal.invalidText }
        return try store.transaction { db, tx in
            let record = try lockedWallet(db, tx, phone: phone)
            let wallets = WalletStore(db)
            guard let waiting = try wallets.waitingSubmission(walletID: record.id) else { throw WalletRefusal.noKYCSubmission }
            try wallets.rejectSubmission(id: waiting.id, reason: reason, at: now)
            return KYCSubmission(id: waiting.id, status: "rejected", idNumberMasked: waiting.idNumberMasked, kycClass: nil, reason: reason)
        }
    }

    // MARK: Payment password

    /// Sets the 6-digit payment password and clears any lock. Stored keyed when the data key
    /// is at hand (`hashPassword`), else as a slow salted PBKDF2 hash.
    public func setPassword(phone: String, password: String) throws {
        let phone = try Validation.phone(phone)
        let hashed = try hashPassword(password)
        try store.transaction { db, _ in
            let record = try wallet(db, phone: phone)
            try setPassword(db, walletID: record.id, hashed)
        }
    }

    /// Sets the payment password inside the caller's transaction, from a hash made before it
    /// (`hashPassword`). A keyed hash is sealed only under the database's own data key.
    public func setPassword(_ db: any SQLConnection, walletID: Int64, _ hashed: PasswordHasher.Hash) throws {
        if hashed.isKeyed { _ = try verifiedDataKey(db) }
        try WalletStore(db).setPassword(walletID: walletID, hashed, at: now)
    }

    /// The stored form of a new payment password (6 digits, else `invalidPassword`): with the
    /// data key, SHA-256 of a random salt and the password, sealed with AES-GCM under the data
    /// key (ISO 9564's way with PINs: protected by a key kept outside the database, not by
    /// slowness, which cannot protect a space of a million guesses); checking it costs
    /// microseconds, and a key rotation re-seals it. Without the key, PBKDF2.
    public func hashPassword(_ password: String) throws -> PasswordHasher.Hash {
        let password = try Validation.password(password)
        guard let dataKey else { return try hasher.hash(password) }
        var salt = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for index in salt.indices { salt[index] = generator.next() }
        return PasswordHasher.Hash(hash: try dataKey.seal(Self.saltedDigest(password, salt: salt)), salt: salt, iterations: PasswordHasher.Hash.keyedIterations)
    }

    static func saltedDigest(_ password: String, salt: [UInt8]) -> String {
        DataKey.hex(Array(SHA256.hash(data: Data(salt + Array(password.utf8)))))
    }

    /// Whether `password` matches a stored hash of either form, in constant time.
    func verifyPassword(_ password: String, against stored: PasswordHasher.Hash) throws -> Bool {
        guard stored.isKeyed else { return try hasher.verify(password, against: stored) }
        guard let dataKey else {
            throw WalletError(.dataKey, "this wallet's payment password is keyed: checking it needs the personal-data key (QDWALLET_DATA_KEY or QDWALLET_DATA_KEY_FILE)")
        }
        let expected = Array(try dataKey.open(stored.hash).utf8)
        let candidate = Array(Self.saltedDigest(password, salt: stored.salt).utf8)
        guard expected.count == candidate.count else { return false }
        return zip(expected, candidate).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// Checks the password before a payment: slow hashing outside any write transaction.
    /// Returns whether it matched; refuses when locked or unset.
    func checkPassword(phone: String, password: String) throws -> Bool {
        try checkPasswordForPayment(phone: phone, password: password)
    }

    /// Checks a payment password outside any transaction (a PBKDF2 hash is slow on purpose);
    /// then `recordPassword` must be called in the payment's transaction with the result. A
    /// PBKDF2 hash that matches is replaced by the keyed form when the data key is at hand.
    public func checkPasswordForPayment(phone: String, password: String) throws -> Bool {
        let phone = try Validation.phone(phone)
        let (stored, lockedUntil) = try store.database.read { db -> (PasswordHasher.Hash?, TimestampMicros) in
            guard let stored = try WalletStore(db).password(phone: phone) else { throw WalletRefusal.walletNotFound }
            return (stored.hash, stored.lockedUntil)
        }
        guard let stored else { throw WalletRefusal.passwordNotSet }
        if lockedUntil > now { throw WalletRefusal.passwordLocked }
        guard (try? Validation.password(password)) != nil else { return false }
        let matched = try verifyPassword(password, against: stored)
        if matched, !stored.isKeyed, dataKey != nil {
            let keyed = try hashPassword(password)
            try store.transaction { db, _ in
                _ = try verifiedDataKey(db)
                // Only if the hash is still the one checked (a new password set meanwhile stays).
                try WalletStore(db).replacePassword(phone: phone, was: stored, with: keyed)
            }
        }
        return matched
    }

    /// How a resident confirmed a payment (IFAA and FIDO confirm with a key the phone unlocks
    /// with a fingerprint or face; the payment password is the other factor).
    public enum PaymentConfirmation: Sendable, Hashable {
        case password(String)
        /// The device's key signed the server's one-time challenge for this payment; the
        /// caller verified the signature.
        case deviceSignature
        /// Both factors: what a large payment needs (and the app asks of a new device).
        case passwordAndDeviceSignature(String)

        var password: String? {
            switch self {
            case .password(let password), .passwordAndDeviceSignature(let password): password
            case .deviceSignature: nil
            }
        }
    }

    /// Checks a confirmation outside any transaction: whether the password matched (nil when
    /// none was given: the device's signature alone). Which factors a payment needs is the
    /// caller's rule (the app asks both for a large payment or a new device).
    public func checkConfirmation(_ confirmation: PaymentConfirmation, phone: String) throws -> Bool? {
        guard let password = confirmation.password else { return nil }
        return try checkPassword(phone: phone, password: password)
    }

    /// `recordPassword` for a confirmation: with the device's signature alone, only the lock
    /// is checked (the password's count of failures is left as it is).
    public func recordConfirmation(_ db: any SQLConnection, wallet record: WalletRecord, matched: Bool?) throws -> WalletRefusal? {
        guard let matched else { return record.lockedUntil > now ? .passwordLocked : nil }
        return try recordPassword(db, wallet: record, matched: matched)
    }

    /// Records the outcome of a password check inside the payment's transaction: a wrong
    /// one counts towards the alert and the lock; a right one clears the count.
    public func recordPassword(_ db: any SQLConnection, wallet record: WalletRecord, matched: Bool) throws -> WalletRefusal? {
        if record.lockedUntil > now { return .passwordLocked }
        if matched {
            if record.failedPasswordCount != 0 {
                try WalletStore(db).setFailedPasswords(walletID: record.id, 0)
            }
            return nil
        }
        let failures = record.failedPasswordCount + 1
        if failures >= policy.wrongPasswordsAlertAt {
            try Outbox.enqueue(db, walletID: record.id, kind: .securityAlert, payload: [
                "event": failures >= policy.wrongPasswordsLockAt ? "payments_locked" : "wrong_passwords",
                "phone": Mask.phone(record.phone), "wrong_passwords": String(failures),
            ], now: now)
        }
        if failures >= policy.wrongPasswordsLockAt {
            try WalletStore(db).lockPayments(walletID: record.id, until: now + policy.lockDurationMicros)
            return .passwordLocked
        }
        try WalletStore(db).setFailedPasswords(walletID: record.id, failures)
        return .wrongPassword
    }
}

/// Which cash account each mobile number's wallet locks, as learnt by `lockedWallet`: a hint
/// only (the wallet read under the lock is checked against it). Bounded: forgotten whole when
/// full.
final class LockHints: Sendable {
    private let accounts = Mutex<[String: AccountID]>([:])
    static let capacity = 200_000

    func account(phone: String) -> AccountID? {
        accounts.withLock { $0[phone] }
    }

    func remember(phone: String, account: AccountID) {
        accounts.withLock { known in
            if known.count >= Self.capacity { known.removeAll() }
            known[phone] = account
        }
    }
}
