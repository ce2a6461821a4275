import Crypto
import Feeds
import Foundation
import GRDB
import JobRunner
import Ledger

/// Builds a biller's payment report for a business day from the committed state.
public enum PaymentReports {
    /// Header and items of the report of `biller` for `date`.
    public static func build(_ db: Database, biller: String, date: ShanghaiCalendar.Date, now: TimestampMicros) throws -> (ReportHeader, [ReportItem]) {
        let feedIDs = try String.fetchAll(try db.cachedStatement(sql: "SELECT feed_id FROM feeds WHERE biller = ? AND business_date = ? ORDER BY ingested_at"), arguments: [biller, date.iso])
        var items: [ReportItem] = []
        var listed = Set<String>()
        func item(_ row: Row) -> ReportItem {
            let billID: String = row["bill_id"]
            let transactionID: Int64? = row["transaction_id"]
            switch row["status"] as String {
            case "paid":
                return ReportItem(billID: billID, status: .paid, amountFen: row["paid_fen"], paidAt: row["paid_at"], paymentRef: transactionID.map { "QDW-T\($0)" })
            case "refunded":
                return ReportItem(billID: billID, status: .refunded, amountFen: row["paid_fen"], paymentRef: (row["refund_transaction_id"] as Int64?).map { "QDW-T\($0)" })
            case "cancelled":
                return ReportItem(billID: billID, status: .cancelled)
            case "unmatched":
                return ReportItem(billID: billID, status: .unmatched)
            default:
                return ReportItem(billID: billID, status: .pending, reason: row["reason"] ?? "PROCESSING")
            }
        }
        for feedID in feedIDs {
            // The feed's records in document order (staged bills, record faults, cancels),
            // each with the current state of its bill, in one pass.
            let rows = try Row.fetchAll(db, sql: """
                SELECT r.source, r.bill_id, r.outcome, r.reason_code, b.status, b.reason, b.paid_fen, b.paid_at, b.transaction_id, b.refund_transaction_id
                FROM (
                    SELECT seq, 'bill' AS source, bill_id, NULL AS outcome, NULL AS reason_code FROM bills WHERE feed_id = ?1
                    UNION ALL SELECT seq, 'record', bill_id, outcome, reason FROM feed_records WHERE feed_id = ?1
                    UNION ALL SELECT seq, 'cancel', bill_id, outcome, NULL FROM feed_cancels WHERE feed_id = ?1
                ) r LEFT JOIN bills b ON b.biller = ?2 AND b.bill_id = r.bill_id
                ORDER BY r.seq
                """, arguments: [feedID, biller])
            for record in rows {
                let billID: String = record["bill_id"]
                guard !listed.contains(billID) else { continue }
                let source: String = record["source"]
                let outcome: String? = record["outcome"]
                if source == "record" && outcome == "rejected" {
                    items.append(ReportItem(billID: billID, status: .rejected, reason: record["reason_code"]))
                    listed.insert(billID)
                    continue
                }
                if source == "record" && outcome == "duplicate_in_feed" { continue }
                if (record["status"] as String?) != nil {
                    items.append(item(record))
                    listed.insert(billID)
                }
            }
        }
        // Paid or refunded that day through another path (a manual pay-bill, an older bill).
        for row in try Row.fetchAll(try db.cachedStatement(sql: "SELECT * FROM bills WHERE biller = ? AND (paid_business_date = ? OR refunded_business_date = ?) ORDER BY id"), arguments: [biller, date.iso, date.iso]) {
            let billID: String = row["bill_id"]
            if listed.insert(billID).inserted {
                items.append(item(row))
            }
        }
        let paid = try Row.fetchOne(try db.cachedStatement(sql: "SELECT count(*) AS n, coalesce(sum(paid_fen), 0) AS fen FROM bills WHERE biller = ? AND paid_business_date = ?"), arguments: [biller, date.iso])
        let refunded = try Row.fetchOne(try db.cachedStatement(sql: "SELECT count(*) AS n, coalesce(sum(paid_fen), 0) AS fen FROM bills WHERE biller = ? AND refunded_business_date = ?"), arguments: [biller, date.iso])
        let header = ReportHeader(
            reportID: "QDW-\(biller)-\(date.compact)", billerCode: biller, businessDate: date.iso, createdAt: now,
            originalFeedID: feedIDs.first, itemCount: items.count,
            paidCount: paid?["n"] ?? 0, paidSumFen: paid?["fen"] ?? 0,
            refundedCount: refunded?["n"] ?? 0, refundedSumFen: refunded?["fen"] ?? 0)
        return (header, items)
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
    }

    let config: NightlyBillingConfig
    let name = "reports"
    let checkpointVersion = 1

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(next: 0) }

    func beforeChunk(_ context: JobContext, checkpoint: Data) throws -> Data? {
        let position = try JSONDecoder().decode(Checkpoint.self, from: checkpoint)
        guard position.next < config.billers.count else { return nil }
        let biller = config.billers[position.next]
        let date = try context.date("date")
        let (header, items) = try config.wallets.store.pool.read { db in
            try PaymentReports.build(db, biller: biller.code, date: date, now: context.clock.nowMicros())
        }
        let directory = (config.reportsDirectory as NSString).appendingPathComponent(biller.code)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = (directory as NSString).appendingPathComponent("\(header.reportID).xml")
        _ = try PaymentReportWriter.write(header: header, items: items, to: path, schema: config.reportSchema)
        let digest = try FeedIngest.sha256(path: path).digest
        let target = Biller.fill(biller.resultURL, date: date, root: config.root, reports: config.reportsDirectory)
        var written = Written(reportID: header.reportID, path: path, sha256: Data(digest), items: items.count, header: header)
        if target == "file://" + path {
            written.deliveredTo = target
        } else {
            do {
                try config.fetcher.upload(file: path, to: target)
                written.deliveredTo = FeedFetcher.redact(target)
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
        try db.cachedStatement(sql: """
            INSERT INTO payment_reports (biller, business_date, report_id, path, sha256, items, paid_count, paid_sum_fen, refunded_count, refunded_sum_fen, created_at, delivered_to, delivered_at, delivery_error)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (biller, business_date) DO UPDATE SET report_id = excluded.report_id, path = excluded.path, sha256 = excluded.sha256, items = excluded.items,
                paid_count = excluded.paid_count, paid_sum_fen = excluded.paid_sum_fen, refunded_count = excluded.refunded_count, refunded_sum_fen = excluded.refunded_sum_fen,
                created_at = excluded.created_at, delivered_to = excluded.delivered_to, delivered_at = excluded.delivered_at, delivery_error = excluded.delivery_error
            """).execute(arguments: [header.billerCode, header.businessDate, written.reportID, written.path, written.sha256, written.items, header.paidCount, header.paidSumFen,
                             header.refundedCount, header.refundedSumFen, now, written.deliveredTo, written.deliveredTo == nil ? nil : now, written.deliveryError])
        let next = Checkpoint(next: checkpoint.next + 1)
        return (next, ChunkCounts(read: written.items, written: 1, failed: written.deliveryError == nil ? 0 : 1, done: next.next >= config.billers.count))
    }
}
