import Foundation
import Ledger
import QDSQL

/// The wallet tables (wallets, real-name submissions, payment passwords), and the only code
/// that names them; every statement runs in the caller's transaction or snapshot. Other
/// modules read wallets through its public methods: they name no wallet column themselves.
public struct WalletStore {
    let sql: any SQLConnection

    public init(_ connection: any SQLConnection) { sql = connection }

    /// The columns `record` reads, in its order, from `wallets`.
    static let columns = "id, phone, name, frozen, kyc_class, kyc_verified, opened_at, wallet_account_id, points_account_id, password_hash IS NOT NULL, failed_password_count, locked_until, autopay_daily_limit_fen, password_reset_at"

    static func record(_ row: SQLRow) throws -> WalletRecord {
        WalletRecord(id: try row[0], phone: try row[1], name: try row[2], frozen: try row[3], kycClass: try row[4], kycVerified: try row[5], openedAt: try row[6],
                     walletAccountID: try row[7], pointsAccountID: try row[8], hasPassword: try row[9], failedPasswordCount: try row[10], lockedUntil: try row[11],
                     autopayDailyLimitFen: try row[12], passwordResetAt: try row[13])
    }

    /// The wallets of `ids` (each once), by id; ids without a wallet are left out. One
    /// statement per 500 ids, so a chunk of the nightly run costs a few reads, not one a bill.
    public func wallets(ids: some Collection<Int64>) throws -> [Int64: WalletRecord] {
        var found: [Int64: WalletRecord] = [:]
        let unique = Array(Set(ids)).sorted()
        var start = 0
        while start < unique.count {
            let part = Array(unique[start..<min(start + 500, unique.count)])
            let marks = part.map { _ in "?" }.joined(separator: ",")
            for wallet in try sql.all("SELECT \(Self.columns) FROM wallets WHERE id IN (\(marks))", part, Self.record) {
                found[wallet.id] = wallet
            }
            start += 500
        }
        return found
    }

    // MARK: Wallets

    func phoneTaken(_ phone: String) throws -> Bool {
        try sql.oneRow("SELECT 1 FROM wallets WHERE phone = ?", [phone]) != nil
    }

    /// The number the next wallet gets (its ledger codes carry it, never the phone).
    func nextWalletID() throws -> Int64 {
        try sql.int64("SELECT coalesce(max(id), 0) + 1 FROM wallets") ?? 1
    }

    func insertWallet(id: Int64, phone: String, name: String, openedAt: TimestampMicros, walletAccountID: AccountID, pointsAccountID: AccountID) throws {
        try sql.run("INSERT INTO wallets (id, phone, name, opened_at, wallet_account_id, points_account_id) VALUES (?, ?, ?, ?, ?, ?)", [id, phone, name, openedAt, walletAccountID, pointsAccountID])
    }

    public func wallet(phone: String) throws -> WalletRecord? {
        try sql.one("SELECT \(Self.columns) FROM wallets WHERE phone = ?", [phone], Self.record)
    }

    public func wallet(id: Int64) throws -> WalletRecord? {
        try sendWallet(id: id).get()
    }

    /// `wallet(id:)`, sent ahead (`SQLConnection.sendQuery`).
    public func sendWallet(id: Int64) throws -> SQLPending<WalletRecord?> {
        try sql.sendOne("SELECT \(Self.columns) FROM wallets WHERE id = ?", [id], Self.record)
    }

    func setFrozen(walletID: Int64, _ frozen: Bool) throws {
        try sql.run("UPDATE wallets SET frozen = ? WHERE id = ?", [frozen, walletID])
    }

    func setVerified(walletID: Int64, kycClass: Int) throws {
        try sql.run("UPDATE wallets SET kyc_class = ?, kyc_verified = 1 WHERE id = ?", [kycClass, walletID])
    }

    // MARK: Real-name submissions

