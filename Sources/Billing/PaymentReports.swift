import Crypto
import Feeds
import Foundation
import GRDB
import JobRunner
import Ledger

/// Builds a biller's payment report for a business day from the committed state.
public enum PaymentReports {
    /// The day's items in order, each bill once: the feeds' records (staged bills, record
    /// faults, cancels; duplicates inside a feed dropped), then bills paid or refunded that day
    /// through another path. One query, read as a cursor, so memory does not grow with the day.
    static let itemsSQL = """
        WITH records AS (
            SELECT f.ingested_at, r.seq, 'bill' AS source, r.bill_id, NULL AS outcome, NULL AS reason_code
                FROM bills r JOIN feeds f ON f.feed_id = r.feed_id WHERE f.biller = ?1 AND f.business_date = ?2
            UNION ALL SELECT f.ingested_at, r.seq, 'record', r.bill_id, r.outcome, r.reason
                FROM feed_records r JOIN feeds f ON f.feed_id = r.feed_id WHERE f.biller = ?1 AND f.business_date = ?2 AND r.outcome <> 'duplicate_in_feed'
            UNION ALL SELECT f.ingested_at, r.seq, 'cancel', r.bill_id, r.outcome, NULL
                FROM feed_cancels r JOIN feeds f ON f.feed_id = r.feed_id WHERE f.biller = ?1 AND f.business_date = ?2
        ),
        firsts AS (
            SELECT bill_id, min(ingested_at * 10000000 + seq) AS position FROM records GROUP BY bill_id
        ),
        listed AS (
            SELECT f.position, r.source, r.bill_id, r.outcome, r.reason_code FROM firsts f
            JOIN records r ON r.bill_id = f.bill_id AND r.ingested_at * 10000000 + r.seq = f.position
            UNION ALL
            SELECT 9223372036854775807, 'other', b.bill_id, NULL, NULL FROM bills b
            WHERE b.biller = ?1 AND (b.paid_business_date = ?2 OR b.refunded_business_date = ?2)
              AND b.bill_id NOT IN (SELECT bill_id FROM records)
        )
        SELECT l.source, l.bill_id, l.outcome, l.reason_code, b.status, b.reason, b.paid_fen, b.paid_at, b.transaction_id, b.refund_transaction_id, b.id AS row_id,
            b.paid_business_date, b.refunded_business_date
        FROM listed l LEFT JOIN bills b ON b.biller = ?1 AND b.bill_id = l.bill_id
        WHERE NOT (l.source IN ('bill', 'cancel', 'other') AND b.id IS NULL)
        ORDER BY l.position, b.id
        """

    /// One item of the report of `date`. A payment is PAID in the report of the business day
    /// it was made on, and only there, so that every report's header equals its items and no
    /// payment is reported twice: a bill of this day's feed paid on a later day (by hand) is
    /// PENDING here with reason PAID_LATER, and one re-sent after an earlier day paid it is
    /// REJECTED with reason ALREADY_PAID; each is PAID in the report of its payment's day.
    static func item(_ row: Row, date: String) -> ReportItem {
        let billID: String = row["bill_id"]
        if (row["source"] as String) == "record" && (row["outcome"] as String?) == "rejected" {
            return ReportItem(billID: billID, status: .rejected, reason: row["reason_code"])
        }
        let transactionID: Int64? = row["transaction_id"]
        let paidOn: String? = row["paid_business_date"]
        let refundedOn: String? = row["refunded_business_date"]
        let paid = ReportItem(billID: billID, status: .paid, amountFen: row["paid_fen"], paidAt: row["paid_at"], paymentRef: transactionID.map { "QDW-T\($0)" })
        func elsewhere() -> ReportItem {
            guard let paidOn else { return ReportItem(billID: billID, status: .pending, reason: "PROCESSING") }
            return paidOn > date ? ReportItem(billID: billID, status: .pending, reason: "PAID_LATER") : ReportItem(billID: billID, status: .rejected, reason: "ALREADY_PAID")
        }
        switch row["status"] as String? {
        case "paid":
            return paidOn == date ? paid : elsewhere()
        case "refunded":
            if refundedOn == date {
                return ReportItem(billID: billID, status: .refunded, amountFen: row["paid_fen"], paymentRef: (row["refund_transaction_id"] as Int64?).map { "QDW-T\($0)" })
            }
            return paidOn == date ? paid : elsewhere()
        case "cancelled":
            return ReportItem(billID: billID, status: .cancelled)
        case "unmatched":
            return ReportItem(billID: billID, status: .unmatched)
        case nil:
            return ReportItem(billID: billID, status: .rejected, reason: row["reason_code"] ?? "UNKNOWN_BILL")
        default:
            return ReportItem(billID: billID, status: .pending, reason: row["reason"] ?? "PROCESSING")
        }
    }

