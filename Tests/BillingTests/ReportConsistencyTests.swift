import Foundation
import GRDB
import QDTestSupport
import Testing
@testable import Billing
@testable import JobRunner
@testable import Ledger
@testable import Reports
import Wallet

/// Each run works on its own business date, and every payment report's header equals its
/// items: a payment is PAID in the report of its own day, and in no other.
@Suite struct ReportConsistencyTests {
    /// Header and items of a written report, counted from the XML.
    static func tally(_ xml: String) -> (paidCount: Int, paidItems: Int, refundedCount: Int, refundedItems: Int) {
        func header(_ name: String) -> Int {
            guard let start = xml.range(of: "<\(name)>"), let end = xml.range(of: "</\(name)>", range: start.upperBound..<xml.endIndex) else { return -1 }
            return Int(xml[start.upperBound..<end.lowerBound]) ?? -1
        }
        return (header("PaidCount"), xml.components(separatedBy: "<Status>PAID</Status>").count - 1,
                header("RefundedCount"), xml.components(separatedBy: "<Status>REFUNDED</Status>").count - 1)
    }

    @Test func everyReportOfTheSampleNightsHasAHeaderEqualToItsItems() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        world.clock.advance(micros: ShanghaiCalendar.dayMicros)
        _ = try world.run("2026-11-28")
        var reports = 0
        for biller in ["QD-WATER", "QD-POWER", "QD-GAS"] {
            for day in ["20261127", "20261128"] {
                let xml = try world.reportFile(biller, day)
                let counted = Self.tally(xml)
                // No bill paid in an earlier day's report is PAID again, and no refund is lost.
                let refundedAndPaidSameDay = 0
                #expect(counted.paidCount == counted.paidItems + refundedAndPaidSameDay, "\(biller) \(day): \(counted)")
                #expect(counted.refundedCount == counted.refundedItems, "\(biller) \(day): \(counted)")
                reports += 1
            }
        }
        #expect(reports == 6)
        // The gas bill re-sent on the 28th was paid on the 27th: ALREADY_PAID there, not PAID.
        let gas28 = try world.reportFile("QD-GAS", "20261128")
        #expect(gas28.contains("ALREADY_PAID"))
        #expect(Self.tally(gas28).paidCount == 0 && Self.tally(gas28).paidItems == 0)
    }

    /// A run that did not finish leaves its bills to itself: the next day's run neither pays
    /// nor reports them, and the resumed run pays them on their own day.
    @Test func aRunProcessesOnlyTheBillsOfItsOwnBusinessDate() throws {
        let world = try BillingWorld()
        try world.populate()
        // The 27th's run stops after staging (only the ingest step ran).
        let config = world.config
        _ = try world.runner(steps: [IngestStep(config: config)]).run("nightly-billing", overrides: ["date": "2026-11-27"])
        // Staged, or left payable by the ingest (their link decides them).
        let staged = try world.count("SELECT count(*) FROM bills WHERE business_date = '2026-11-27' AND status IN ('new', 'payable')")
        #expect(staged > 0)
        world.clock.advance(micros: ShanghaiCalendar.dayMicros)
        _ = try world.run("2026-11-28")
        // Still staged, or withdrawn by the 28th feed's cancels: never paid by the 28th's run.
        #expect(try world.count("SELECT count(*) FROM bills WHERE business_date = '2026-11-27' AND status IN ('new', 'payable', 'cancelled')") == staged)
        #expect(try world.count("SELECT count(*) FROM bills WHERE business_date = '2026-11-27' AND paid_business_date IS NOT NULL") == 0)
        for biller in ["QD-WATER", "QD-POWER", "QD-GAS"] {
            let counted = Self.tally(try world.reportFile(biller, "20261128"))
            #expect(counted.paidCount == counted.paidItems, "\(biller): \(counted)")
        }
        // The 27th's run finished later pays them as of the 27th, and its reports agree.
        _ = try world.run("2026-11-27", force: true)
        #expect(try world.count("SELECT count(*) FROM bills WHERE business_date = '2026-11-27' AND status = 'new'") == 0)
        #expect(try world.count("SELECT count(*) FROM bills WHERE business_date = '2026-11-27' AND status = 'paid' AND paid_business_date <> '2026-11-27'") == 0)
        for biller in ["QD-WATER", "QD-POWER", "QD-GAS"] {
            let counted = Self.tally(try world.reportFile(biller, "20261127"))
            #expect(counted.paidCount == counted.paidItems && counted.paidCount >= 0, "\(biller): \(counted)")
        }
        #expect(try world.ledger.check().ok)
    }

    /// A bill of the day's feed paid by hand after midnight is PAID in the next day's report
    /// only; the day's own report says PAID_LATER.
    @Test func aBillPaidByHandOnALaterDayIsReportedOnThatDayOnly() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let payable = try #require(try world.rows("SELECT b.biller, b.bill_id, w.phone FROM bills b JOIN wallets w ON w.id = b.wallet_id WHERE b.status = 'payable' AND w.frozen = 0 AND w.kyc_verified = 1 ORDER BY b.id").first)
        let reference = "\(try payable["biller"] as String):\(try payable["bill_id"] as String)"
        world.clock.set(shanghai(2026, 11, 28, 10, 0))
        _ = try world.billing.payBill(phone: payable["phone"], reference: reference, password: "123456")
        #expect(try world.bill(payable["biller"], payable["bill_id"])?["paid_business_date"] as String? == "2026-11-28")
        // The 27th's report, written again, and the 28th's.
        _ = try world.run("2026-11-27", force: true)
        _ = try world.run("2026-11-28")
        let biller: String = try payable["biller"]
        let billID: String = try payable["bill_id"]
        // The 27th's report had been delivered: the corrected one is its version 2.
        let first = try world.reportFile(biller, "20261127-v2")
        #expect(first.contains("<ReportId>QDW-\(biller)-20261127-V2</ReportId>"))
        let second = try world.reportFile(biller, "20261128")
        func item(_ xml: String) -> String {
            guard let start = xml.range(of: "<BillId>\(billID)</BillId>"), let end = xml.range(of: "</Item>", range: start.upperBound..<xml.endIndex) else { return "" }
            return String(xml[start.upperBound..<end.lowerBound])
        }
        #expect(item(first).contains("<Status>PENDING</Status>") && item(first).contains("PAID_LATER"), "\(item(first))")
        #expect(item(second).contains("<Status>PAID</Status>"), "\(item(second))")
        for xml in [first, second] {
            let counted = Self.tally(xml)
            #expect(counted.paidCount == counted.paidItems && counted.refundedCount == counted.refundedItems, "\(counted)")
        }
    }

    /// A bill a feed refused (a record fault: its customer number has a digit too few) and a later
    /// feed of the same day sent again, valid, is staged and paid; the day's report lists it
    /// once, as its bill: PAID with its amount, and the header's paid sum is the settlement
    /// account's movement of the day (bill-feed.md, the payment report: every bill of the
    /// day's feed is listed; PaidSum minus RefundedSum equals that movement).
    @Test func aBillRefusedByOneFeedAndSentAgainByALaterOneIsReportedAsItsPayment() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        _ = try world.run("2026-11-28")
        func feed(_ number: String, customerNo: String) throws -> String {
            let file = world.directory.appendingPathComponent("QD-WATER-20261128-\(number).xml")
            try """
                <?xml version="1.0" encoding="UTF-8"?>
                <BillFeed xmlns="urn:qdwallet:billfeed:1"><Header><FeedId>QD-WATER-20261128-\(number)</FeedId><BillerCode>QD-WATER</BillerCode><CreatedAt>2026-11-28T23:00:00+08:00</CreatedAt><BusinessDate>2026-11-28</BusinessDate><NbOfBills>1</NbOfBills><CtrlSum Ccy="CNY">1.30</CtrlSum></Header>
                <Bill><BillId>W2611-900001</BillId><CustomerNo>\(customerNo)</CustomerNo><CustomerName>张*</CustomerName><District>市南区</District><Period>2026-11</Period><Usage Unit="m3">0.4</Usage><Amount Ccy="CNY">1.30</Amount><LateFee Ccy="CNY">0.00</LateFee><IssueDate>2026-11-28</IssueDate><DueDate>2026-12-21</DueDate></Bill></BillFeed>
                """.write(to: file, atomically: false, encoding: .utf8)
            return "file://" + file.path
        }
        // The clock has not moved: both feeds are ingested at one moment, in FeedId order.
        #expect(try world.run("2026-11-28", feeds: ["QD-WATER": try feed("02", customerNo: "110023456")], force: true).status == "completed")
        #expect(try world.bill("QD-WATER", "W2611-900001") == nil)
        #expect(try world.count("SELECT count(*) FROM feed_records WHERE bill_id = 'W2611-900001' AND reason = 'INVALID_CUSTOMER_NO'") == 1)
        let third = try world.run("2026-11-28", feeds: ["QD-WATER": try feed("03", customerNo: "1100234567")], force: true)
        #expect(third.status == "completed", "\(third)")
        let bill = try #require(try world.bill("QD-WATER", "W2611-900001"))
        #expect(try bill["status"] as String == "paid")
        #expect(try bill["paid_business_date"] as String? == "2026-11-28")
        #expect(try bill["paid_fen"] as Int64? == 130)

        let xml = try world.reportFile("QD-WATER", "20261128-v3")
        let items = xml.components(separatedBy: "<BillId>W2611-900001</BillId>").count - 1
        #expect(items == 1, "\(xml)")
        let item = xml.components(separatedBy: "<BillId>W2611-900001</BillId>").dropFirst().first?.components(separatedBy: "</Item>").first ?? ""
        #expect(item.contains("<Status>PAID</Status>") && item.contains("<Amount Ccy=\"CNY\">1.30</Amount>"), "\(item)")
        let counted = Self.tally(xml)
        #expect(counted.paidCount == counted.paidItems && counted.refundedCount == counted.refundedItems, "\(counted)")
        func header(_ name: String) -> String {
            guard let start = xml.range(of: "<\(name) Ccy=\"CNY\">"), let end = xml.range(of: "</\(name)>", range: start.upperBound..<xml.endIndex) else { return "" }
            return String(xml[start.upperBound..<end.lowerBound])
        }
        let owed = try Money(yuan: header("PaidSum")).fen - (try Money(yuan: header("RefundedSum")).fen)
        let moved = try world.ledgerMovement("QD-WATER", "2026-11-28")
        #expect(owed == moved, "\(header("PaidSum")) - \(header("RefundedSum"))")
    }

    /// A water feed of the 28th with `body` (bills and cancels) and its control totals.
    static func feed28(_ world: BillingWorld, _ number: String, bills: [(id: String, customerNo: String)] = [], cancels: [String] = []) throws -> String {
        let file = world.directory.appendingPathComponent("QD-WATER-20261128-\(number).xml")
        let body = bills.map {
            "<Bill><BillId>\($0.id)</BillId><CustomerNo>\($0.customerNo)</CustomerNo><CustomerName>张*</CustomerName><District>市南区</District><Period>2026-11</Period><Usage Unit=\"m3\">0.4</Usage><Amount Ccy=\"CNY\">1.30</Amount><LateFee Ccy=\"CNY\">0.00</LateFee><IssueDate>2026-11-28</IssueDate><DueDate>2026-12-21</DueDate></Bill>"
        }.joined() + cancels.map { "<Cancel><BillId>\($0)</BillId><Reason>sent in error</Reason></Cancel>" }.joined()
        try """
            <?xml version="1.0" encoding="UTF-8"?>
            <BillFeed xmlns="urn:qdwallet:billfeed:1"><Header><FeedId>QD-WATER-20261128-\(number)</FeedId><BillerCode>QD-WATER</BillerCode><CreatedAt>2026-11-28T23:00:00+08:00</CreatedAt><BusinessDate>2026-11-28</BusinessDate><NbOfBills>\(bills.count)</NbOfBills><CtrlSum Ccy="CNY">\(Money(fen: 130 * Int64(bills.count)).yuanString)</CtrlSum></Header>
            \(body)</BillFeed>
            """.write(to: file, atomically: false, encoding: .utf8)
        return "file://" + file.path
    }

    /// The report's items naming `billID`, each the text between its BillId and `</Item>`.
    static func items(_ xml: String, _ billID: String) -> [String] {
        xml.components(separatedBy: "<BillId>\(billID)</BillId>").dropFirst().map { $0.components(separatedBy: "</Item>").first ?? "" }
    }

    /// A cancel of a bill unknown to the wallet is a record fault, listed REJECTED with
    /// UNKNOWN_BILL (bill-feed.md: record-level faults are listed with their reason); a later
    /// feed of the day that sends that bill, refused too (its customer number a digit short),
    /// adds no second item for it: the report lists a BillId once, as the day's first record
    /// naming it says (both REJECTED). The two feeds are ingested at one moment, in FeedId
    /// order; the second changes nothing a biller is told, so no new version is written.
    @Test func aBillIdRejectedAsACancelThenAsABillIsListedOnceAsTheFirstRecordSays() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        _ = try world.run("2026-11-28")
        #expect(try world.run("2026-11-28", feeds: ["QD-WATER": try Self.feed28(world, "02", cancels: ["W2611-900002"])], force: true).status == "completed")
        #expect(try world.count("SELECT count(*) FROM feed_records WHERE bill_id = 'W2611-900002' AND kind = 'cancel' AND reason = 'UNKNOWN_BILL'") == 1)
        let corrected = try world.reportFile("QD-WATER", "20261128-v2")
        #expect(try world.run("2026-11-28", feeds: ["QD-WATER": try Self.feed28(world, "03", bills: [("W2611-900002", "110023456")])], force: true).status == "completed")
        #expect(try world.bill("QD-WATER", "W2611-900002") == nil)
        #expect(try world.count("SELECT count(*) FROM feed_records WHERE bill_id = 'W2611-900002' AND reason = 'INVALID_CUSTOMER_NO'") == 1)
        #expect(!FileManager.default.fileExists(atPath: world.config.reportsDirectory + "/QD-WATER/QDW-QD-WATER-20261128-v3.xml"))
        let listed = Self.items(corrected, "W2611-900002")
        #expect(listed.count == 1, "\(corrected)")
        #expect(listed.first?.contains("<Status>REJECTED</Status>") == true && listed.first?.contains("<Reason>UNKNOWN_BILL</Reason>") == true, "\(listed)")
        let counted = Self.tally(corrected)
        #expect(counted.paidCount == counted.paidItems && counted.refundedCount == counted.refundedItems, "\(counted)")
    }

    /// A payable bill of the 27th named on the 28th by two feeds ingested at one moment, a
    /// cancel in one and a refused record (its customer number a digit short) in the other:
    /// the report lists it once, as the feed first in FeedId order names it (CANCELLED, or
    /// REJECTED with its reason), whichever feed the run read first.
    @Test(arguments: [true, false])
    func aBillNamedByTwoFeedsOfOneMomentIsListedAsTheFirstByFeedIdNamesIt(cancelFirst: Bool) throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        _ = try world.run("2026-11-28")
        let payable = try #require(try world.rows("SELECT bill_id FROM bills WHERE biller = 'QD-WATER' AND status = 'payable' AND business_date = '2026-11-27' ORDER BY bill_id").first?["bill_id"] as String?)
        // The feed first by FeedId is ingested last: the order of the report is the feeds'
        // ingestion time, then their FeedId, not the order the run read them in.
        let cancelFeed = cancelFirst ? "02" : "03", recordFeed = cancelFirst ? "03" : "02"
        let later = try Self.feed28(world, "03", bills: cancelFirst ? [(payable, "110023456")] : [], cancels: cancelFirst ? [] : [payable])
        let earlier = try Self.feed28(world, "02", bills: cancelFirst ? [] : [(payable, "110023456")], cancels: cancelFirst ? [payable] : [])
        #expect(try world.run("2026-11-28", feeds: ["QD-WATER": later], force: true).status == "completed")
        #expect(try world.run("2026-11-28", feeds: ["QD-WATER": earlier], force: true).status == "completed")
        #expect(try world.count("SELECT count(*) FROM feed_cancels WHERE bill_id = ? AND feed_id = ?", [payable, "QD-WATER/QD-WATER-20261128-" + cancelFeed]) == 1)
        #expect(try world.count("SELECT count(*) FROM feed_records WHERE bill_id = ? AND feed_id = ? AND reason = 'INVALID_CUSTOMER_NO'", [payable, "QD-WATER/QD-WATER-20261128-" + recordFeed]) == 1)
        #expect(try world.status("QD-WATER", payable) == "cancelled")
        let xml = try world.reportFile("QD-WATER", "20261128-v3")
        let listed = Self.items(xml, payable)
        #expect(listed.count == 1, "\(xml)")
        if cancelFirst {
            #expect(listed.first?.contains("<Status>CANCELLED</Status>") == true, "\(listed)")
        } else {
            #expect(listed.first?.contains("<Status>REJECTED</Status>") == true && listed.first?.contains("INVALID_CUSTOMER_NO") == true, "\(listed)")
        }
    }

    /// A report a biller has received is never replaced: the same content is not sent again,
    /// a correction is a new, numbered version beside it, and every delivered version is kept.
    @Test func aDeliveredReportIsNeverReplaced() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let delivered = world.directory.appendingPathComponent("reports/outbound/QD-WATER/QDW-QD-WATER-20261127.xml").path
        let original = try Data(contentsOf: URL(fileURLWithPath: delivered))
        let local = try world.reportFile("QD-WATER", "20261127")
        // Run again with nothing changed: nothing new is written or sent.
        world.clock.advance(micros: 3_600_000_000)
        _ = try world.run("2026-11-27", force: true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: delivered)) == original)
        #expect(try world.reportFile("QD-WATER", "20261127") == local)
        #expect(!FileManager.default.fileExists(atPath: delivered.replacingOccurrences(of: ".xml", with: "-v2.xml")))
        #expect(try world.count("SELECT count(*) FROM payment_report_versions WHERE biller = 'QD-WATER'") == 1)
        // A bill of the 27th is cancelled by hand-made correction of the data (its status
        // changes): the next run delivers version 2 beside version 1.
        try world.execute("UPDATE bills SET status = 'cancelled' WHERE biller = 'QD-WATER' AND status = 'payable' AND id = (SELECT min(id) FROM bills WHERE biller = 'QD-WATER' AND status = 'payable')")
        let report = try world.run("2026-11-27", force: true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: delivered)) == original)
        let corrected = try String(contentsOfFile: delivered.replacingOccurrences(of: ".xml", with: "-v2.xml"), encoding: .utf8)
        #expect(corrected.contains("<ReportId>QDW-QD-WATER-20261127-V2</ReportId>"))
        #expect(corrected.contains("<Status>CANCELLED</Status>"))
        #expect(try world.count("SELECT count(*) FROM payment_report_versions WHERE biller = 'QD-WATER'") == 2)
        #expect(try world.count("SELECT version FROM payment_reports WHERE biller = 'QD-WATER' AND business_date = '2026-11-27'") == 2)
        // The run says so.
        let water = try #require(try world.summary(report).billers.first { $0.biller == "QD-WATER" })
        #expect(water.reportVersion == 2)
        #expect(water.report?.hasSuffix("-v2.xml") == true)
        // Delivered versions cannot be edited or deleted.
        #expect(throws: (any Error).self) { try world.execute("DELETE FROM payment_report_versions") }
    }
}
