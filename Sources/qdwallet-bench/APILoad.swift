import AppAccess
import Crypto
import Foundation
import Ledger
import QDSQL
import QDSchema
import Wallet

/// Prepares a database and the requests for a load run of the HTTP API (`Tests/API/load.sh`
/// runs wrk with them against `qdwallet serve`): wallets with a device each (registered two
/// days ago, so one factor confirms), money on them, a merchant with a fixed-amount QR code,
/// and for each payment a fresh challenge signed by its device's P-256 key. Writes one line a
/// payment, `TOKEN<TAB>IDEMPOTENCY-KEY<TAB>BODY`, and one access token for balance reads.
struct APILoad {
    var database: String
    var wallets: Int
    var payments: Int
    /// Payments go to merchants in turn: one merchant makes every payment wait for the one
    /// before it (its ledger account is locked until the payment commits).
    var merchants: Int
    var out: String

    func run() throws -> String {
        let key = try DataKey.fromEnvironment(ProcessInfo.processInfo.environment)
        let store: SQLLedgerStore
        if database.hasPrefix("postgres") {
            let pool = try PostgresDatabase(url: database)
            try pool.migrate(try QDWalletSchema.postgresMigrations())
            guard try QDWalletSchema.isEmpty(pool) else { throw LedgerError(.storage, "the load run needs an empty database", context: PostgresConnection.redact(database)) }
            store = SQLLedgerStore(database: pool)
        } else {
            guard !FileManager.default.fileExists(atPath: database) else { throw LedgerError(.storage, "the load run makes a new database file; this one exists", context: database) }
            store = SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: database, migrator: QDWalletSchema.migrator()))
        }
        let clock = SystemClock()
        let ledger = Ledger(store: store, clock: clock)
        _ = try SystemAccounts.ensure(in: ledger)
        let service = WalletService(store: store, ledger: ledger, dataKey: key)
        try service.adoptDataKey(key)
        let access = AppAccess(wallets: service, dataKey: key)
        var codes: [String] = []
        for index in 0..<merchants {
            _ = try service.registerMerchant(id: "M-LOAD-\(index)", name: "便利店\(index)", category: "groceries")
            codes.append(try service.merchantQR(id: "M-LOAD-\(index)", amountFen: 100))
        }
        guard let bank = try store.read({ try $0.account(code: SystemAccounts.bankClearing) }) else { throw LedgerError(.accountNotFound, "no bank clearing account") }

        let started = DispatchTime.now().uptimeNanoseconds
        let twoDaysAgo = clock.nowMicros() - 2 * 86_400 * 1_000_000
        var devices: [(principal: AppAccess.Principal, key: P256.Signing.PrivateKey, token: String)] = []
        let perWallet = (payments + wallets - 1) / wallets
        for index in 0..<wallets {
            let phone = "1\(3_900_000_000 + index)"
            let wallet = try service.openWallet(phone: phone, name: "负载")
            let privateKey = P256.Signing.PrivateKey()
            let deviceID = try store.database.write { db in
                try AppAccessStore(db).insertDevice(walletID: wallet.id, publicKey: Array(privateKey.publicKey.x963Representation), label: "load", at: twoDaysAgo)
            }
            _ = try ledger.post(.transfer(key: "load-fund-\(index)", from: bank.id, to: wallet.walletAccountID, amount: Int64(perWallet) * 100 + 10_000))
            let principal = AppAccess.Principal(walletID: wallet.id, deviceID: deviceID, phone: phone, registeredAt: twoDaysAgo, publicKey: Array(privateKey.publicKey.x963Representation))
            devices.append((principal, privateKey, access.accessToken(walletID: wallet.id, deviceID: deviceID)))
        }
        let setupSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let signing = DispatchTime.now().uptimeNanoseconds
        let hashes = codes.map { AppAccess.requestHash(["payload": $0, "amount": ""]) }
        var lines: [String] = []
        lines.reserveCapacity(payments)
        for index in 0..<payments {
            let device = devices[index % devices.count]
            let merchant = index % codes.count
            let challenge = try access.challenge(for: device.principal)
            let signature = try device.key.signature(for: AppAccess.paymentMessage(nonce: challenge.nonce, operation: "qr_payment", requestHash: hashes[merchant])).derRepresentation.base64EncodedString()
            let body = "{\"payload\":\"\(codes[merchant])\",\"device_signature\":{\"challenge_id\":\(challenge.id),\"signature\":\"\(signature)\"}}"
            lines.append("\(device.token)\tload-\(index)\t\(body)")
        }
        let signingSeconds = Double(DispatchTime.now().uptimeNanoseconds - signing) / 1e9
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try AtomicFile.write(lines.joined(separator: "\n") + "\n", to: out + "/payments.tsv")
        try AtomicFile.write(devices[0].token + "\n", to: out + "/token")
        return "prepared \(wallets) wallets with a device each and \(merchants) merchants in \(String(format: "%.1f", setupSeconds)) s, \(payments) signed payments in \(String(format: "%.1f", signingSeconds)) s (challenges last \(access.policy.challengeSeconds) s): \(out)/payments.tsv"
    }
}
