import CLibXML2
import Crypto
import Foundation
import Ledger

/// One item of a payment report.
public struct ReportItem: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable, Codable {
        case paid = "PAID", pending = "PENDING", unmatched = "UNMATCHED", rejected = "REJECTED", cancelled = "CANCELLED", refunded = "REFUNDED"
    }

    public var billID: String
    public var status: Status
    public var amountFen: Int64?
    public var paidAt: TimestampMicros?
    public var paymentRef: String?
    public var reason: String?

    public init(billID: String, status: Status, amountFen: Int64? = nil, paidAt: TimestampMicros? = nil, paymentRef: String? = nil, reason: String? = nil) {
        self.billID = billID
        self.status = status
        self.amountFen = amountFen
        self.paidAt = paidAt
        self.paymentRef = paymentRef
        self.reason = reason
    }
}

/// The header totals of a payment report.
public struct ReportHeader: Sendable, Hashable, Codable {
    public init(reportID: String, billerCode: String, businessDate: String, createdAt: TimestampMicros, originalFeedID: String?, itemCount: Int, paidCount: Int, paidSumFen: Int64, refundedCount: Int, refundedSumFen: Int64) {
        self.reportID = reportID
        self.billerCode = billerCode
        self.businessDate = businessDate
        self.createdAt = createdAt
        self.originalFeedID = originalFeedID
        self.itemCount = itemCount
        self.paidCount = paidCount
        self.paidSumFen = paidSumFen
        self.refundedCount = refundedCount
        self.refundedSumFen = refundedSumFen
    }

    public var reportID: String
    public var billerCode: String
    public var businessDate: String
    public var createdAt: TimestampMicros
    public var originalFeedID: String?
    public var itemCount: Int
    public var paidCount: Int
    public var paidSumFen: Int64
    public var refundedCount: Int
    public var refundedSumFen: Int64
    /// The ledger's chain head (`SEQ:HASH`) in the snapshot the report was read from.
    public var ledgerHead: String?
}

/// Writes a PaymentReport document as it goes (items stream from the database), checks it
/// against its own XSD before anyone sees it, and says what its bytes hash to.
public struct PaymentReportWriter {
    public static let namespace = "urn:qdwallet:payreport:1"

    /// A report written and found valid.
    public struct Written: Sendable, Hashable {
        /// How many items it holds.
        public var items: Int
        /// SHA-256 of the file's bytes.
        public var sha256: [UInt8]
    }

    /// Writes header and items to `path` (mode 0600), validated against `schema` and hashed as
    /// they are written. The items are read once: written to a side file while counted, then
    /// joined after the header, whose item count is the number written (`header.itemCount` is
    /// not used). The joined bytes go to the file, to SHA-256, and to a validator on a thread of
    /// its own at once, so the file is not read again to be checked or hashed. The bytes go to
    /// `<path>.partial`, renamed over `path` once the report is whole and valid: a run killed
    /// while it writes (or a report written ahead and never taken) leaves nothing where the
    /// report, or a biller reading the folder, would find it; a report the schema refuses, or
    /// one that could not be written whole, leaves `path` as it was, and the write throws.
    /// `check` runs once the items are written and valid, before the report takes its place:
    /// what it throws leaves `path` as it was.
    @discardableResult
    public static func write(header: ReportHeader, items: some Sequence<ReportItem>, to path: String, schema: XMLSchema, check: () throws -> Void = {}) throws -> Written {
        let itemsPath = path + ".items"
        defer { try? FileManager.default.removeItem(atPath: itemsPath) }
        var count = 0
        // The side file is read back at once and removed: it is not synced to disk.
        try writing(itemsPath, sync: false) { append in
            var out = XMLBytes()
            out.bytes.reserveCapacity(1 << 17)
            for item in items {
                count += 1
                out.raw("  <Item>\n")
                out.element("BillId", item.billID)
                out.element("Status", item.status.rawValue)
                if let fen = item.amountFen { out.amount("Amount", fen) }
                if let paidAt = item.paidAt { out.element("PaidAt", isoTime(paidAt)) }
                if let reference = item.paymentRef { out.element("PaymentRef", reference) }
                if let reason = item.reason { out.element("Reason", reason) }
                out.raw("  </Item>\n")
                if out.bytes.count >= 1 << 16 {
                    try append(out.bytes)
                    out.bytes.removeAll(keepingCapacity: true)
                }
            }
            try append(out.bytes)
        }
        let partial = path + ".partial"
        var placed = false
        defer { if !placed { try? FileManager.default.removeItem(atPath: partial) } }
        let validator = XMLValidatorBeside(schema: schema, path: path)
        var hasher = SHA256()
        do {
            try writing(partial) { write in
                func append(_ bytes: [UInt8]) throws {
                    try write(bytes)
                    hasher.update(data: bytes)
                    validator.write(bytes)
                }
                var head = XMLBytes()
                head.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PaymentReport xmlns=\"")
                head.raw(namespace)
                head.raw("\">\n  <Header>\n")
                head.element("ReportId", header.reportID)
                head.element("BillerCode", header.billerCode)
                head.element("BusinessDate", header.businessDate)
                head.element("CreatedAt", isoTime(header.createdAt))
                if let feed = header.originalFeedID { head.element("OrgnlFeedId", feed) }
                head.element("NbOfItems", String(count))
                head.element("PaidCount", String(header.paidCount))
                head.amount("PaidSum", header.paidSumFen)
                head.element("RefundedCount", String(header.refundedCount))
                head.amount("RefundedSum", header.refundedSumFen)
                if let ledgerHead = header.ledgerHead { head.element("LedgerHead", ledgerHead) }
                head.raw("  </Header>\n")
                try append(head.bytes)
                guard let source = FileHandle(forReadingAtPath: itemsPath) else {
                    throw FeedError(.io, "cannot read back the report's items", context: itemsPath)
                }
                defer { try? source.close() }
                while let piece = try source.read(upToCount: 1 << 20), !piece.isEmpty {
                    try append([UInt8](piece))
                }
                try append(Array("</PaymentReport>\n".utf8))
            }
        } catch {
            validator.cancel()
            throw error
        }
        try validator.finish()
        try check()
        guard rename(partial, path) == 0 else {
            throw FeedError(.io, "cannot put the payment report in its place", cause: String(cString: strerror(errno)), context: path)
        }
        placed = true
        return Written(items: count, sha256: Array(hasher.finalize()))
    }

    /// Creates `path` (mode 0600), lets `body` append to it, and syncs it to disk (unless
    /// `sync` is false).
    private static func writing(_ path: String, sync: Bool = true, _ body: (([UInt8]) throws -> Void) throws -> Void) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw FeedError(.io, "cannot write the payment report", context: path)
        }
        defer { try? handle.close() }
        try body { bytes in try handle.write(contentsOf: bytes) }
        if sync { try handle.synchronize() }
    }

    /// 2026-11-28T02:14:09+08:00
    public static func isoTime(_ micros: TimestampMicros) -> String {
        ShanghaiCalendar.rfc3339(at: micros)
    }
}