    func hasWaitingSubmission(walletID: Int64) throws -> Bool {
        try sql.oneRow("SELECT 1 FROM kyc_submissions WHERE wallet_id = ? AND status = 'submitted'", [walletID]) != nil
    }

    /// Submissions stored before ID numbers were fingerprinted: id and sealed number.
    func submissionsWithoutFingerprint() throws -> [(id: Int64, sealedNumber: Data)] {
        try sql.allRows("SELECT id, id_number_sealed FROM kyc_submissions WHERE id_number_fingerprint IS NULL").map { (try $0[0], try $0[1]) }
    }

    func setFingerprint(submissionID: Int64, _ fingerprint: Data) throws {
        try sql.run("UPDATE kyc_submissions SET id_number_fingerprint = ? WHERE id = ?", [fingerprint, submissionID])
    }

    /// Whether another wallet's waiting or approved submission holds the ID number.
    func fingerprintInUse(_ fingerprint: Data, besides walletID: Int64) throws -> Bool {
        try sql.oneRow("SELECT 1 FROM kyc_submissions WHERE id_number_fingerprint = ? AND wallet_id != ? AND status IN ('submitted', 'approved') LIMIT 1", [fingerprint, walletID]) != nil
    }

    func insertSubmission(walletID: Int64, nameSealed: Data, idNumberSealed: Data, idNumberMasked: String, fingerprint: Data, at now: TimestampMicros) throws -> Int64 {
        guard let id = try sql.int64("""
            INSERT INTO kyc_submissions (wallet_id, name_sealed, id_number_sealed, id_number_masked, status, submitted_at, id_number_fingerprint)
            VALUES (?, ?, ?, ?, 'submitted', ?, ?) RETURNING id
            """, [walletID, nameSealed, idNumberSealed, idNumberMasked, now, fingerprint]) else { throw WalletError(.corrupt, "a new submission has no id") }
        return id
    }

    /// The wallet's waiting submission: its id and masked ID number.
    func waitingSubmission(walletID: Int64) throws -> (id: Int64, idNumberMasked: String)? {
        try sql.oneRow("SELECT id, id_number_masked FROM kyc_submissions WHERE wallet_id = ? AND status = 'submitted'", [walletID]).map { (try $0[0], try $0[1]) }
    }

    func approveSubmission(id: Int64, kycClass: Int, at now: TimestampMicros) throws {
        try sql.run("UPDATE kyc_submissions SET status = 'approved', kyc_class = ?, reviewed_at = ? WHERE id = ?", [kycClass, now, id])
    }

    func rejectSubmission(id: Int64, reason: String, at now: TimestampMicros) throws {
        try sql.run("UPDATE kyc_submissions SET status = 'rejected', reason = ?, reviewed_at = ? WHERE id = ?", [reason, now, id])
    }

    // MARK: Payment password

    /// Sets the password; replacing one that was set records the reset's time (`at`).
    func setPassword(walletID: Int64, _ hashed: PasswordHasher.Hash, at: TimestampMicros) throws {
        try sql.run("""
            UPDATE wallets SET password_hash = ?, password_salt = ?, password_iterations = ?, failed_password_count = 0, locked_until = 0,
                password_reset_at = CASE WHEN password_hash IS NULL THEN password_reset_at ELSE ? END
            WHERE id = ?
            """, [Data(hashed.hash), Data(hashed.salt), hashed.iterations, at, walletID])
    }

    /// Replaces a stored password hash by another form of the same password, unless it
    /// changed since `was` was read.
    func replacePassword(phone: String, was: PasswordHasher.Hash, with hashed: PasswordHasher.Hash) throws {
        try sql.run("UPDATE wallets SET password_hash = ?, password_salt = ?, password_iterations = ? WHERE phone = ? AND password_hash = ? AND password_salt = ? AND password_iterations = ?",
                    [Data(hashed.hash), Data(hashed.salt), hashed.iterations, phone, Data(was.hash), Data(was.salt), was.iterations])
    }

