import Billing
import Foundation
import Ledger
import QDSQL
import QDSchema
import Wallet

/// pay-bill latency on a ledger that already holds many entries.
struct PayBillBenchmark {
    var entries: Int
    var samples: Int
    /// An empty PostgreSQL database instead of a SQLite file.
    var postgresURL: String?

    func run() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-paybill-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store: SQLLedgerStore
        if let postgresURL {
            let database = try PostgresDatabase(url: postgresURL)
            try database.migrate(try QDWalletSchema.postgresMigrations())
            guard try QDWalletSchema.isEmpty(database) else {
                throw LedgerError(.storage, "the pay-bill benchmark needs an empty database", context: PostgresConnection.redact(postgresURL))
            }
            store = SQLLedgerStore(database: database)
        } else {
            store = SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: directory + "/paybill.sqlite", migrator: QDWalletSchema.migrator()))
        }
        let clock = SystemClock()
        let ledger = Ledger(store: store, clock: clock)
        _ = try SystemAccounts.ensure(in: ledger)
        let biller = Biller(code: "QD-WATER", name: "water", category: "water", customerNoDigitsMin: 10, customerNoDigitsMax: 10, feedURL: "file:///dev/null", resultURL: "file:///dev/null", feedBytesMax: 1 << 20)
        _ = try store.transaction { db, tx in try Biller.register([biller], db: db, ledger: tx, clock: clock) }
        // Password hashing is excluded: it is slow on purpose (measured on its own below).
        let wallets = WalletService(store: store, ledger: ledger, hasher: PasswordHasher(iterations: 1), dataKey: nil)
        let walletCount = 10_000
        let now = clock.nowMicros()
        var accounts: [AccountID] = []
        try store.transaction { db, tx in
            for index in 0..<walletCount {
                let id = Int64(index + 1)
                let cash = try tx.insertAccount(AccountSpec(code: "wallet:\(id)", asset: .cny, kind: .userWallet, rules: .noOverdraft), createdAt: now)
                let points = try tx.insertAccount(AccountSpec(code: "points:\(id)", asset: .pts, kind: .userPoints, rules: .unrestricted), createdAt: now)
                accounts.append(cash.id)
                try db.run("INSERT INTO wallets (id, phone, name, kyc_class, kyc_verified, opened_at, wallet_account_id, points_account_id) VALUES (?, ?, '张*', 3, 1, ?, ?, ?)",
                           [id, "1\(3_000_000_000 + index)", now, cash.id, points.id])
            }
        }
        guard let bank = try store.read({ try $0.account(code: SystemAccounts.bankClearing) }), let water = try store.read({ try $0.account(code: "biller:QD-WATER") }) else {
            throw LedgerError(.accountNotFound, "setup failed")
        }
        // The background: two entries per transfer, in batches.
        let loadStart = DispatchTime.now().uptimeNanoseconds
        var posted = 0
        var batch = 0
        while posted * 2 < entries {
            let count = min(10_000, (entries - posted * 2 + 1) / 2)
            let requests = (0..<count).map { i -> PostingRequest in
                let account = accounts[(posted + i) % accounts.count]
                return (posted + i) < accounts.count * 2
                    ? .transfer(key: "load-\(batch)-\(i)", from: bank.id, to: account, amount: 1_000_000)
                    : .transfer(key: "load-\(batch)-\(i)", from: account, to: water.id, amount: 1)
            }
            _ = try ledger.post(requests)
            posted += count
            batch += 1
        }
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e9
        // The paying wallet can afford every sample.
        _ = try ledger.post(.transfer(key: "bench-funds", from: bank.id, to: accounts[0], amount: Int64(samples) * 4_520))
        try wallets.setPassword(phone: "13000000000", password: "123456")
        try store.database.write { db in
            for sample in 0..<samples {
                try db.run("""
                    INSERT INTO bills (biller, bill_id, feed_id, seq, business_date, customer_no, customer_name, district, period, usage, usage_unit, amount_fen, late_fee_fen, due_fen, issue_date, due_date, status, reason, wallet_id, updated_at)
                    VALUES ('QD-WATER', ?, 'BENCH', ?, '2026-11-27', '1100000000', '张*', '市南区', '2026-11', '1', 'm3', 4520, 0, 4520, '2026-11-27', '2026-12-20', 'payable', 'AUTOPAY_OFF', 1, ?)
                    """, ["B\(sample)", sample, now])
            }
        }
        let billing = BillingService(wallets: wallets)
        var latencies: [Double] = []
        for sample in 0..<samples {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try billing.payBill(phone: "13000000000", reference: "QD-WATER:B\(sample)", password: "123456")
            latencies.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        latencies.sort()
        let hashStart = DispatchTime.now().uptimeNanoseconds
        _ = try PasswordHasher().hash("123456")
        let hashMillis = Double(DispatchTime.now().uptimeNanoseconds - hashStart) / 1e6
        func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        let total = try store.database.read { try $0.int("SELECT count(*) FROM ledger_entries") ?? 0 }
        return """
            pay-bill on a ledger of \(total) entries (\(postgresURL == nil ? "SQLite" : "PostgreSQL")) (built in \(String(format: "%.1f", loadSeconds)) s), \(samples) payments, password hashing excluded
              p50 \(String(format: "%.2f", percentile(0.5))) ms   p99 \(String(format: "%.2f", percentile(0.99))) ms   max \(String(format: "%.2f", latencies.last ?? 0)) ms
              the password check alone (PBKDF2-HMAC-SHA256, 600,000 iterations): \(String(format: "%.0f", hashMillis)) ms
            """
    }
}
