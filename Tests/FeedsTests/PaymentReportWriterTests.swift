import Crypto
import Feeds
import Foundation
import QDTestSupport
import Testing

/// The bytes of a payment report, which a biller's system parses: XML 1.0 escaping (§2.4, the
/// five predefined entities of §4.6) and no character XML 1.0 forbids (§2.2: no control
/// character but tab, newline and carriage return; carriage returns are dropped too, as an
/// XML parser would turn them into newlines).
@Suite struct PaymentReportWriterTests {
    /// A folder of its own, and the header of an empty report of 27 November.
    static func scratch() throws -> (URL, ReportHeader) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let header = ReportHeader(reportID: "QDW-QD-WATER-20261127", billerCode: "QD-WATER", businessDate: "2026-11-27", createdAt: 1_795_708_800_000_000,
                                  originalFeedID: nil, itemCount: 0, paidCount: 0, paidSumFen: 0, refundedCount: 0, refundedSumFen: 0)
        return (directory, header)
    }

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
        let written = try PaymentReportWriter.write(header: header, items: items, to: path, schema: XMLSchema(path: sampleFeeds + "/schema/payreport.xsd"))
        #expect(written.items == 4)
        // The digest is of the bytes on disk, header and closing tag included.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(written.sha256 == Array(SHA256.hash(data: bytes)))
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
    /// sees the file: the write throws, and no file is left where the report would be.
    @Test func aReportItsSchemaRefusesIsNotTakenForWritten() throws {
        let (directory, header) = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("r.xml").path
        let error = #expect(throws: FeedError.self) {
            try PaymentReportWriter.write(header: header, items: [ReportItem(billID: "W-1", status: .pending, reason: "not a code")],
                                          to: path, schema: XMLSchema(path: sampleFeeds + "/schema/payreport.xsd"))
        }
        #expect(error?.code == .invalid)
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(!FileManager.default.fileExists(atPath: path + ".items"))
        #expect(!FileManager.default.fileExists(atPath: path + ".partial"))
    }

    /// A report is written beside its place and put there only once whole, valid and
    /// checked: a refused one, or one its caller's check refuses (a header that disagrees with
    /// its items), leaves the report already there byte for byte, and nothing beside it.
    @Test func aRefusedReportLeavesTheOneInItsPlaceAsItWas() throws {
        let (directory, header) = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let schema = try XMLSchema(path: sampleFeeds + "/schema/payreport.xsd")
        let path = directory.appendingPathComponent("r.xml").path
        let first = try PaymentReportWriter.write(header: header, items: [ReportItem(billID: "W-1", status: .unmatched)], to: path, schema: schema)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(Array(SHA256.hash(data: before)) == first.sha256)
        let refused = #expect(throws: FeedError.self) {
            try PaymentReportWriter.write(header: header, items: [ReportItem(billID: "W-2", status: .pending, reason: "not a code")], to: path, schema: schema)
        }
        #expect(refused?.code == .invalid)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        struct Disagrees: Error {}
        var checked = 0
        #expect(throws: Disagrees.self) {
            try PaymentReportWriter.write(header: header, items: [ReportItem(billID: "W-3", status: .unmatched)], to: path, schema: schema) {
                checked += 1
                throw Disagrees()
            }
        }
        #expect(checked == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["r.xml"])
        // Passed: in its place.
        try PaymentReportWriter.write(header: header, items: [ReportItem(billID: "W-4", status: .unmatched)], to: path, schema: schema) { checked += 1 }
        #expect(checked == 2)
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("<BillId>W-4</BillId>"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["r.xml"])
    }

    /// The validator reads the bytes as they are written, through a queue far smaller than a
    /// report: a refused item at the very end of a report of many megabytes is still found
    /// (the validator saw every byte, in order), and one at the start is found without the
    /// writer waiting on a validator that has its answer.
    @Test(arguments: [0, 59_999]) func aRefusedItemAnywhereInALargeReportIsFound(at refused: Int) throws {
        let (directory, header) = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let schema = try XMLSchema(path: sampleFeeds + "/schema/payreport.xsd")
        let items = (0..<60_000).lazy.map { index in
            ReportItem(billID: "W-\(index)", status: .pending, reason: index == refused ? "not a code" : "KYC_REQUIRED")
        }
        let path = directory.appendingPathComponent("r.xml").path
        let error = #expect(throws: FeedError.self) {
            try PaymentReportWriter.write(header: header, items: items, to: path, schema: schema)
        }
        #expect(error?.code == .invalid)
        #expect(!FileManager.default.fileExists(atPath: path))
        // The same report without the refused item is valid, and its digest is its bytes'.
        let valid = (0..<60_000).lazy.map { ReportItem(billID: "W-\($0)", status: .pending, reason: "KYC_REQUIRED") }
        let written = try PaymentReportWriter.write(header: header, items: valid, to: path, schema: schema)
        #expect(written.items == 60_000)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(bytes.count > 4 << 20)
        #expect(written.sha256 == Array(SHA256.hash(data: bytes)))
    }
}