/// A report's bytes as they are written: elements of the header and the items (indented by
/// four), text escaped for XML with control characters other than tab and newline dropped.
/// Appended byte by byte, not built as a String an element: a day's report is a million items.
struct XMLBytes {
    var bytes: [UInt8] = []

    mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// `<name>value</name>` on a line of its own.
    mutating func element(_ name: String, _ value: String) {
        raw("    <")
        raw(name)
        raw(">")
        escaped(value)
        raw("</")
        raw(name)
        raw(">\n")
    }

    /// `<name Ccy="CNY">12.34</name>`.
    mutating func amount(_ name: String, _ fen: Int64) {
        raw("    <")
        raw(name)
        raw(" Ccy=\"CNY\">")
        raw(Money(fen: fen).yuanString)
        raw("</")
        raw(name)
        raw(">\n")
    }

    /// Every byte of a UTF-8 sequence longer than one is 0x80 or above, so the text can be
    /// escaped a byte at a time.
    mutating func escaped(_ text: String) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "&"): raw("&amp;")
            case UInt8(ascii: "<"): raw("&lt;")
            case UInt8(ascii: ">"): raw("&gt;")
            case UInt8(ascii: "\""): raw("&quot;")
            case UInt8(ascii: "'"): raw("&apos;")
            case 0x09, 0x0A: bytes.append(byte)
            case ..<0x20: continue
            default: bytes.append(byte)
            }
        }
    }
}

/// Validates a whole document against a schema in one streaming pass.
enum XMLValidator {
    /// Reads the document of `reader` to its end against `schema`: a DOCTYPE, a fault of form
    /// or anything the schema refuses throws.
    static func validate(_ reader: xmlTextReaderPtr, schema: XMLSchema, path: String) throws(FeedError) {
        let collector = ErrorCollector()
        let context = Unmanaged.passUnretained(collector).toOpaque()
        xmlTextReaderSetStructuredErrorHandler(reader, collectValidationErrors, context)
        guard xmlTextReaderSetSchema(reader, schema.pointer) == 0 else {
            throw FeedError(.schema, "cannot attach the XSD", context: schema.path)
        }
        var step = xmlTextReaderRead(reader)
        while step == 1 {
            if xmlTextReaderNodeType(reader) == Int32(XML_READER_TYPE_DOCUMENT_TYPE.rawValue) {
                throw FeedError(.doctype, "the document carries a DOCTYPE", context: path)
            }
            step = xmlTextReaderRead(reader)
        }
        if step < 0 {
            throw FeedError(.malformed, "the document is not well-formed", cause: collector.first, context: path)
        }
        if !collector.messages.isEmpty || xmlTextReaderIsValid(reader) != 1 {
            throw FeedError(.invalid, "the document is not valid against \((schema.path as NSString).lastPathComponent)", cause: collector.first, context: path)
        }
    }
}

private func collectValidationErrors(_ context: UnsafeMutableRawPointer?, _ error: UnsafeMutablePointer<xmlError>?) {
    guard let context, let error else { return }
    Unmanaged<ErrorCollector>.fromOpaque(context).takeUnretainedValue().add(error)
}
