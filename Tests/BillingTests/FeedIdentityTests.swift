import Foundation
import GRDB
import QDTestSupport
import Testing
@testable import Billing
@testable import Ledger

/// A feed's identity is (BillerCode, FeedId): billers number their feeds independently.
@Suite struct FeedIdentityTests {
    /// A one-bill feed of `biller` with the given FeedId.
    static func feed(_ directory: URL, biller: String, feedID: String, billID: String, customer: String, fen: Int64) throws -> String {
        let yuan = "\(fen / 100).\(String(format: "%02d", fen % 100))"
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <BillFeed xmlns="urn:qdwallet:billfeed:1"><Header><FeedId>\(feedID)</FeedId><BillerCode>\(biller)</BillerCode><CreatedAt>2026-11-27T22:00:00+08:00</CreatedAt><BusinessDate>2026-11-27</BusinessDate><NbOfBills>1</NbOfBills><CtrlSum Ccy="CNY">\(yuan)</CtrlSum></Header>
            <Bill><BillId>\(billID)</BillId><CustomerNo>\(customer)</CustomerNo><CustomerName>张*</CustomerName><District>市南区</District><Period>2026-11</Period><Usage Unit="m3">1.0</Usage><Amount Ccy="CNY">\(yuan)</Amount><LateFee Ccy="CNY">0.00</LateFee><IssueDate>2026-11-27</IssueDate><DueDate>2026-12-20</DueDate></Bill></BillFeed>
            """
        let path = directory.appendingPathComponent("\(biller)-\(feedID)-\(billID).xml").path
        try xml.write(toFile: path, atomically: false, encoding: .utf8)
        return "file://" + path
    }

    @Test func twoBillersMayNumberTheirFeedsAlike() throws {
        let world = try BillingWorld()
        try world.populate()
        let water = try Self.feed(world.directory, biller: "QD-WATER", feedID: "20261127-01", billID: "W-1", customer: "1100234567", fen: 1_000)
        let gas = try Self.feed(world.directory, biller: "QD-GAS", feedID: "20261127-01", billID: "G-1", customer: "88001234", fen: 2_000)
        let report = try world.run("2026-11-27", feeds: ["QD-WATER": water, "QD-GAS": gas])
        let summary = try world.summary(report)
        for code in ["QD-WATER", "QD-GAS"] {
            let line = try #require(summary.billers.first { $0.biller == code })
            #expect(line.status == "processed", "\(code): \(line.error ?? "")")
            #expect(line.feedId == "20261127-01")
        }
        #expect(try world.status("QD-WATER", "W-1") != nil && world.status("QD-GAS", "G-1") != nil)
        // Each report lists its own biller's bill only, with the biller's own FeedId.
        let waterReport = try world.reportFile("QD-WATER", "20261127")
        let gasReport = try world.reportFile("QD-GAS", "20261127")
        #expect(waterReport.contains("<BillId>W-1</BillId>") && !waterReport.contains("<BillId>G-1</BillId>"))
        #expect(gasReport.contains("<BillId>G-1</BillId>") && !gasReport.contains("<BillId>W-1</BillId>"))
        #expect(waterReport.contains("<OrgnlFeedId>20261127-01</OrgnlFeedId>"))
    }

    /// One biller reusing its own FeedId with other content is refused; another biller's feed
    /// of the same FeedId is not its concern, and a replay of the same bytes is a no-op.
    @Test func aReusedFeedIdIsJudgedWithinItsBiller() throws {
        let world = try BillingWorld()
        try world.populate()
        let gas = try Self.feed(world.directory, biller: "QD-GAS", feedID: "F-1", billID: "G-1", customer: "88001234", fen: 2_000)
        _ = try world.run("2026-11-27", feeds: ["QD-GAS": gas, "QD-WATER": try Self.feed(world.directory, biller: "QD-WATER", feedID: "W-F", billID: "W-0", customer: "1100234567", fen: 100)])
        // QD-WATER sends a feed numbered F-1 too: staged, not "reused".
        let water = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-1", billID: "W-1", customer: "1100234567", fen: 1_000)
        let second = try world.run("2026-11-27", feeds: ["QD-WATER": water, "QD-GAS": gas], force: true)
        let lines = try world.summary(second).billers
        #expect(lines.first { $0.biller == "QD-WATER" }?.status == "processed")
        #expect(lines.first { $0.biller == "QD-GAS" }?.status == "skipped")
        // QD-GAS reusing F-1 with other content is refused.
        let changed = try Self.feed(world.directory, biller: "QD-GAS", feedID: "F-1", billID: "G-2", customer: "88001234", fen: 3_000)
        let third = try world.run("2026-11-27", feeds: ["QD-WATER": water, "QD-GAS": changed], force: true)
        let gasLine = try #require(try world.summary(third).billers.first { $0.biller == "QD-GAS" })
        #expect(gasLine.status == "rejected")
        #expect(gasLine.error?.contains("F-1") == true)
        #expect(try world.bill("QD-GAS", "G-2") == nil)
    }

    /// A feed keeps the ids of the first and the last bill its move wrote, and its bills are
    /// read as that range of ids with their feed compared: exactly the rows naming it lie in
    /// it; a feed whose every bill was staged before keeps none and reads none as its own.
    @Test func aFeedKeepsTheRangeOfItsBills() throws {
        let world = try BillingWorld()
        try world.populate()
        let customer = "1199999999"
        let one = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-1", customer: customer, bills: (1...300).map { (id: "W-\($0)", fen: Int64(1_000 + $0)) })
        _ = try world.run("2026-11-27", feeds: ["QD-WATER": one])
        let again = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-2", customer: customer, bills: [(id: "W-1", fen: 1_001), (id: "W-2", fen: 1_002)])
        _ = try world.run("2026-11-27", feeds: ["QD-WATER": again], force: true)
        let three = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-3", customer: customer, bills: (301...310).map { (id: "W-\($0)", fen: Int64(1_000 + $0)) })
        _ = try world.run("2026-11-27", feeds: ["QD-WATER": three], force: true)
        func range(_ feed: String) throws -> String {
            let row = try world.rows("SELECT first_bill, last_bill FROM feeds WHERE feed_id = ?", ["QD-WATER/" + feed])[0]
            let first: Int64? = try row[0], last: Int64? = try row[1]
            guard let first, let last else { return "none" }
            let inside = try world.count("SELECT count(*) FROM bills WHERE id BETWEEN ? AND ?", [first, last])
            let named = try world.count("SELECT count(*) FROM bills WHERE id BETWEEN ? AND ? AND feed_id = ?", [first, last, "QD-WATER/" + feed])
            return "\(last - first + 1) ids, \(inside) bills, \(named) of the feed"
        }
        #expect(try range("F-1") == "300 ids, 300 bills, 300 of the feed")
        #expect(try range("F-2") == "none")
        #expect(try range("F-3") == "10 ids, 10 bills, 10 of the feed")
        #expect(try world.count("SELECT count(*) FROM bills WHERE feed_id = 'QD-WATER/F-1'") == 300)
        let day = { try world.store.database.read { try BillStore($0).feedDay(biller: "QD-WATER", on: ShanghaiCalendar.Date(year: 2026, month: 11, day: 27)) } }
        #expect(try day().staged.count == 310)
        #expect(try day().billRecords == 2)
        // Two feeds moved at once on PostgreSQL may take ids inside each other's range: a
        // feed's range stretched over F-1's bills still reads only its own.
        let f1 = try world.rows("SELECT first_bill FROM feeds WHERE feed_id = 'QD-WATER/F-1'")[0]
        let f1First: Int64 = try f1[0]
        try world.execute("UPDATE feeds SET first_bill = ? WHERE feed_id = 'QD-WATER/F-3'", [f1First])
        #expect(try day().staged.count == 310)
        #expect(try day().staged.dueFen == (1...310).reduce(Int64(0)) { $0 + 1_000 + Int64($1) })
    }

    /// A feed of `biller` with the given bills (id, amount), all for one customer.
    /// `customerAt` gives some bills (by position) another customer number.
    static func feed(_ directory: URL, biller: String, feedID: String, businessDate: String = "2026-11-27", customer: String, bills: [(id: String, fen: Int64)],
                     customerAt: [Int: String] = [:]) throws -> String {
        func yuan(_ fen: Int64) -> String { "\(fen / 100).\(String(format: "%02d", fen % 100))" }
        var xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <BillFeed xmlns="urn:qdwallet:billfeed:1"><Header><FeedId>\(feedID)</FeedId><BillerCode>\(biller)</BillerCode><CreatedAt>\(businessDate)T22:00:00+08:00</CreatedAt><BusinessDate>\(businessDate)</BusinessDate><NbOfBills>\(bills.count)</NbOfBills><CtrlSum Ccy="CNY">\(yuan(bills.reduce(0) { $0 + $1.fen }))</CtrlSum></Header>

            """
        for (index, bill) in bills.enumerated() {
            xml += "<Bill><BillId>\(bill.id)</BillId><CustomerNo>\(customerAt[index] ?? customer)</CustomerNo><CustomerName>张*</CustomerName><District>市南区</District><Period>2026-11</Period><Usage Unit=\"m3\">1.0</Usage><Amount Ccy=\"CNY\">\(yuan(bill.fen))</Amount><LateFee Ccy=\"CNY\">0.00</LateFee><IssueDate>2026-11-27</IssueDate><DueDate>2026-12-20</DueDate></Bill>\n"
        }
        xml += "</BillFeed>\n"
        let path = directory.appendingPathComponent("\(biller)-\(feedID).xml").path
        try xml.write(toFile: path, atomically: false, encoding: .utf8)
        return "file://" + path
    }