/// The validator beside a writer (XML 1.0 well-formedness, §2.1; XSD 1.0 validity), fed piece
/// by piece through its bounded queue.
@Suite struct XMLValidatorBesideTests {
    /// A report on one line (whitespace between elements is not what is tested here).
    static let report = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PaymentReport xmlns=\"urn:qdwallet:payreport:1\"><Header>"
        + "<ReportId>QDW-QD-GAS-20261128</ReportId><BillerCode>QD-GAS</BillerCode><BusinessDate>2026-11-28</BusinessDate>"
        + "<CreatedAt>2026-11-28T06:00:00+08:00</CreatedAt><NbOfItems>1</NbOfItems><PaidCount>0</PaidCount><PaidSum Ccy=\"CNY\">0.00</PaidSum>"
        + "<RefundedCount>0</RefundedCount><RefundedSum Ccy=\"CNY\">0.00</RefundedSum></Header>"
        + "<Item><BillId>燃气费-2026</BillId><Status>UNMATCHED</Status></Item></PaymentReport>\n"

    /// Pieces of one byte (a multi-byte character split across them) through a queue of one
    /// byte read as the whole document: valid.
    @Test func aDocumentHandedOverAByteAtATimeIsReadWhole() throws {
        let validator = XMLValidatorBeside(schema: try XMLSchema(path: sampleFeeds + "/schema/payreport.xsd"), path: "r.xml", capacity: 1)
        for byte in Array(Self.report.utf8) { validator.write([byte]) }
        try validator.finish()
    }

    /// A document cut short, or with a fault of form, is refused; so is one the schema refuses.
    @Test func aShortMalformedOrRefusedDocumentIsRefused() throws {
        let schema = try XMLSchema(path: sampleFeeds + "/schema/payreport.xsd")
        let bytes = Array(Self.report.utf8)
        let short = XMLValidatorBeside(schema: schema, path: "r.xml")
        short.write(Array(bytes[..<(bytes.count - 30)]))
        #expect(throws: FeedError.self) { try short.finish() }
        let refused = XMLValidatorBeside(schema: schema, path: "r.xml")
        refused.write(Array(Self.report.replacingOccurrences(of: "UNMATCHED", with: "LOST").utf8))
        let error = #expect(throws: FeedError.self) { try refused.finish() }
        #expect(error?.code == .invalid)
    }

    /// A fault of form at the start ends the validator: the many megabytes handed over after
    /// it are dropped, not waited on (the queue holds 64 KiB), and the fault is what `finish`
    /// throws.
    @Test func aValidatorThatHasItsAnswerNeverHoldsUpTheWriter() throws {
        let validator = XMLValidatorBeside(schema: try XMLSchema(path: sampleFeeds + "/schema/payreport.xsd"), path: "r.xml", capacity: 1 << 16)
        validator.write(Array("<?xml version=\"1.0\"?>\n<PaymentReport xmlns=\"urn:qdwallet:payreport:1\"><<".utf8))
        let filler = [UInt8](repeating: UInt8(ascii: " "), count: 1 << 16)
        for _ in 0..<256 { validator.write(filler) }
        let error = #expect(throws: FeedError.self) { try validator.finish() }
        #expect(error?.code == .malformed)
    }

    /// A writer that gives up stops the validator waiting for bytes.
    @Test func aCancelledValidatorStops() throws {
        let validator = XMLValidatorBeside(schema: try XMLSchema(path: sampleFeeds + "/schema/payreport.xsd"), path: "r.xml")
        validator.write(Array(Self.report.utf8.prefix(100)))
        validator.cancel()
        #expect(throws: FeedError.self) { try validator.finish() }
    }
}
