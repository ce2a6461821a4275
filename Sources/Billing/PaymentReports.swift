import Crypto
import Feeds
import Foundation
import JobRunner
import Ledger
import QDSQL

/// Builds a biller's payment report for a business day from the committed state.
public enum PaymentReports {
    /// One item of the report of `date`. A payment is PAID in the report of the business day
    /// it was made on, and only there, so that every report's header equals its items and no
    /// payment is reported twice: a bill of this day's feed paid on a later day (by hand) is
    /// PENDING here with reason PAID_LATER, and one re-sent after an earlier day paid it is
    /// REJECTED with reason ALREADY_PAID; each is PAID in the report of its payment's day.
    static func item(_ row: BillStore.ReportRow, date: String) -> ReportItem {
        let billID = row.billID
        if row.source == "record" && row.outcome == "rejected" {
            return ReportItem(billID: billID, status: .rejected, reason: row.reasonCode)
        }
        let paidOn = row.paidBusinessDate
        let refundedOn = row.refundedBusinessDate
        let paid = ReportItem(billID: billID, status: .paid, amountFen: row.paidFen, paidAt: row.paidAt, paymentRef: row.transactionID.map { "QDW-T\($0)" })
        func elsewhere() -> ReportItem {
            guard let paidOn else { return ReportItem(billID: billID, status: .pending, reason: "PROCESSING") }
            return paidOn > date ? ReportItem(billID: billID, status: .pending, reason: "PAID_LATER") : ReportItem(billID: billID, status: .rejected, reason: "ALREADY_PAID")
        }
        switch row.status {
        case .paid?:
            return paidOn == date ? paid : elsewhere()
        case .refunded?:
            if refundedOn == date {
                return ReportItem(billID: billID, status: .refunded, amountFen: row.paidFen, paymentRef: row.refundTransactionID.map { "QDW-T\($0)" })
            }
            return paidOn == date ? paid : elsewhere()
        case .cancelled?:
            return ReportItem(billID: billID, status: .cancelled)
        case .unmatched?:
            return ReportItem(billID: billID, status: .unmatched)
        case nil:
            return ReportItem(billID: billID, status: .rejected, reason: row.reasonCode ?? "UNKNOWN_BILL")
        case .new?, .payable?:
            return ReportItem(billID: billID, status: .pending, reason: row.reason ?? "PROCESSING")
        }
    }

    /// What a report's items add up to, to check its header against before it is delivered.
    struct Tally: Equatable {
        var paidCount = 0
        var paidSumFen: Int64 = 0
        var refundedCount = 0
        var refundedSumFen: Int64 = 0

        /// A REFUNDED item whose payment was made the same day counts as paid too.
        mutating func add(_ item: ReportItem, _ row: BillStore.ReportRow, date: String) {
            let fen = item.amountFen ?? 0
            switch item.status {
            case .paid:
                paidCount += 1
                paidSumFen += fen
            case .refunded:
                refundedCount += 1
                refundedSumFen += fen
                if row.paidBusinessDate == date {
                    paidCount += 1
                    paidSumFen += fen
                }
            default:
                break
            }
        }

        init() {}

        init(_ header: ReportHeader) {
            paidCount = header.paidCount
            paidSumFen = header.paidSumFen
            refundedCount = header.refundedCount
            refundedSumFen = header.refundedSumFen
        }
    }

    /// The header of the report of `biller` for `date`, with `itemCount` (the items are
    /// counted as they are written; `build` counts them in memory).
    public static func header(_ db: any SQLConnection, biller: String, date: ShanghaiCalendar.Date, now: TimestampMicros, itemCount count: Int = 0, version: Int = 1) throws -> ReportHeader {
        let store = BillStore(db)
        let totals = try store.dayTotals(biller: biller, on: date)
        return ReportHeader(
            reportID: reportID(biller: biller, date: date, version: version), billerCode: biller, businessDate: date.iso, createdAt: now,
            originalFeedID: try store.feedIDs(biller: biller, on: date).first, itemCount: count,
            paidCount: totals.paidCount, paidSumFen: totals.paidFen,
            refundedCount: totals.refundedCount, refundedSumFen: totals.refundedFen)
    }

    /// `QDW-QD-WATER-20261127`, and `...-V2` for a corrected second version.
    static func reportID(biller: String, date: ShanghaiCalendar.Date, version: Int) -> String {
        "QDW-\(biller)-\(date.compact)" + (version > 1 ? "-V\(version)" : "")
    }

    /// A path or URL of version `version`: `-v2` before the extension of its last part;
    /// version 1 where it always was.
    static func versioned(_ location: String, version: Int) -> String {
        version > 1 ? suffixed(location, "-v\(version)") : location
    }

    /// `suffix` before the extension of the last part of a path or URL.
    static func suffixed(_ location: String, _ suffix: String) -> String {
        let slash = location.lastIndex(of: "/") ?? location.startIndex
        if let dot = location[slash...].lastIndex(of: ".") {
            return String(location[..<dot]) + suffix + String(location[dot...])
        }
        return location + suffix
    }