    /// Bills are staged 4,096 at a time; a repeated bill id is found wherever it falls:
    /// in the same group as the first, in a later group, or in a later feed (bill-feed.md:
    /// a bill id is unique per biller; a repeat with the same content is ignored, with other
    /// content refused). Each record that was not staged is recorded once, under its own
    /// sequence number, and the first occurrence is the one staged.
    @Test func repeatedBillIDsAreFoundAcrossTheStagingGroups() throws {
        let world = try BillingWorld()
        try world.populate()
        // An unknown customer: the bills stay unmatched, nothing is paid.
        let customer = "1199999999"
        var first = (1...600).map { (id: "W-\($0)", fen: Int64(1_000 + $0)) }
        first[299] = (id: "W-299", fen: 1_299)          // seq 300 repeats seq 299 (same group)
        first[499] = (id: "W-10", fen: 1_010)           // seq 500 repeats seq 10 (an earlier group)
        first[519] = (id: "W-11", fen: 9_999)           // seq 520 repeats seq 11 with another amount
        let one = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-1", customer: customer, bills: first)
        let report = try world.run("2026-11-27", feeds: ["QD-WATER": one])
        #expect(report.status == "completed")
        #expect(try world.count("SELECT count(*) FROM bills WHERE biller = 'QD-WATER'") == 597)
        let records = try world.rows("SELECT seq, bill_id, outcome, reason FROM feed_records ORDER BY seq")
        #expect(try records.map { "\(try $0[0] as Int) \(try $0[1] as String) \(try $0[2] as String) \(try $0[3] as String)" } == [
            "300 W-299 duplicate_in_feed DUPLICATE_IN_FEED",
            "500 W-10 duplicate_in_feed DUPLICATE_IN_FEED",
            "520 W-11 duplicate_in_feed DUPLICATE_IN_FEED",
        ])
        // The first occurrence is the one staged: its feed, sequence number and amount.
        let w11 = try #require(try world.bill("QD-WATER", "W-11"))
        #expect(try w11["seq"] as Int == 11 && w11["due_fen"] as Int64 == 1_011)

        // A second feed: W-1 again unchanged (ignored), W-2 with another amount (refused), W-601 new.
        // W-1 once more at seq 4: it repeats the earlier feed's bill, as the first W-1 does.
        let second = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-2", customer: customer,
                                   bills: [(id: "W-1", fen: 1_001), (id: "W-2", fen: 5_000), (id: "W-601", fen: 1_601), (id: "W-1", fen: 1_001)])
        _ = try world.run("2026-11-27", feeds: ["QD-WATER": second], force: true)
        #expect(try world.count("SELECT count(*) FROM bills WHERE biller = 'QD-WATER'") == 598)
        let later = try world.rows("SELECT seq, bill_id, outcome, reason FROM feed_records WHERE feed_id = 'QD-WATER/F-2' ORDER BY seq")
        #expect(try later.map { "\(try $0[0] as Int) \(try $0[1] as String) \(try $0[2] as String) \(try $0[3] as String)" } == [
            "1 W-1 seen_again SEEN_AGAIN",
            "2 W-2 rejected AMOUNT_CHANGED",
            "4 W-1 seen_again SEEN_AGAIN",
        ])
        #expect(try world.bill("QD-WATER", "W-2")?["due_fen"] as Int64? == 1_002)
    }

    /// The search for a feed's collisions is made only when a bill of the feed did not go
    /// into `bills`: a feed whose only collision is one bill of an earlier feed, or one repeat
    /// of its own, still records it (bill-feed.md: a repeat with the same content is ignored,
    /// with other content refused), and a feed without one records nothing.
    @Test func aFeedsOnlyCollisionIsRecorded() throws {
        let world = try BillingWorld()
        try world.populate()
        let customer = "1199999999"
        let one = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-1", customer: customer, bills: [(id: "W-1", fen: 1_001), (id: "W-2", fen: 1_002)])
        #expect(try world.run("2026-11-27", feeds: ["QD-WATER": one]).status == "completed")
        #expect(try world.count("SELECT count(*) FROM feed_records") == 0)
        // One bill of the earlier feed, with another amount, among new ones.
        let two = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-2", customer: customer, bills: [(id: "W-3", fen: 1_003), (id: "W-2", fen: 7_777), (id: "W-4", fen: 1_004)])
        #expect(try world.run("2026-11-27", feeds: ["QD-WATER": two], force: true).status == "completed")
        // One repeat inside the feed, nothing of an earlier one.
        let three = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-3", customer: customer, bills: [(id: "W-5", fen: 1_005), (id: "W-6", fen: 1_006), (id: "W-5", fen: 1_005)])
        #expect(try world.run("2026-11-27", feeds: ["QD-WATER": three], force: true).status == "completed")
        let records = try world.rows("SELECT feed_id, seq, bill_id, outcome, reason FROM feed_records ORDER BY feed_id, seq")
        #expect(try records.map { "\(try $0[0] as String) \(try $0[1] as Int) \(try $0[2] as String) \(try $0[3] as String) \(try $0[4] as String)" } == [
            "QD-WATER/F-2 2 W-2 rejected AMOUNT_CHANGED",
            "QD-WATER/F-3 3 W-5 duplicate_in_feed DUPLICATE_IN_FEED",
        ])
        #expect(try world.count("SELECT count(*) FROM bills WHERE biller = 'QD-WATER'") == 6)
        #expect(try world.bill("QD-WATER", "W-2")?["due_fen"] as Int64? == 1_002)
        #expect(try world.bill("QD-WATER", "W-2")?["feed_id"] as String? == "QD-WATER/F-1")
        #expect(try world.bill("QD-WATER", "W-5")?["seq"] as Int? == 1)
    }

    /// A feed that repeats more bills of an earlier feed than are read back at once (a
    /// thousand): each repeat is recorded once, none is staged twice.
    @Test func aFeedRepeatingOverAThousandBillsRecordsEachOnce() throws {
        let world = try BillingWorld()
        try world.populate()
        let customer = "1199999999"
        let bills = (1...1_100).map { (id: "W-\($0)", fen: Int64(1_000 + $0)) }
        let one = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-1", customer: customer, bills: bills)
        #expect(try world.run("2026-11-27", feeds: ["QD-WATER": one]).status == "completed")
        let two = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-2", customer: customer, bills: [(id: "W-0", fen: 1_000)] + bills)
        #expect(try world.run("2026-11-27", feeds: ["QD-WATER": two], force: true).status == "completed")
        #expect(try world.count("SELECT count(*) FROM bills WHERE biller = 'QD-WATER'") == 1_101)
        #expect(try world.count("SELECT count(*) FROM feed_records WHERE feed_id = 'QD-WATER/F-2' AND outcome = 'seen_again'") == 1_100)
        #expect(try world.count("SELECT count(DISTINCT seq) FROM feed_records WHERE feed_id = 'QD-WATER/F-2'") == 1_100)
        #expect(try world.count("SELECT min(seq) FROM feed_records WHERE feed_id = 'QD-WATER/F-2'") == 2)
        #expect(try world.count("SELECT max(seq) FROM feed_records WHERE feed_id = 'QD-WATER/F-2'") == 1_101)
    }

    /// A feed that repeats more of its own bills than are read back at once (a thousand),
    /// across the groups it is staged in (4,096 bills), and some of them also bills of an
    /// earlier feed: each repeat is recorded once, against the earlier feed's bill where there
    /// is one, and only the first occurrence of a new id is staged, even where a repeat names a
    /// customer whose wallet comes first in the order bills are written in.
    @Test func aFeedRepeatingOverAThousandOfItsOwnBillsRecordsEachOnce() throws {
        let world = try BillingWorld()
        try world.populate()
        let customer = "1199999999"
        let one = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-1", customer: customer, bills: [(id: "W-7", fen: 1_007), (id: "W-8", fen: 1_008)])
        #expect(try world.run("2026-11-27", feeds: ["QD-WATER": one]).status == "completed")
        // W-1 ... W-4200, then W-1 ... W-1100 again (seq 4201 ... 5300): W-5 with another amount.
        var bills = (1...4_200).map { (id: "W-\($0)", fen: Int64(1_000 + $0)) }
        bills += (1...1_100).map { (id: "W-\($0)", fen: Int64($0 == 5 ? 9_999 : 1_000 + $0)) }
        // W-9 first for resident 1 (a linked customer), repeated for the unknown one (no wallet: first).
        let two = try Self.feed(world.directory, biller: "QD-WATER", feedID: "F-2", customer: customer, bills: bills, customerAt: [8: "1100234567"])
        #expect(try world.run("2026-11-27", feeds: ["QD-WATER": two], force: true).status == "completed")
        #expect(try world.count("SELECT count(*) FROM bills WHERE biller = 'QD-WATER'") == 4_200)
        #expect(try world.count("SELECT count(*) FROM bills WHERE feed_id = 'QD-WATER/F-2'") == 4_198)
        #expect(try world.count("SELECT count(*) FROM feed_records WHERE feed_id = 'QD-WATER/F-2'") == 1_102)
        #expect(try world.count("SELECT count(DISTINCT seq) FROM feed_records WHERE feed_id = 'QD-WATER/F-2'") == 1_102)
        #expect(try world.count("SELECT count(*) FROM feed_records WHERE feed_id = 'QD-WATER/F-2' AND outcome = 'duplicate_in_feed' AND seq > 4200") == 1_098)
        let earlier = try world.rows("SELECT seq, bill_id, outcome FROM feed_records WHERE feed_id = 'QD-WATER/F-2' AND bill_id IN ('W-5', 'W-7', 'W-8', 'W-9') ORDER BY seq")
        #expect(try earlier.map { "\(try $0[0] as Int) \(try $0[1] as String) \(try $0[2] as String)" } == [
            "7 W-7 seen_again", "8 W-8 seen_again", "4205 W-5 duplicate_in_feed", "4207 W-7 seen_again", "4208 W-8 seen_again", "4209 W-9 duplicate_in_feed",
        ])
        // The first occurrence of each id is the one staged, with its amount.
        #expect(try world.bill("QD-WATER", "W-5")?["due_fen"] as Int64? == 1_005)
        #expect(try world.bill("QD-WATER", "W-5")?["seq"] as Int? == 5)
        #expect(try world.bill("QD-WATER", "W-7")?["feed_id"] as String? == "QD-WATER/F-1")
        #expect(try world.bill("QD-WATER", "W-9")?["seq"] as Int? == 9)
        #expect(try world.bill("QD-WATER", "W-9")?["customer_no"] as String? == "1100234567")
    }

    /// A feed's bills are written to `bills` in the order of the wallets their customer
    /// numbers are linked to (none first), each wallet's in the feed's order, so that the
    /// processing step, which goes in id order, finds a chunk's wallets together.
    @Test func aFeedsBillsAreStoredInTheOrderOfTheirWallets() throws {
        let world = try BillingWorld()
        try world.populate()
        let ingest = try world.runner(steps: [IngestStep(config: world.config)]).run("nightly-billing", overrides: ["date": "2026-11-27"])
        #expect(ingest.status == "completed")
        func order(_ biller: String) throws -> [String] {
            try world.rows("SELECT bill_id FROM bills WHERE biller = ? ORDER BY id", [biller]).map { try $0["bill_id"] as String }
        }
        // Feed order W…1 to W…5: residents 1, 2, 5, 6 and a customer no wallet links.
        #expect(try order("QD-WATER") == ["W2611-000005", "W2611-000001", "W2611-000002", "W2611-000003", "W2611-000004"])
        // Feed order P…1 to P…3: residents 1 and 3, and a customer no wallet links.
        #expect(try order("QD-POWER") == ["P2611-100003", "P2611-100001", "P2611-100002"])
        #expect(try world.count("SELECT count(*) FROM bills") == 11)
        // The whole night then as always.
        let report = try world.run("2026-11-27", force: true)
        #expect(report.status == "completed")
        #expect(try world.status("QD-WATER", "W2611-000001") == "paid")
        #expect(try world.status("QD-WATER", "W2611-000005") == "unmatched UNKNOWN_CUSTOMER")
        #expect(try world.balance("13800000001") == 100_000 - 4_520 - 12_860)
    }
}
