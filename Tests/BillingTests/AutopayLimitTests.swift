import Foundation
import GRDB
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
        let yuan = "\(fen / 100).\(String(format: "%02d", fen % 100))"
        var body = ""
        for n in 1...count {
            body += "<Bill><BillId>W-DRAIN-\(n)</BillId><CustomerNo>\(customer)</CustomerNo><CustomerName>张*</CustomerName><District>市南区</District><Period>2026-11</Period><Usage Unit=\"m3\">1.0</Usage><Amount Ccy=\"CNY\">\(yuan)</Amount><LateFee Ccy=\"CNY\">0.00</LateFee><IssueDate>2026-11-27</IssueDate><DueDate>2026-12-20</DueDate></Bill>\n"
        }
        let total = fen * Int64(count)
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <BillFeed xmlns="urn:qdwallet:billfeed:1"><Header><FeedId>DRAIN-01</FeedId><BillerCode>QD-WATER</BillerCode><CreatedAt>2026-11-27T22:00:00+08:00</CreatedAt><BusinessDate>2026-11-27</BusinessDate><NbOfBills>\(count)</NbOfBills><CtrlSum Ccy="CNY">\(total / 100).\(String(format: "%02d", total % 100))</CtrlSum></Header>
            \(body)</BillFeed>
            """
        let path = directory.appendingPathComponent("drain.xml").path
        try xml.write(toFile: path, atomically: true, encoding: .utf8)
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
}
