import Foundation
import GRDB
import QDSQL
import QDTestSupport
import Testing
@testable import Billing
@testable import Ledger
@testable import Wallet

/// Autopay is a password-free payment: capped per wallet and business day, and watched by
/// the monitoring like any payment.
@Suite struct AutopayLimitTests {
    /// A water feed of `count` bills of `fen` each for one customer number.
    static func feed(_ directory: URL, customer: String, count: Int, fen: Int64) throws -> String {
        try feed(directory, bills: (1...count).map { ("W-DRAIN-\($0)", customer, fen) })
    }

    /// A water feed of the bills given (bill id, customer number, amount).
    static func feed(_ directory: URL, bills: [(id: String, customer: String, fen: Int64)]) throws -> String {
        func yuan(_ fen: Int64) -> String { "\(fen / 100).\(String(format: "%02d", fen % 100))" }
        var body = ""
        for bill in bills {
            body += "<Bill><BillId>\(bill.id)</BillId><CustomerNo>\(bill.customer)</CustomerNo><CustomerName>张*</CustomerName><District>市南区</District><Period>2026-11</Period><Usage Unit=\"m3\">1.0</Usage><Amount Ccy=\"CNY\">\(yuan(bill.fen))</Amount><LateFee Ccy=\"CNY\">0.00</LateFee><IssueDate>2026-11-27</IssueDate><DueDate>2026-12-20</DueDate></Bill>\n"
        }
        let count = bills.count
        let total = bills.reduce(Int64(0)) { $0 + $1.fen }
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <BillFeed xmlns="urn:qdwallet:billfeed:1"><Header><FeedId>DRAIN-01</FeedId><BillerCode>QD-WATER</BillerCode><CreatedAt>2026-11-27T22:00:00+08:00</CreatedAt><BusinessDate>2026-11-27</BusinessDate><NbOfBills>\(count)</NbOfBills><CtrlSum Ccy="CNY">\(yuan(total))</CtrlSum></Header>
            \(body)</BillFeed>
            """
        let path = directory.appendingPathComponent("drain.xml").path
        try xml.write(toFile: path, atomically: false, encoding: .utf8)
        return "file://" + path
    }

    @Test func twentyBillsCannotDrainAWallet() throws {
        let world = try BillingWorld()
        try world.populate()
        // 张三 (13800000001) has 1,000.00 and water autopay up to 300.00 a bill; raise his
        // balance and per-bill limit so only the daily cap can stop a drain.
        _ = try world.wallets.topUp(phone: "13800000001", cardID: 1, amountFen: 5_000_000, idempotencyKey: "more")
        try world.execute("UPDATE bill_accounts SET autopay_limit_fen = 50000 WHERE customer_no = '1100234567'")
        let before = try world.balance("13800000001")
        let url = try Self.feed(world.directory, customer: "1100234567", count: 20, fen: 49_999)
        _ = try world.run("2026-11-27", feeds: ["QD-WATER": url])
        // The default cap, 3,000.00 a day, counts every biller's autopay of the wallet: his
        // power bill of the same night, then as many bills of 499.99 as fit.
        let other = Int64(try world.count("SELECT coalesce(sum(paid_fen - discount_fen), 0) FROM bills WHERE wallet_id = 1 AND paid_via = 'autopay' AND bill_id NOT LIKE 'W-DRAIN-%'"))
        #expect(other > 0)
        let fits = Int((300_000 - other) / 49_999)
        let paid = try world.count("SELECT count(*) FROM bills WHERE bill_id LIKE 'W-DRAIN-%' AND status = 'paid'")
        let held = try world.count("SELECT count(*) FROM bills WHERE bill_id LIKE 'W-DRAIN-%' AND status = 'payable' AND reason = 'OVER_AUTOPAY_DAILY_LIMIT'")
        #expect(fits == 5 && paid == fits && held == 20 - fits)
        #expect(before - (try world.balance("13800000001")) == other + Int64(fits) * 49_999)
        #expect(other + Int64(fits) * 49_999 <= 300_000)
        // The monitoring saw it: one "many payments" alert for the night, marked autopay.
        let alerts = try world.rows("SELECT payload FROM outbox WHERE kind = 'security_alert'").map { try $0["payload"] as String }
        #expect(alerts.filter { $0.contains("many_payments") && $0.contains("autopay") }.count == 1)
        // The resident may still pay the rest by hand.
        let reference = "QD-WATER:W-DRAIN-20"
        #expect(try world.billing.payBill(phone: "13800000001", reference: reference, password: "123456").amountFen == 49_999)
        #expect(try world.ledger.check().ok)
    }

    @Test func aWalletSetsItsOwnDailyLimit() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.wallets.topUp(phone: "13800000001", cardID: 1, amountFen: 5_000_000, idempotencyKey: "more")
        try world.execute("UPDATE bill_accounts SET autopay_limit_fen = 50000 WHERE customer_no = '1100234567'")
        _ = try world.wallets.setAutopayDailyLimit(phone: "13800000001", fen: 100_000)
        #expect(throws: WalletRefusal.amountOverRequestLimit) { try world.wallets.setAutopayDailyLimit(phone: "13800000001", fen: 5_000_001) }
        let url = try Self.feed(world.directory, customer: "1100234567", count: 5, fen: 30_000)
        _ = try world.run("2026-11-27", feeds: ["QD-WATER": url])
        // 1,000.00 a day, his power bill included: as many bills of 300.00 as fit after it.
        let other = Int64(try world.count("SELECT coalesce(sum(paid_fen - discount_fen), 0) FROM bills WHERE wallet_id = 1 AND paid_via = 'autopay' AND bill_id NOT LIKE 'W-DRAIN-%'"))
        #expect(try world.count("SELECT count(*) FROM bills WHERE bill_id LIKE 'W-DRAIN-%' AND status = 'paid'") == Int((100_000 - other) / 30_000))
        #expect(throws: WalletRefusal.invalidAmount) { try world.wallets.setAutopayDailyLimit(phone: "13800000001", fen: 0) }
    }

    /// The day's autopay of a wallet counts its bills autopaid that business day, after
    /// discounts: not a bill paid on another day, paid by hand, or refunded; the read for many
    /// wallets answers what the read for one does, 0 for a wallet that paid nothing.
    @Test func theAutopayOfADayCountsThatDayAlone() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let day = try #require(ShanghaiCalendar.Date(iso: "2026-11-27"))
        func used(_ wallet: Int64) throws -> Int64 { try world.store.database.write { try BillStore($0).autopayUsed(walletID: wallet, on: day) } }
        func usedAll(_ wallets: [Int64]) throws -> [Int64: Int64] { try world.store.database.write { try BillStore($0).autopayUsed(walletIDs: wallets, on: day) } }
        let bills = try world.rows("SELECT id, paid_fen - discount_fen AS net FROM bills WHERE wallet_id = 1 AND status = 'paid' AND paid_via = 'autopay' ORDER BY id")
            .map { (id: try $0["id"] as Int64, net: try $0["net"] as Int64) }
        let total = bills.reduce(0) { $0 + $1.net }
        #expect(bills.count >= 1 && total > 0)
        #expect(try used(1) == total)
        // Three more of his bills, paid before on other terms: none counts today.
        let copy = "INSERT INTO bills (biller, bill_id, feed_id, seq, business_date, customer_no, customer_name, district, period, usage, usage_unit, amount_fen, late_fee_fen, due_fen, issue_date, due_date, status, wallet_id, paid_fen, discount_fen, paid_via, paid_business_date, updated_at) "
            + "SELECT biller, bill_id || ?, feed_id, seq, business_date, customer_no, customer_name, district, period, usage, usage_unit, amount_fen, late_fee_fen, due_fen, issue_date, due_date, ?, wallet_id, paid_fen, discount_fen, ?, ?, updated_at FROM bills WHERE id = ?"
        try world.store.database.write { db in
            try db.run(copy, ["-the-day-before", "paid", "autopay", "2026-11-26", bills[0].id])
            try db.run(copy, ["-by-hand", "paid", "manual", "2026-11-27", bills[0].id])
            try db.run(copy, ["-refunded", "refunded", "autopay", "2026-11-27", bills[0].id])
        }
        #expect(try world.count("SELECT count(*) FROM bills WHERE wallet_id = 1 AND (bill_id LIKE '%-the-day-before' OR bill_id LIKE '%-by-hand' OR bill_id LIKE '%-refunded')") == 3)
        #expect(try used(1) == total)
        #expect(try world.store.database.write { try BillStore($0).autopayUsed(walletID: 1, on: try #require(ShanghaiCalendar.Date(iso: "2026-11-26"))) } == bills[0].net)
        let nobody: Int64 = 999_999
        let all = try usedAll([1, 2, 3, nobody, 1])
        #expect(all.count == 4 && all[1] == total && all[nobody] == 0)
        #expect(try all[2] == used(2) && all[3] == used(3))
    }

    /// The day's autopay is read through the wallets' index of bills keyed by wallet,
    /// status and paid day (`billing-v11-wallet-paid-day`): the day's bills, not every bill
    /// the wallet ever paid, so the night's cost does not grow with the months kept. The plan
    /// is asked of the engine with the read's parameters bound: SQLite's `EXPLAIN QUERY
    /// PLAN`; PostgreSQL's `EXPLAIN` with sequential scans priced out (a few test bills would
    /// otherwise be read whole).
    /// What a bill's link alone decides (wallet.md's autopay rules: autopay off, then a
    /// per-bill limit below the amount due) the feed's move writes: the bill payable for the
    /// link's wallet with the reason, its notice queued with the feed. A bill at the limit
    /// exactly is left to the processing, which pays it; no bill gets a second notice.
    @Test func theBillsTheirLinkDecidesAreLeftPayableByTheIngest() throws {
        let world = try BillingWorld()
        try world.populate()
        // 张三's water link pays up to 300.00 a bill; resident 6's is set to autopay off.
        try world.execute("UPDATE bill_accounts SET autopay = 0 WHERE customer_no = '1100234571'")
        let url = try Self.feed(world.directory, bills: [("L-AT", "1100234567", 30_000), ("L-OVER", "1100234567", 30_001), ("L-OFF", "1100234571", 1_234), ("L-NONE", "1100239999", 500)])
        let ingest = try world.runner(steps: [IngestStep(config: world.config)]).run("nightly-billing", overrides: ["date": "2026-11-27", "feed.QD-WATER": url])
        #expect(ingest.status == "completed")
        func link(_ customer: String) throws -> (wallet: Int64, account: Int64) {
            let row = try #require(try world.rows("SELECT id, wallet_id FROM bill_accounts WHERE biller = 'QD-WATER' AND customer_no = ?", [customer]).first)
            return (try row["wallet_id"], try row["id"])
        }
        func state(_ id: String) throws -> String {
            let bill = try #require(try world.bill("QD-WATER", id))
            let (status, reason, wallet, account): (String, String?, Int64?, Int64?) = (try bill["status"], try bill["reason"], try bill["wallet_id"], try bill["bill_account_id"])
            return "\(status) \(reason ?? "-") \(wallet.map(String.init) ?? "-") \(account.map(String.init) ?? "-")"
        }
        let zhang = try link("1100234567"), six = try link("1100234571")
        #expect(try state("L-AT") == "new - - -")
        #expect(try state("L-OVER") == "payable OVER_AUTOPAY_LIMIT \(zhang.wallet) \(zhang.account)")
        #expect(try state("L-OFF") == "payable AUTOPAY_OFF \(six.wallet) \(six.account)")
        #expect(try state("L-NONE") == "unmatched UNKNOWN_CUSTOMER - -")
        func notices(_ id: String) throws -> [SQLValues] {
            try world.rows("SELECT wallet_id, message_id, payload FROM outbox WHERE kind = 'bill_notice' AND payload LIKE ?", ["%\"" + id + "\"%"])
        }
        func expectNotice(_ id: String, wallet: Int64, phone: String, amount: String, reason: String) throws {
            let found = try notices(id)
            #expect(found.count == 1, "\(id)")
            let notice = try #require(found.first)
            let row = try #require(try world.bill("QD-WATER", id)?["id"] as Int64?)
            #expect(try notice["wallet_id"] as Int64 == wallet)
            #expect(try notice["message_id"] as String == "notice:" + String(repeating: "0", count: 12 - String(row).count) + String(row) + ":QD-WATER:" + id)
            let payload = try #require(try JSONSerialization.jsonObject(with: Data((try notice["payload"] as String).utf8)) as? [String: String])
            #expect(payload == ["biller": "QD-WATER", "bill_id": id, "amount": amount, "due_date": "2026-12-20", "reason": reason, "phone": Mask.phone(phone)])
        }
        try expectNotice("L-OVER", wallet: zhang.wallet, phone: "13800000001", amount: "300.01", reason: "OVER_AUTOPAY_LIMIT")
        try expectNotice("L-OFF", wallet: six.wallet, phone: "13800000006", amount: "12.34", reason: "AUTOPAY_OFF")
        #expect(try notices("L-AT").isEmpty && notices("L-NONE").isEmpty)

        // The night finished: the bill at the limit paid, the others as the ingest left them,
        // one notice each.
        let before = try world.balance("13800000001")
        _ = try world.run("2026-11-27", feeds: ["QD-WATER": url], force: true)
        #expect(try state("L-AT") == "paid - \(zhang.wallet) \(zhang.account)")
        #expect(try world.bill("QD-WATER", "L-AT")?["paid_fen"] as Int64? == 30_000)
        #expect(try state("L-OVER") == "payable OVER_AUTOPAY_LIMIT \(zhang.wallet) \(zhang.account)")
        #expect(try state("L-OFF") == "payable AUTOPAY_OFF \(six.wallet) \(six.account)")
        #expect(try state("L-NONE") == "unmatched UNKNOWN_CUSTOMER - -")
        #expect(try notices("L-OVER").count == 1 && notices("L-OFF").count == 1)
        #expect(try before - world.balance("13800000001") >= 30_000)
        // Payable means the resident may pay it by hand.
        #expect(try world.billing.payBill(phone: "13800000001", reference: "QD-WATER:L-OVER", password: "123456").amountFen == 30_001)
        #expect(try world.ledger.check().ok)
    }

    /// The notices of a feed's bills the move left payable are read through the feed's range
    /// of ids, in row order (from the table's key itself), never through every payable bill
    /// kept nor every bill.
    @Test func theNoticesOfAFeedAreReadThroughItsRange() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let plan = try world.plan(BillStore.decidedAtMoveSQL, ["QD-GAS/QD-GAS-20261127-01"])
        if world.onPostgres {
            #expect(plan.contains { $0.contains("Index Cond") && $0.contains("id >= f.first_bill") && $0.contains("id <= f.last_bill") }, "\(plan)")
        } else {
            #expect(plan.contains { $0.contains("SEARCH b USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)") }, "\(plan)")
            #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(plan)")
        }
        #expect(!plan.contains { $0.contains("SCAN b") || $0.contains("Seq Scan on bills") || $0.contains("bills_to_remind") }, "\(plan)")
    }

    @Test(arguments: [false, true])
    func theAutopayOfADayIsReadThroughTheWalletsPaidDay(many: Bool) throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let text = BillStore.autopayUsedSQL(wallets: many ? "?, ?, ?" : "?", grouped: many)
        let binds: [any SQLBindable] = (many ? [Int64(1), Int64(2), Int64(3)] : [Int64(1)]) + ["2026-11-27"]
        let plan = try world.plan(text, binds)
        #expect(plan.contains { $0.contains("bills_by_wallet") }, "\(plan)")
        // The day is a key of the search, not a filter of every paid bill read.
        if world.onPostgres {
            #expect(plan.contains { $0.contains("Index Cond") && $0.contains("COALESCE(paid_business_date") }, "\(plan)")
        } else {
            #expect(plan.contains { $0.contains("bills_by_wallet (wallet_id=? AND status=? AND <expr>=?)") }, "\(plan)")
        }
        #expect(!plan.contains { $0.contains("SCAN bills") || $0.contains("Seq Scan") || $0.contains("bills_paid_by_day") }, "\(plan)")
    }
}
