import CLibXML2
import Ledger
#if canImport(Glibc)
import Glibc
#endif

/// A compiled XSD, loaded once and used by every read of a run.
public final class XMLSchema: @unchecked Sendable {
    let pointer: xmlSchemaPtr
    public let path: String

    /// libxml2 builds its table of XSD built-in types on first use, and two threads doing
    /// that at once can see a half-built table ("xs:string does not resolve"): build it
    /// once, before any schema is compiled.
    private static let typesReady: Bool = {
        xmlInitParser()
        xmlSchemaInitTypes()
        return true
    }()

    /// Compiles the schema at `path` (a local file; nothing is fetched).
    public init(path: String) throws(FeedError) {
        _ = Self.typesReady
        let collector = ErrorCollector()
        let context = Unmanaged.passUnretained(collector).toOpaque()
        xmlSetStructuredErrorFunc(context, collectErrors)
        qdw_xml_quiet_generic_errors()
        defer { xmlSetStructuredErrorFunc(nil, ignoreErrors) }
        guard let parser = xmlSchemaNewParserCtxt(path) else {
            throw FeedError(.schema, "cannot open the XSD", context: path)
        }
        defer { xmlSchemaFreeParserCtxt(parser) }
        xmlSchemaSetParserStructuredErrors(parser, collectErrors, context)
        guard let schema = xmlSchemaParse(parser) else {
            throw FeedError(.schema, "the XSD does not compile", cause: collector.first, context: path)
        }
        self.pointer = schema
        self.path = path
    }

    deinit {
        xmlSchemaFree(pointer)
    }
}

/// Collects the first errors libxml2 reports, with their line numbers.
final class ErrorCollector {
    var messages: [String] = []
    var first: String? { messages.first }

    func add(_ error: UnsafeMutablePointer<xmlError>) {
        guard messages.count < 5 else { return }
        let text = error.pointee.message.map { String(cString: $0) } ?? "unknown error"
        let trimmed = text.hasSuffix("\n") ? String(text.dropLast()) : text
        messages.append(error.pointee.line > 0 ? "line \(error.pointee.line): \(trimmed)" : trimmed)
    }
}

private func collectErrors(_ context: UnsafeMutableRawPointer?, _ error: UnsafeMutablePointer<xmlError>?) {
    guard let context, let error else { return }
    Unmanaged<ErrorCollector>.fromOpaque(context).takeUnretainedValue().add(error)
}

private func ignoreErrors(_ context: UnsafeMutableRawPointer?, _ error: UnsafeMutablePointer<xmlError>?) {}

extension FeedReader {
    /// Refuses a document type declaration before the parser sees it, so no DTD, internal
    /// subset or entity declaration is ever parsed. The prolog is ASCII in every encoding a
    /// feed may use (UTF-8, GBK, GB18030), so the first bytes tell.
    static func refuseDoctype(path: String) throws {
        guard let file = fopen(path, "rb") else {
            throw FeedError(.io, "cannot open the feed file", context: path)
        }
        defer { fclose(file) }
        var head = [UInt8](repeating: 0, count: 4_096)
        let count = fread(&head, 1, head.count, file)
        let prolog = head[..<count]
        let marker = Array("<!DOCTYPE".utf8)
        // The prolog ends where the first element starts; a DOCTYPE can only come before it.
        var index = prolog.startIndex
        while index + marker.count <= prolog.endIndex {
            if prolog[index] == UInt8(ascii: "<") {
                if prolog[index..<index + marker.count].elementsEqual(marker) {
                    throw FeedError(.doctype, "the feed carries a DOCTYPE; feeds must not declare DTDs or entities", context: "byte \(index)")
                }
                let next = prolog[index + 1]
                if next != UInt8(ascii: "?") && next != UInt8(ascii: "!") { break }
            }
            index += 1
        }
    }
}

/// Reads a bill feed in one streaming pass (xmlTextReader) while validating it against the
/// XSD, with hardened options: a DOCTYPE is refused outright, entities are never substituted,
/// nothing is loaded from the network, and text, depth and size are bounded.
public struct FeedReader: Sendable {
    public static let namespace = "urn:qdwallet:billfeed:1"
    /// Longest text of one field, in bytes (the XSD allows far less).
    public static let fieldBytesMax = 1_024

    public let schema: XMLSchema

    public init(schema: XMLSchema) {
        self.schema = schema
    }