    /// Keyed password hashes (sealed under a data key), for a key rotation.
    func sealedPasswords() throws -> [(id: Int64, sealed: Data)] {
        try sql.all("SELECT id, password_hash FROM wallets WHERE password_iterations = ? AND password_hash IS NOT NULL", [PasswordHasher.Hash.keyedIterations]) {
            (try $0.int64(0), try $0.data(1))
        }
    }

    func resealPassword(walletID: Int64, sealed: Data) throws {
        try sql.run("UPDATE wallets SET password_hash = ? WHERE id = ?", [sealed, walletID])
    }

    /// The stored password (nil: none set) and the lock of the wallet of `phone`; nil without such a wallet.
    func password(phone: String) throws -> (hash: PasswordHasher.Hash?, lockedUntil: TimestampMicros)? {
        try sql.oneRow("SELECT password_hash, password_salt, password_iterations, locked_until FROM wallets WHERE phone = ?", [phone]).map { row in
            guard let hash = try row[0] as Data?, let salt = try row[1] as Data?, let iterations = try row[2] as Int? else { return (nil, try row[3]) }
            return (PasswordHasher.Hash(hash: Array(hash), salt: Array(salt), iterations: iterations), try row[3])
        }
    }

    func setFailedPasswords(walletID: Int64, _ count: Int) throws {
        try sql.run("UPDATE wallets SET failed_password_count = ? WHERE id = ?", [count, walletID])
    }

    /// Locks payments until `until` and clears the count of wrong passwords.
    func lockPayments(walletID: Int64, until: TimestampMicros) throws {
        try sql.run("UPDATE wallets SET failed_password_count = 0, locked_until = ? WHERE id = ?", [until, walletID])
    }

    /// Every submission's sealed name and ID number, for a data key rotation.
    func sealedSubmissions() throws -> [(id: Int64, name: Data, idNumber: Data)] {
        try sql.allRows("SELECT id, name_sealed, id_number_sealed FROM kyc_submissions").map { (try $0[0], try $0[1], try $0[2]) }
    }

    func resealSubmission(id: Int64, name: Data, idNumber: Data, fingerprint: Data) throws {
        try sql.run("UPDATE kyc_submissions SET name_sealed = ?, id_number_sealed = ?, id_number_fingerprint = ? WHERE id = ?", [name, idNumber, fingerprint, id])
    }

    // MARK: The data key

    /// The id and check value of the data key recorded for this database.
    func recordedDataKey() throws -> (keyID: [UInt8], checkValue: [UInt8])? {
        try sql.oneRow("SELECT key_id, check_value FROM wallet_data_key WHERE id = 1").map { ([UInt8](try $0[0] as Data), [UInt8](try $0[1] as Data)) }
    }

    /// The key id of a stored sealed value (submissions' ID numbers, cards) that is not `keyID`.
    func otherSealingKey(than keyID: [UInt8]) throws -> [UInt8]? {
        try sql.oneRow("""
            SELECT substr(sealed, 2, 8) FROM (
                SELECT id_number_sealed AS sealed FROM kyc_submissions UNION ALL SELECT number_sealed FROM cards
                UNION ALL SELECT password_hash FROM wallets WHERE password_iterations = 0 AND password_hash IS NOT NULL
            ) AS stored WHERE substr(sealed, 2, 8) != ? LIMIT 1
            """, [Data(keyID)]).map { [UInt8](try $0[0] as Data) }
    }

    func recordDataKey(keyID: [UInt8], checkValue: [UInt8], at now: TimestampMicros) throws {
        try sql.run("""
            INSERT INTO wallet_data_key (id, key_id, check_value, recorded_at) VALUES (1, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, check_value = excluded.check_value, recorded_at = excluded.recorded_at
            """, [Data(keyID), Data(checkValue), now])
    }
}
