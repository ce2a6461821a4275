import Feeds
import Foundation
import QDTestSupport
import Testing

/// The bytes of a payment report, which a biller's system parses: XML 1.0 escaping (§2.4, the
/// five predefined entities of §4.6) and no character XML 1.0 forbids (§2.2: no control
/// character but tab, newline and carriage return; carriage returns are dropped too, as an
/// XML parser would turn them into newlines).
@Suite struct PaymentReportWriterTests {
    @Test func itemsAreWrittenEscapedAndValidAgainstTheirSchema() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("QDW-QD-WATER-20261127.xml").path
        let header = ReportHeader(reportID: "QDW-QD-WATER-20261127", billerCode: "QD-WATER", businessDate: "2026-11-27", createdAt: 1_795_708_800_000_000,
                                  originalFeedID: "QD-WATER-20261127-01", itemCount: 0, paidCount: 1, paidSumFen: 12_345, refundedCount: 0, refundedSumFen: 0)
        let items = [
            ReportItem(billID: "W&1<2>", status: .paid, amountFen: 12_345, paidAt: 1_795_708_809_000_000, paymentRef: "QDW-T7"),
            ReportItem(billID: "it's \"q\"", status: .pending, reason: "KYC_REQUIRED"),
            ReportItem(billID: "水费-2026\u{1}\r", status: .unmatched),
            ReportItem(billID: "Z-0", status: .rejected, amountFen: 5, reason: "AMOUNT_CHANGED"),
        ]
        let count = try PaymentReportWriter.write(header: header, items: items, to: path, schema: XMLSchema(path: sampleFeeds + "/schema/payreport.xsd"))
        #expect(count == 4)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text == """
            <?xml version="1.0" encoding="UTF-8"?>
            <PaymentReport xmlns="urn:qdwallet:payreport:1">
              <Header>
                <ReportId>QDW-QD-WATER-20261127</ReportId>
                <BillerCode>QD-WATER</BillerCode>
                <BusinessDate>2026-11-27</BusinessDate>
                <CreatedAt>2026-11-27T00:00:00+08:00</CreatedAt>
                <OrgnlFeedId>QD-WATER-20261127-01</OrgnlFeedId>
                <NbOfItems>4</NbOfItems>
                <PaidCount>1</PaidCount>
                <PaidSum Ccy="CNY">123.45</PaidSum>
                <RefundedCount>0</RefundedCount>
                <RefundedSum Ccy="CNY">0.00</RefundedSum>
              </Header>
              <Item>
                <BillId>W&amp;1&lt;2&gt;</BillId>
                <Status>PAID</Status>
                <Amount Ccy="CNY">123.45</Amount>
                <PaidAt>2026-11-27T00:00:09+08:00</PaidAt>
                <PaymentRef>QDW-T7</PaymentRef>
              </Item>
              <Item>
                <BillId>it&apos;s &quot;q&quot;</BillId>
                <Status>PENDING</Status>
                <Reason>KYC_REQUIRED</Reason>
              </Item>
              <Item>
                <BillId>水费-2026</BillId>
                <Status>UNMATCHED</Status>
              </Item>
              <Item>
                <BillId>Z-0</BillId>
                <Status>REJECTED</Status>
                <Amount Ccy="CNY">0.05</Amount>
                <Reason>AMOUNT_CHANGED</Reason>
              </Item>
            </PaymentReport>

            """)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(!FileManager.default.fileExists(atPath: path + ".items"))
    }

    /// An item the schema refuses (a reason outside `[A-Z_]{1,35}`) is caught before anyone
    /// sees the file: the write throws.
    @Test func aReportItsSchemaRefusesIsNotTakenForWritten() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let header = ReportHeader(reportID: "QDW-QD-WATER-20261127", billerCode: "QD-WATER", businessDate: "2026-11-27", createdAt: 1_795_708_800_000_000,
                                  originalFeedID: nil, itemCount: 0, paidCount: 0, paidSumFen: 0, refundedCount: 0, refundedSumFen: 0)
        #expect(throws: FeedError.self) {
            try PaymentReportWriter.write(header: header, items: [ReportItem(billID: "W-1", status: .pending, reason: "not a code")],
                                          to: directory.appendingPathComponent("r.xml").path, schema: XMLSchema(path: sampleFeeds + "/schema/payreport.xsd"))
        }
    }
}