    /// Reads the feed at `path`. `onHeader` sees the header before any bill (and may throw to
    /// stop); `onBill` and `onCancel` see each record in document order. Throws a
    /// feed-level `FeedError` for anything that makes the feed unacceptable.
    public func read(
        path: String, expectedBiller: String, expectedDate: String?,
        onHeader: (FeedHeader) throws -> Void,
        onBill: (FeedBill) throws -> Void,
        onCancel: (FeedCancel) throws -> Void
    ) throws -> FeedSummary {
        try Self.refuseDoctype(path: path)
        let collector = ErrorCollector()
        let context = Unmanaged.passUnretained(collector).toOpaque()
        // Errors outside the reader's own handler (encoding conversion, I/O) land here too.
        xmlSetStructuredErrorFunc(context, collectErrors)
        qdw_xml_quiet_generic_errors()
        defer { xmlSetStructuredErrorFunc(nil, ignoreErrors) }
        let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOCDATA.rawValue | XML_PARSE_COMPACT.rawValue)
        guard let reader = xmlReaderForFile(path, nil, options) else {
            throw FeedError(.io, "cannot open the feed file", cause: collector.first, context: path)
        }
        defer { xmlFreeTextReader(reader) }
        xmlTextReaderSetStructuredErrorHandler(reader, collectErrors, context)
        guard xmlTextReaderSetSchema(reader, schema.pointer) == 0 else {
            throw FeedError(.schema, "cannot attach the XSD to the reader", context: schema.path)
        }

        func intern(_ name: String) -> UnsafePointer<xmlChar>? { xmlTextReaderConstString(reader, name) }
        let nBillFeed = intern("BillFeed"), nHeader = intern("Header"), nBill = intern("Bill"), nCancel = intern("Cancel")
        let nFeedId = intern("FeedId"), nBillerCode = intern("BillerCode"), nCreatedAt = intern("CreatedAt")
        let nBusinessDate = intern("BusinessDate"), nNbOfBills = intern("NbOfBills"), nCtrlSum = intern("CtrlSum")
        let nBillId = intern("BillId"), nCustomerNo = intern("CustomerNo"), nCustomerName = intern("CustomerName")
        let nDistrict = intern("District"), nPeriod = intern("Period"), nUsage = intern("Usage"), nAmount = intern("Amount")
        let nLateFee = intern("LateFee"), nIssueDate = intern("IssueDate"), nDueDate = intern("DueDate"), nReason = intern("Reason")

        var header = FeedHeader(feedID: "", billerCode: "", createdAt: "", businessDate: "", billCount: -1, controlSumFen: -1)
        var headerSeen = false
        var bill = FeedBill()
        var cancel = FeedCancel(billID: "", reason: "")
        var section: UnsafePointer<xmlChar>?
        var field: UnsafePointer<xmlChar>?
        var text: [UInt8] = []
        var bills = 0
        var cancels = 0
        var sumFen: Int64 = 0

        func fail(_ code: FeedError.Code, _ message: String) -> FeedError {
            FeedError(code, message, cause: collector.first, context: "line \(xmlTextReaderGetParserLineNumber(reader))")
        }
        func checkValid() throws {
            if !collector.messages.isEmpty || xmlTextReaderIsValid(reader) == 0 {
                throw FeedError(.invalid, "the feed is not valid against the bill feed XSD", cause: collector.first)
            }
        }
        func amount(_ value: String) throws -> Int64 {
            do {
                return try Money(yuan: value).fen
            } catch {
                throw fail(.invalid, "an amount is not a yuan decimal: \(error.reason)")
            }
        }