    /// Header and items, all in memory (tests and small days).
    public static func build(_ db: any SQLConnection, biller: String, date: ShanghaiCalendar.Date, now: TimestampMicros) throws -> (ReportHeader, [ReportItem]) {
        let items = try BillStore(db).reportRows(biller: biller, on: date).map { item(try $0.get(), date: date.iso) }
        return (try header(db, biller: biller, date: date, now: now, itemCount: items.count), items)
    }

    /// Writes the report of `biller` for `date` to `path`, streaming its items from the
    /// database; returns its header and the SHA-256 of its bytes.
    public static func write(_ db: any SQLConnection, biller: String, date: ShanghaiCalendar.Date, now: TimestampMicros, path: String, schema: XMLSchema, version: Int = 1,
                             ledgerHead: String? = nil) throws -> (header: ReportHeader, sha256: Data) {
        var head = try header(db, biller: biller, date: date, now: now, version: version)
        head.ledgerHead = ledgerHead
        let rows = try BillStore(db).reportRows(biller: biller, on: date)
        // The writer takes a plain sequence; a read error ends it early and is thrown after,
        // so a short report is never taken for a whole one.
        var failure: (any Error)?
        var tally = Tally()
        let items = AnySequence {
            AnyIterator { () -> ReportItem? in
                guard failure == nil else { return nil }
                do {
                    guard let row = try rows.next()?.get() else { return nil }
                    let reported = item(row, date: date.iso)
                    tally.add(reported, row, date: date.iso)
                    return reported
                } catch {
                    failure = error
                    return nil
                }
            }
        }
        // Checked before the report takes its place: a short or inconsistent one is never where
        // a biller reading the folder would find it.
        let written = try PaymentReportWriter.write(header: head, items: items, to: path, schema: schema) {
            if let failure { throw failure }
            // A biller must never get a report whose header disagrees with its items.
            guard tally == Tally(head) else {
                throw BillingError.reportInconsistent("the payment report of \(biller) for \(date.iso) was not delivered: its header (paid \(head.paidCount) / \(head.paidSumFen) fen, refunded \(head.refundedCount) / \(head.refundedSumFen) fen) does not equal its items (paid \(tally.paidCount) / \(tally.paidSumFen), refunded \(tally.refundedCount) / \(tally.refundedSumFen))")
            }
        }
        head.itemCount = written.items
        return (head, Data(written.sha256))
    }
}

/// The status of a refused feed, sent to its biller beside the payment report in the manner
/// of an ISO 20022 payment status report (pain.002): group status RJCT with the reason.
enum FeedStatusReport {
    struct Rejection {
        var feedID: String?
        var code: String
        var message: String
    }

    /// The day's feed of `biller` as the latest run left it, when it was refused.
    static func rejection(_ db: any SQLConnection, biller: String, date: ShanghaiCalendar.Date) throws -> Rejection? {
        guard let run = try BillStore(db).lastRun(biller: biller, on: date), run.status == "rejected" else { return nil }
        // Only the message goes to the biller: never a local path or a cause from inside.
        let error = run.error ?? "the feed was refused"
        let message = String((error.components(separatedBy: " [").first ?? error).prefix(500))
        return Rejection(feedID: run.feedID, code: run.errorCode ?? "rejected", message: message)
    }

    /// `QDW-QD-WATER-20261127.xml` gives `QDW-QD-WATER-20261127-status.xml`.
    static func path(_ report: String) -> String { PaymentReports.suffixed(report, "-status") }

    static func write(_ rejection: Rejection, biller: String, date: ShanghaiCalendar.Date, now: TimestampMicros, to path: String) throws {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<FeedStatusReport xmlns=\"urn:qdwallet:feedstatus:1\">\n"
        xml += "  <GrpHdr>\n    <MsgId>QDW-\(escape(biller))-\(date.compact)-STATUS</MsgId>\n    <CreDtTm>\(PaymentReportWriter.isoTime(now))</CreDtTm>\n  </GrpHdr>\n"
        xml += "  <OrgnlGrpInfAndSts>\n"
        if let feedID = rejection.feedID { xml += "    <OrgnlMsgId>\(escape(feedID))</OrgnlMsgId>\n" }
        xml += "    <BillerCode>\(escape(biller))</BillerCode>\n    <BusinessDate>\(date.iso)</BusinessDate>\n    <GrpSts>RJCT</GrpSts>\n"
        xml += "    <StsRsnInf>\n      <Rsn>\(escape(rejection.code.uppercased()))</Rsn>\n      <AddtlInf>\(escape(rejection.message))</AddtlInf>\n    </StsRsnInf>\n"
        xml += "  </OrgnlGrpInfAndSts>\n</FeedStatusReport>\n"
        guard FileManager.default.createFile(atPath: path, contents: Data(xml.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw FeedError(.io, "cannot write the feed status report", context: path)
        }
    }
}
