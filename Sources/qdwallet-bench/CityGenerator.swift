import Billing
import Campaigns
import Foundation
import GRDB
import QDSchema
import JobRunner
import Ledger
import QDSQL
import Reports
import Wallet

/// Builds a synthetic city: wallets with linked bill accounts (mixed autopay, limits,
/// balances), a share of customers unknown to the wallet, a campaign, and one feed per biller
/// for the business day, valid against the XSD. Deterministic for a seed.
struct CityGenerator {
    /// The nightly job's chunk size in the city's Jobs/ (the store floor commits as often).
    static let chunkSize = 5000
    var wallets: Int
    var bills: Int
    var directory: String
    var seed: UInt64 = 42
    var date = ShanghaiCalendar.Date(year: 2026, month: 11, day: 27)
    /// A PostgreSQL database (an empty one) instead of a SQLite file in `directory`.
    var postgresURL: String?
    /// Percent of the bills for customers unknown to the wallet (left unmatched).
    var unmatchedPercent = 10
    /// Whether the city runs its threshold-and-points campaign.
    var campaigns = true
    /// Months of bills paid before the night: each month, a bill for every linked account,
    /// paid on the 27th (autopay where the link has it, by hand otherwise). Rows of `bills`
    /// alone, with no journal behind them: what the night's reads by wallet meet in a city
    /// that has kept its months.
    var historyMonths = 0

    static let billers: [(code: String, digits: Int, share: Int, unit: String, prefix: String)] = [
        ("QD-WATER", 10, 40, "m3", "W"), ("QD-POWER", 10, 35, "kWh", "P"), ("QD-GAS", 10, 25, "m3", "G"),
    ]
    static let districts = ["市南区", "市北区", "李沧区", "崂山区", "黄岛区", "城阳区", "即墨区", "胶州市", "平度市", "莱西市"]

    var databasePath: String { postgresURL ?? directory + "/city.sqlite" }
    var jobsDirectory: String { directory + "/Jobs" }