        while true {
            let step = xmlTextReaderRead(reader)
            if step == 0 { break }
            if step < 0 {
                if collector.first?.contains("encoding") == true || collector.first?.contains("Input is not proper UTF-8") == true || collector.first?.contains("Unsupported") == true {
                    throw FeedError(.encoding, "the feed's bytes do not match its declared encoding", cause: collector.first)
                }
                throw FeedError(.malformed, "the feed is not well-formed XML", cause: collector.first)
            }
            switch xmlTextReaderNodeType(reader) {
            case Int32(XML_READER_TYPE_DOCUMENT_TYPE.rawValue):
                throw fail(.doctype, "the feed carries a DOCTYPE; feeds must not declare DTDs or entities")
            case Int32(XML_READER_TYPE_ENTITY_REFERENCE.rawValue), Int32(XML_READER_TYPE_ENTITY.rawValue):
                throw fail(.doctype, "the feed uses an entity reference; entities are not allowed")
            case Int32(XML_READER_TYPE_ELEMENT.rawValue):
                let depth = xmlTextReaderDepth(reader)
                let name = xmlTextReaderConstLocalName(reader)
                if depth == 0 {
                    let uri = xmlTextReaderConstNamespaceUri(reader).map { String(cString: $0) }
                    guard name == nBillFeed, uri == Self.namespace else {
                        throw fail(.wrongNamespace, "the root element is not {\(Self.namespace)}BillFeed")
                    }
                } else if depth == 1 {
                    section = name
                    if name == nBill {
                        guard headerSeen else { throw fail(.invalid, "a Bill comes before the Header") }
                        bill = FeedBill()
                    } else if name == nCancel {
                        guard headerSeen else { throw fail(.invalid, "a Cancel comes before the Header") }
                        cancel = FeedCancel(billID: "", reason: "")
                    }
                } else if depth == 2 {
                    field = name
                    text.removeAll(keepingCapacity: true)
                    if name == nUsage, let unit = xmlTextReaderGetAttribute(reader, "Unit") {
                        bill.usageUnit = String(cString: unit)
                        qdw_xml_free(unit)
                    }
                    if xmlTextReaderIsEmptyElement(reader) == 1 {
                        field = nil
                    }
                } else {
                    throw fail(.invalid, "elements nest deeper than the bill feed allows")
                }
            case Int32(XML_READER_TYPE_TEXT.rawValue), Int32(XML_READER_TYPE_CDATA.rawValue), Int32(XML_READER_TYPE_SIGNIFICANT_WHITESPACE.rawValue):
                guard field != nil, let value = xmlTextReaderConstValue(reader) else { continue }
                let count = strlen(UnsafeRawPointer(value).assumingMemoryBound(to: CChar.self))
                guard text.count + count <= Self.fieldBytesMax else {
                    throw fail(.invalid, "a field's text is longer than \(Self.fieldBytesMax) bytes")
                }
                text.append(contentsOf: UnsafeBufferPointer(start: value, count: count))
            case Int32(XML_READER_TYPE_END_ELEMENT.rawValue):
                let depth = xmlTextReaderDepth(reader)
                if depth == 2, let current = field {
                    field = nil
                    let value = String(decoding: text, as: UTF8.self)
                    if section == nHeader {
                        switch current {
                        case nFeedId: header.feedID = value
                        case nBillerCode: header.billerCode = value
                        case nCreatedAt: header.createdAt = value
                        case nBusinessDate: header.businessDate = value
                        case nNbOfBills: header.billCount = Int(value) ?? -1
                        case nCtrlSum: header.controlSumFen = try amount(value)
                        default: break
                        }
                    } else if section == nBill {
                        switch current {
                        case nBillId: bill.billID = value
                        case nCustomerNo: bill.customerNo = value
                        case nCustomerName: bill.customerName = value
                        case nDistrict: bill.district = value
                        case nPeriod: bill.period = value
                        case nUsage: bill.usage = value
                        case nAmount: bill.amountFen = try amount(value)
                        case nLateFee: bill.lateFeeFen = try amount(value)
                        case nIssueDate: bill.issueDate = value
                        case nDueDate: bill.dueDate = value
                        default: break
                        }
                    } else if section == nCancel {
                        switch current {
                        case nBillId: cancel.billID = value
                        case nReason: cancel.reason = value
                        default: break
                        }
                    }
                } else if depth == 1 {
                    try checkValid()
                    if section == nHeader {
                        guard header.billCount >= 0, header.controlSumFen >= 0 else {
                            throw fail(.invalid, "the header's NbOfBills or CtrlSum is not usable")
                        }
                        guard header.billerCode == expectedBiller else {
                            throw fail(.wrongBiller, "the feed is for biller \(header.billerCode.prefix(16)), but came from the endpoint of \(expectedBiller)")
                        }
                        if let expectedDate, header.businessDate != expectedDate {
                            throw fail(.wrongBusinessDate, "the feed is for business date \(header.businessDate.prefix(10)), not \(expectedDate)")
                        }
                        headerSeen = true
                        try onHeader(header)
                    } else if section == nBill {
                        bills += 1
                        let (total, overflow) = sumFen.addingReportingOverflow(bill.dueFen)
                        guard !overflow, bill.dueFen >= 0 else { throw fail(.controlTotals, "the bill amounts add up beyond 64 bits") }
                        sumFen = total
                        try onBill(bill)
                    } else if section == nCancel {
                        cancels += 1
                        try onCancel(cancel)
                    }
                    section = nil
                }
            default:
                break
            }
        }
        try checkValid()
        guard headerSeen else { throw FeedError(.invalid, "the feed has no Header") }
        guard bills == header.billCount else {
            throw FeedError(.controlTotals, "NbOfBills says \(header.billCount) but the feed holds \(bills) bills")
        }
        guard sumFen == header.controlSumFen else {
            throw FeedError(.controlTotals, "CtrlSum says \(Money(fen: header.controlSumFen).yuanString) but the bills add up to \(Money(fen: sumFen).yuanString)")
        }
        return FeedSummary(header: header, bills: bills, cancels: cancels, sumFen: sumFen)
    }
}
