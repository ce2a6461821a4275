import Foundation
import Ledger
import QDSQL
import QDSchema
import Wallet

/// What checking a payment password costs: PBKDF2-HMAC-SHA256 at OWASP's 600,000 iterations
/// (the form stored without the data key) against the keyed form (SHA-256 of salt and
/// password, sealed with AES-GCM under the data key), each through
/// `WalletService.checkPasswordForPayment` on a SQLite file, so the database read is in both.
struct PasswordBenchmark {
    var slowSamples: Int
    var keyedSamples: Int

    func run() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-password-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: directory + "/password.sqlite", migrator: QDWalletSchema.migrator()))
        let ledger = Ledger(store: store)
        _ = try SystemAccounts.ensure(in: ledger)
        let key = DataKey.random()
        let plain = WalletService(store: store, ledger: ledger, dataKey: nil)
        let keyed = WalletService(store: store, ledger: ledger, dataKey: key)
        try keyed.adoptDataKey(key)
        _ = try plain.openWallet(phone: "13800000001", name: "slow")
        _ = try plain.openWallet(phone: "13800000002", name: "keyed")
        try plain.setPassword(phone: "13800000001", password: "135790")
        try keyed.setPassword(phone: "13800000002", password: "135790")

        func median(_ samples: Int, _ body: () throws -> Void) rethrows -> Double {
            var times: [UInt64] = []
            for _ in 0..<samples {
                let start = DispatchTime.now().uptimeNanoseconds
                try body()
                times.append(DispatchTime.now().uptimeNanoseconds - start)
            }
            return Double(times.sorted()[times.count / 2]) / 1_000
        }
        // Alternate halves so that a noisy neighbour hurts both alike.
        var slow: [Double] = []
        var fast: [Double] = []
        for _ in 0..<2 {
            slow.append(try median(max(1, slowSamples / 2)) { guard try plain.checkPasswordForPayment(phone: "13800000001", password: "135790") else { throw Mismatch() } })
            fast.append(try median(max(1, keyedSamples / 2)) { guard try keyed.checkPasswordForPayment(phone: "13800000002", password: "135790") else { throw Mismatch() } })
        }
        let slowMicros = slow.sorted()[slow.count / 2]
        let fastMicros = fast.sorted()[fast.count / 2]
        return """
            password check, median of \(slowSamples) PBKDF2 and \(keyedSamples) keyed checks (the database read included):
              PBKDF2-HMAC-SHA256, 600,000 iterations: \(String(format: "%.0f", slowMicros)) µs (\(String(format: "%.1f", 1_000_000 / slowMicros)) checks/s on one core)
              keyed (SHA-256 sealed under the data key): \(String(format: "%.1f", fastMicros)) µs (\(String(format: "%.0f", 1_000_000 / fastMicros)) checks/s on one core)
              PBKDF2 / keyed: \(String(format: "%.0f", slowMicros / fastMicros))x
            """
    }

    struct Mismatch: Error {}
}