    static func migrator() -> DatabaseMigrator { QDWalletSchema.migrator() }

    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// Customer number of wallet `w`'s account at a biller (unknown ones come after all wallets).
    static func customer(_ index: Int, digits: Int) -> String {
        let text = String(1_000_000_000 + index)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    func generate() throws {
        try FileManager.default.createDirectory(atPath: directory + "/feeds", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: jobsDirectory + "/campaigns", withIntermediateDirectories: true)
        try writeConfiguration()
        try writeFeeds()
        try populate()
    }

    func writeConfiguration() throws {
        var billers = ""
        for biller in Self.billers {
            billers += """
                [[biller]]
                code = "\(biller.code)"
                name = "\(biller.code)"
                category = "\(biller.code == "QD-WATER" ? "water" : biller.code == "QD-POWER" ? "electricity" : "gas")"
                customer_no_digits = [10, 10]
                feed_url = "file://\(directory)/feeds/\(biller.code)-{yyyymmdd}.xml"
                result_url = "file://{reports}/outbound/\(biller.code)/QDW-\(biller.code)-{yyyymmdd}.xml"
                feed_bytes_max = 2147483648

                """
        }
        try AtomicFile.write(billers, to: jobsDirectory + "/billers.toml")
        try AtomicFile.write("""
            name = "nightly-billing"
            chunk_size = \(Self.chunkSize)
            identifying = ["date"]
            stale_after_seconds = 600
            [parameters]
            date = "{yesterday}"
            """, to: jobsDirectory + "/nightly-billing.job.toml")
        guard campaigns else { return }
        try AtomicFile.write("""
            id = "city-winter"
            version = 1
            sponsor = "QD-COMMERCE-BUREAU"
            [window]
            start = 2026-01-01T00:00:00+08:00
            end = 2030-12-31T23:59:59+08:00
            [eligibility]
            payment_kinds = ["utility_bill"]
            [budget]
            total_fen = 100_000_000
            on_exhaustion = "partial"
            [[caps]]
            scope = "wallet"
            period = "calendar_month"
            max_count = 2
            [stacking]
            group = "utility"
            [[benefit]]
            kind = "threshold_off"
            tiers = [ { min_fen = 10_000, off_fen = 300 } ]
            [[benefit]]
            kind = "points_per_yuan"
            rate = 1
            """, to: jobsDirectory + "/campaigns/city-winter.toml")
    }

    /// One feed per biller, bills spread over the wallets' accounts, a share (10% unless told)
    /// for customers unknown to the wallet.
    func writeFeeds() throws {
        var random = Random(state: seed)
        for biller in Self.billers {
            let count = bills * biller.share / 100
            var customers = [Int](repeating: 0, count: count)
            var amounts = [Int64](repeating: 0, count: count)
            var lates = [Int64](repeating: 0, count: count)
            var total: Int64 = 0
            for i in 0..<count {
                customers[i] = random.below(100) < unmatchedPercent ? wallets + random.below(max(1, wallets)) : random.below(max(1, wallets))
                amounts[i] = Int64(1_000 + random.below(29_000))
                lates[i] = random.below(20) == 0 ? Int64(random.below(500)) : 0
                total += amounts[i] + lates[i]
            }
            let path = directory + "/feeds/\(biller.code)-\(date.compact).xml"
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            guard let handle = FileHandle(forWritingAtPath: path) else { throw LedgerError(.storage, "cannot write the feed", context: path) }
            var buffer = """
                <?xml version="1.0" encoding="UTF-8"?>
                <BillFeed xmlns="urn:qdwallet:billfeed:1">
                  <Header>
                    <FeedId>\(biller.code)-\(date.compact)-01</FeedId>
                    <BillerCode>\(biller.code)</BillerCode>
                    <CreatedAt>\(date.iso)T22:00:00+08:00</CreatedAt>
                    <BusinessDate>\(date.iso)</BusinessDate>
                    <NbOfBills>\(count)</NbOfBills>
                    <CtrlSum Ccy="CNY">\(Money(fen: total).yuanString)</CtrlSum>
                  </Header>

                """
            for i in 0..<count {
                buffer += """
                      <Bill>
                        <BillId>\(biller.prefix)2611-\(i)</BillId>
                        <CustomerNo>\(Self.customer(customers[i], digits: biller.digits))</CustomerNo>
                        <CustomerName>张*</CustomerName>
                        <District>\(Self.districts[customers[i] % Self.districts.count])</District>
                        <Period>2026-11</Period>
                        <Usage Unit="\(biller.unit)">12.5</Usage>
                        <Amount Ccy="CNY">\(Money(fen: amounts[i]).yuanString)</Amount>
                        <LateFee Ccy="CNY">\(Money(fen: lates[i]).yuanString)</LateFee>
                        <IssueDate>\(date.iso)</IssueDate>
                        <DueDate>\(date.adding(days: 23).iso)</DueDate>
                      </Bill>

                    """
                if buffer.utf8.count > 1 << 20 {
                    handle.write(Data(buffer.utf8))
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            buffer += "</BillFeed>\n"
            handle.write(Data(buffer.utf8))
            try handle.close()
        }
    }

    /// Wallets, points accounts and bill accounts in bulk, then balances from the bank.
    func populate() throws {
        let store: SQLLedgerStore
        if let postgresURL {
            let database = try PostgresDatabase(url: postgresURL)
            try database.migrate(try QDWalletSchema.postgresMigrations())
            guard try QDWalletSchema.isEmpty(database) else {
                throw LedgerError(.storage, "the benchmark city needs an empty database", context: PostgresConnection.redact(postgresURL))
            }
            store = SQLLedgerStore(database: database)
        } else {
            store = SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: databasePath, migrator: Self.migrator()))
        }
        let clock = SystemClock()
        let ledger = Ledger(store: store, clock: clock)
        _ = try SystemAccounts.ensure(in: ledger)
        let billers = try Biller.load(path: jobsDirectory + "/billers.toml")
        _ = try store.transaction { db, tx in try Biller.register(billers, db: db, ledger: tx, clock: clock) }
        var random = Random(state: seed ^ 0xABCDEF)
        let now = clock.nowMicros()
        var walletAccounts: [AccountID] = []
        walletAccounts.reserveCapacity(wallets)
        var start = 0
        while start < wallets {
            let end = min(wallets, start + 20_000)
            try store.transaction { db, tx in
                let insertWallet = ("INSERT INTO wallets (id, phone, name, kyc_class, kyc_verified, frozen, opened_at, wallet_account_id, points_account_id) VALUES (?, ?, '张*', ?, ?, ?, ?, ?, ?)")
                let insertLink = ("INSERT INTO bill_accounts (wallet_id, biller, customer_no, autopay, autopay_limit_fen, status, linked_at) VALUES (?, ?, ?, ?, ?, 'linked', ?)")
                for index in start..<end {
                    let id = Int64(index + 1)
                    let cash = try tx.insertAccount(AccountSpec(code: "wallet:\(id)", asset: .cny, kind: .userWallet, rules: .noOverdraft), createdAt: now)
                    let points = try tx.insertAccount(AccountSpec(code: "points:\(id)", asset: .pts, kind: .userPoints, rules: .unrestricted), createdAt: now)
                    walletAccounts.append(cash.id)
                    let verified = random.below(10) != 0
                    try db.run(insertWallet, [id, "1\(String(3_000_000_000 + index))", verified ? 2 : 1, verified, random.below(100) == 0, now, cash.id, points.id])
                    for biller in Self.billers where random.below(10) < 8 {
                        let autopay = random.below(10) < 7
                        try db.run(insertLink, [id, biller.code, Self.customer(index, digits: biller.digits), autopay, autopay ? Int64(10_000 + random.below(40_000)) : 0, now])
                    }
                }
            }
            start = end
        }
        try writeHistory(store, at: now)
        guard let bank = try store.read({ try $0.account(code: SystemAccounts.bankClearing) }) else { return }
        for chunk in stride(from: 0, to: walletAccounts.count, by: 10_000) {
            let slice = walletAccounts[chunk..<min(walletAccounts.count, chunk + 10_000)]
            _ = try ledger.post(slice.map { account in
                PostingRequest.transfer(key: "fund-\(account)", from: bank.id, to: account, amount: Int64(random.below(10) == 0 ? random.below(2_000) : 20_000 + random.below(200_000)))
            })
        }
    }

    /// `historyMonths` of paid bills, the oldest month first, one statement a month.
    func writeHistory(_ store: SQLLedgerStore, at now: TimestampMicros) throws {
        guard historyMonths > 0 else { return }
        for back in stride(from: historyMonths, through: 1, by: -1) {
            let months = date.year * 12 + (date.month - 1) - back
            let day = ShanghaiCalendar.Date(year: months / 12, month: months % 12 + 1, day: date.day)
            try store.transaction { db, _ in
                _ = try db.run("""
                    INSERT INTO bills (biller, bill_id, feed_id, seq, business_date, customer_no, customer_name, district, period, usage, usage_unit, amount_fen, late_fee_fen, due_fen,
                        issue_date, due_date, status, wallet_id, bill_account_id, paid_fen, discount_fen, points, paid_at, paid_via, paid_business_date, updated_at)
                    SELECT biller, CAST(? AS TEXT) || CAST(id AS TEXT), CAST(? AS TEXT) || biller, id, ?, customer_no, '张*', '市南区', ?, '12.5', 'm3', 1000 + id % 29000, 0, 1000 + id % 29000,
                        ?, ?, 'paid', wallet_id, id, 1000 + id % 29000, 0, 0, CAST(? AS BIGINT), CASE WHEN autopay_limit_fen > 0 THEN 'autopay' ELSE 'manual' END, ?, CAST(? AS BIGINT)
                    FROM bill_accounts ORDER BY wallet_id, id
                    """, ["H\(day.compact)-", "HISTORY-\(day.compact)/", day.iso, day.monthKey, day.iso, day.adding(days: 23).iso, now, day.iso, now])
            }
        }
    }
}