    /// What a report's items add up to, to check its header against before it is delivered.
    struct Tally: Equatable {
        var paidCount = 0
        var paidSumFen: Int64 = 0
        var refundedCount = 0
        var refundedSumFen: Int64 = 0

        /// A REFUNDED item whose payment was made the same day counts as paid too.
        mutating func add(_ item: ReportItem, _ row: Row, date: String) {
            let fen = item.amountFen ?? 0
            switch item.status {
            case .paid:
                paidCount += 1
                paidSumFen += fen
            case .refunded:
                refundedCount += 1
                refundedSumFen += fen
                if (row["paid_business_date"] as String?) == date {
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
    public static func header(_ db: Database, biller: String, date: ShanghaiCalendar.Date, now: TimestampMicros, itemCount count: Int = 0, version: Int = 1) throws -> ReportHeader {
        let feedIDs = try String.fetchAll(db, sql: "SELECT \(FeedIngest.shown("feed_id")) FROM feeds WHERE biller = ? AND business_date = ? ORDER BY ingested_at", arguments: [biller, date.iso])
        let paid = try Row.fetchOne(db, sql: "SELECT count(*) AS n, coalesce(sum(paid_fen), 0) AS fen FROM bills WHERE biller = ? AND paid_business_date = ?", arguments: [biller, date.iso])
        let refunded = try Row.fetchOne(db, sql: "SELECT count(*) AS n, coalesce(sum(paid_fen), 0) AS fen FROM bills WHERE biller = ? AND refunded_business_date = ?", arguments: [biller, date.iso])
        return ReportHeader(
            reportID: reportID(biller: biller, date: date, version: version), billerCode: biller, businessDate: date.iso, createdAt: now,
            originalFeedID: feedIDs.first, itemCount: count,
            paidCount: paid?["n"] ?? 0, paidSumFen: paid?["fen"] ?? 0,
            refundedCount: refunded?["n"] ?? 0, refundedSumFen: refunded?["fen"] ?? 0)
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
    public static func build(_ db: Database, biller: String, date: ShanghaiCalendar.Date, now: TimestampMicros) throws -> (ReportHeader, [ReportItem]) {
        let items = try Row.fetchAll(db, sql: itemsSQL, arguments: [biller, date.iso]).map { item($0, date: date.iso) }
        return (try header(db, biller: biller, date: date, now: now, itemCount: items.count), items)
    }

    /// Writes the report of `biller` for `date` to `path`, streaming its items from the database.
    public static func write(_ db: Database, biller: String, date: ShanghaiCalendar.Date, now: TimestampMicros, path: String, schema: XMLSchema, version: Int = 1, ledgerHead: String? = nil) throws -> ReportHeader {
        var head = try header(db, biller: biller, date: date, now: now, version: version)
        head.ledgerHead = ledgerHead
        let cursor = try Row.fetchCursor(db, sql: itemsSQL, arguments: [biller, date.iso])
        // The writer takes a plain sequence; a read error ends it early and is thrown after,
        // so a short report is never taken for a whole one.
        var failure: (any Error)?
        var tally = Tally()
        let items = AnySequence {
            AnyIterator { () -> ReportItem? in
                guard failure == nil else { return nil }
                do {
                    guard let row = try cursor.next() else { return nil }
                    let reported = item(row, date: date.iso)
                    tally.add(reported, row, date: date.iso)
                    return reported
                } catch {
                    failure = error
                    return nil
                }
            }
        }
        head.itemCount = try PaymentReportWriter.write(header: head, items: items, to: path, schema: schema)
        if let failure {
            try? FileManager.default.removeItem(atPath: path)
            throw failure
        }
        // A biller must never get a report whose header disagrees with its items.
        guard tally == Tally(head) else {
            try? FileManager.default.removeItem(atPath: path)
            throw BillingError.reportInconsistent("the payment report of \(biller) for \(date.iso) was not delivered: its header (paid \(head.paidCount) / \(head.paidSumFen) fen, refunded \(head.refundedCount) / \(head.refundedSumFen) fen) does not equal its items (paid \(tally.paidCount) / \(tally.paidSumFen), refunded \(tally.refundedCount) / \(tally.refundedSumFen))")
        }
        return head
    }
}

/// One chunk per biller: the report is written and delivered outside the transaction (it
/// reads committed state only), then recorded in the chunk's transaction.
struct ReportStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable { var next: Int }
    struct Written: Codable {
        var reportID: String
        var path: String
        var sha256: Data
        var items: Int
        var header: ReportHeader
        var deliveredTo: String?
        var deliveryError: String?
        var version = 1
        /// The same report was delivered before: nothing sent again.
        var unchanged = false
    }

    let config: NightlyBillingConfig
    let name = "reports"
    let checkpointVersion = 1

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(next: 0) }

    /// The report of the day as last written for a biller.
    struct Previous {
        var version: Int
        var reportID: String
        var sha256: Data
        var createdAt: TimestampMicros
        var delivered: Bool
        var deliveredTo: String?
        var ledgerHead: String?
    }

    func beforeChunk(_ context: JobContext, checkpoint: Data) throws -> Data? {
        let position = try JSONDecoder().decode(Checkpoint.self, from: checkpoint)
        guard position.next < config.billers.count else { return nil }
        let biller = config.billers[position.next]
        let date = try context.date("date")
        let directory = (config.reportsDirectory as NSString).appendingPathComponent(biller.code)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let basePath = (directory as NSString).appendingPathComponent("QDW-\(biller.code)-\(date.compact).xml")
        let store = config.wallets.store
        let pool = store.pool
        let previous = try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT version, report_id, sha256, created_at, delivered_at, delivered_to, ledger_head FROM payment_reports WHERE biller = ? AND business_date = ?", arguments: [biller.code, date.iso])
                .map { Previous(version: $0[0], reportID: $0[1], sha256: $0[2], createdAt: $0[3], delivered: ($0[4] as Int64?) != nil, deliveredTo: $0[5], ledgerHead: $0[6]) }
        }
        var version = previous?.version ?? 1
        var path = PaymentReports.versioned(basePath, version: version)
        var header: ReportHeader
        var digest: Data
        var unchanged = false
        if let previous {
            // Written again with the previous CreatedAt and ledger head: the same bytes mean the
            // same report.
            let candidate = path + ".candidate"
            header = try pool.read { db in
                try PaymentReports.write(db, biller: biller.code, date: date, now: previous.createdAt, path: candidate, schema: config.reportSchema, version: version, ledgerHead: previous.ledgerHead)
            }
            digest = Data(try FeedIngest.sha256(path: candidate).digest)
            if digest == previous.sha256 {
                unchanged = previous.delivered
                try? FileManager.default.removeItem(atPath: candidate)
            } else {
                try? FileManager.default.removeItem(atPath: candidate)
                // A report a biller has received is never replaced: a correction is a new version.
                if previous.delivered { version += 1 }
                path = PaymentReports.versioned(basePath, version: version)
                header = try store.snapshot { db, ledger in
                    try PaymentReports.write(db, biller: biller.code, date: date, now: context.clock.nowMicros(), path: path, schema: config.reportSchema, version: version,
                                             ledgerHead: (try ledger.chainHead() ?? .genesis).anchor)
                }
                digest = Data(try FeedIngest.sha256(path: path).digest)
                if version > previous.version {
                    context.logger.warning("corrected payment report", metadata: ["biller": "\(biller.code)", "date": "\(date.iso)", "version": "\(version)", "replaces": "\(previous.reportID)"])
                }
            }
        } else {
            header = try store.snapshot { db, ledger in
                try PaymentReports.write(db, biller: biller.code, date: date, now: context.clock.nowMicros(), path: path, schema: config.reportSchema,
                                         ledgerHead: (try ledger.chainHead() ?? .genesis).anchor)
            }
            digest = Data(try FeedIngest.sha256(path: path).digest)
        }
        let target = PaymentReports.versioned(Biller.fill(biller.resultURL, date: date, root: config.root, reports: config.reportsDirectory), version: version)
        var written = Written(reportID: header.reportID, path: path, sha256: digest, items: header.itemCount, header: header, version: version)
        // A feed refused at feed level: the biller is told so, and why, beside the report.
        if let rejection = try pool.read({ db in try FeedStatusReport.rejection(db, biller: biller.code, date: date) }) {
            let statusPath = FeedStatusReport.path(basePath)
            try FeedStatusReport.write(rejection, biller: biller.code, date: date, now: context.clock.nowMicros(), to: statusPath)
            let statusTarget = FeedStatusReport.path(Biller.fill(biller.resultURL, date: date, root: config.root, reports: config.reportsDirectory))
            if statusTarget != "file://" + statusPath {
                do {
                    try config.fetcher.upload(file: statusPath, to: statusTarget, sshHostKeySHA256: biller.sshHostKeySHA256)
                } catch {
                    written.deliveryError = "the feed status could not be delivered: \(error.description)"
                    context.logger.error("feed status delivery failed", metadata: ["biller": "\(biller.code)", "error": "\(error)"])
                }
            }
        }
        if unchanged {
            written.deliveredTo = previous?.deliveredTo
            written.unchanged = true
        } else if target == "file://" + path {
            written.deliveredTo = target
        } else {
            do {
                try config.fetcher.upload(file: path, to: target, sshHostKeySHA256: biller.sshHostKeySHA256)
                written.deliveredTo = FeedFetcher.redact(target)
            } catch where error.code == .stopped {
                throw error
            } catch {
                written.deliveryError = error.description
                context.logger.error("report delivery failed", metadata: ["biller": "\(biller.code)", "error": "\(error)"])
            }
        }
        return try JSONEncoder().encode(written)
    }

    func chunk(_ context: JobContext, db: Database, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        guard checkpoint.next < config.billers.count, let prepared = context.prepared else { return (checkpoint, ChunkCounts(done: true)) }
        let written = try JSONDecoder().decode(Written.self, from: prepared)
        let now = context.clock.nowMicros()
        let header = written.header
        if !written.unchanged {
            try db.cachedStatement(sql: """
                INSERT INTO payment_reports (biller, business_date, report_id, path, sha256, items, paid_count, paid_sum_fen, refunded_count, refunded_sum_fen, created_at, delivered_to, delivered_at, delivery_error, version, ledger_head)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (biller, business_date) DO UPDATE SET report_id = excluded.report_id, path = excluded.path, sha256 = excluded.sha256, items = excluded.items,
                    paid_count = excluded.paid_count, paid_sum_fen = excluded.paid_sum_fen, refunded_count = excluded.refunded_count, refunded_sum_fen = excluded.refunded_sum_fen,
                    created_at = excluded.created_at, delivered_to = excluded.delivered_to, delivered_at = excluded.delivered_at, delivery_error = excluded.delivery_error,
                    version = excluded.version, ledger_head = excluded.ledger_head
                """).execute(arguments: [header.billerCode, header.businessDate, written.reportID, written.path, written.sha256, written.items, header.paidCount, header.paidSumFen,
                                 header.refundedCount, header.refundedSumFen, header.createdAt, written.deliveredTo, written.deliveredTo == nil ? nil : now, written.deliveryError, written.version,
                                 header.ledgerHead])
            if written.deliveredTo != nil {
                // Every version a biller received, kept: a later one never erases an earlier.
                try db.cachedStatement(sql: """
                    INSERT INTO payment_report_versions (biller, business_date, version, report_id, path, sha256, paid_count, paid_sum_fen, refunded_count, refunded_sum_fen, delivered_to, delivered_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (biller, business_date, version) DO NOTHING
                    """).execute(arguments: [header.billerCode, header.businessDate, written.version, written.reportID, written.path, written.sha256, header.paidCount, header.paidSumFen,
                                     header.refundedCount, header.refundedSumFen, written.deliveredTo, now])
            }
        }
        let next = Checkpoint(next: checkpoint.next + 1)
        return (next, ChunkCounts(read: written.items, written: 1, failed: written.deliveryError == nil ? 0 : 1, done: next.next >= config.billers.count))
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
    static func rejection(_ db: Database, biller: String, date: ShanghaiCalendar.Date) throws -> Rejection? {
        guard let row = try Row.fetchOne(db, sql: "SELECT status, feed_id, error_code, error FROM billing_runs WHERE biller = ? AND business_date = ? ORDER BY at DESC, execution_id DESC LIMIT 1", arguments: [biller, date.iso]),
              (row[0] as String) == "rejected" else { return nil }
        // Only the message goes to the biller: never a local path or a cause from inside.
        let error: String = row[3] ?? "the feed was refused"
        let message = String((error.components(separatedBy: " [").first ?? error).prefix(500))
        return Rejection(feedID: row[1], code: row[2] ?? "rejected", message: message)
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
