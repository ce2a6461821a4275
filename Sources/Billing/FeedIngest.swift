import Crypto
import Feeds
import Foundation
import GRDB
import Ledger

/// Stages one feed file into `bills`, `feed_cancels` and `feed_records`, inside the caller's
/// transaction (the caller wraps it in a savepoint: a feed-level fault leaves nothing).
public enum FeedIngest {
    public enum Outcome: Sendable, Hashable {
        /// Staged: the feed's id and what it held.
        case staged(feedID: String, bills: Int, cancels: Int, recordFaults: Int)
        /// The same FeedId with the same bytes was ingested before: nothing to do.
        case replay(feedID: String)
    }

    /// A feed's identity is its biller and the FeedId the biller gave it: two billers may
    /// number their feeds alike. The feed tables key feeds as `BILLER/FEEDID`; what is shown
    /// (summaries, reports, reconciliation) is the biller's FeedId.
    static func key(biller: String, feedID: String) -> String { biller + "/" + feedID }

    /// The SQL expression that shows the biller's FeedId of a stored key column.
    static func shown(_ column: String) -> String { "substr(\(column), instr(\(column), '/') + 1)" }

    /// Stops the parse early when the header shows a replay.
    private struct ReplayStop: Error { let feedID: String }

    /// SHA-256 of a file, read in 1 MiB pieces.
    public static func sha256(path: String) throws -> (digest: [UInt8], bytes: Int64) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw FeedError(.io, "cannot read the feed file", context: path)
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        var bytes: Int64 = 0
        while let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty {
            hasher.update(data: piece)
            bytes += Int64(piece.count)
        }
        return (Array(hasher.finalize()), bytes)
    }

    public static func ingest(
        _ db: Database, path: String, biller: Biller, date: ShanghaiCalendar.Date,
        reader: FeedReader, executionID: Int64, now: TimestampMicros
    ) throws -> Outcome {
        let (digest, bytes) = try sha256(path: path)
        guard bytes <= biller.feedBytesMax else {
            throw FeedError(.tooLarge, "the feed is \(bytes) bytes, over the limit of \(biller.feedBytesMax)")
        }
        var feedID = ""
        var seq = 0
        var staged = 0
        var faults = 0
        let insertBill = try db.cachedStatement(sql: """
            INSERT INTO bills (biller, bill_id, feed_id, seq, business_date, customer_no, customer_name, district, period, usage, usage_unit,
                amount_fen, late_fee_fen, due_fen, issue_date, due_date, status, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'new', ?)
            ON CONFLICT (biller, bill_id) DO NOTHING
            """)
        let insertRecord = try db.cachedStatement(sql: "INSERT INTO feed_records (feed_id, seq, kind, bill_id, outcome, reason) VALUES (?, ?, ?, ?, ?, ?)")
        func fault(_ kind: String, _ billID: String, _ outcome: String, _ reason: String) throws {
            faults += 1
            try insertRecord.execute(arguments: [feedID, seq, kind, billID, outcome, reason])
        }
        do {
            let summary = try reader.read(
                path: path, expectedBiller: biller.code, expectedDate: date.iso,
                onHeader: { header in
                    feedID = key(biller: biller.code, feedID: header.feedID)
                    if let row = try Row.fetchOne(db, sql: "SELECT sha256 FROM feeds WHERE feed_id = ?", arguments: [feedID]) {
                        if (row["sha256"] as Data) == Data(digest) { throw ReplayStop(feedID: header.feedID) }
                        throw FeedError(.feedIdReused, "FeedId \(header.feedID) was ingested before with other content; a corrected feed needs a new FeedId")
                    }
                    try db.execute(sql: """
                        INSERT INTO feeds (feed_id, biller, business_date, sha256, bytes, bills, cancels, ctrl_sum_fen, created_at, ingested_at, execution_id)
                        VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?)
                        """, arguments: [feedID, biller.code, header.businessDate, Data(digest), bytes, header.controlSumFen, header.createdAt, now, executionID])
                },
                onBill: { bill in
                    seq += 1
                    guard biller.validCustomerNo(bill.customerNo) else {
                        return try fault("bill", bill.billID, "rejected", "INVALID_CUSTOMER_NO")
                    }
                    guard bill.amountFen >= 1 else {
                        return try fault("bill", bill.billID, "rejected", "AMOUNT_TOO_SMALL")
                    }
                    try insertBill.execute(arguments: [
                        biller.code, bill.billID, feedID, seq, date.iso, bill.customerNo, bill.customerName, bill.district, bill.period,
                        bill.usage, bill.usageUnit, bill.amountFen, bill.lateFeeFen, bill.dueFen, bill.issueDate, bill.dueDate, now,
                    ])
                    if db.changesCount == 1 {
                        staged += 1
                        return
                    }
                    guard let existing = try Row.fetchOne(try db.cachedStatement(sql: "SELECT feed_id, due_fen, customer_no FROM bills WHERE biller = ? AND bill_id = ?"), arguments: [biller.code, bill.billID]) else { return }
                    if (existing["feed_id"] as String) == feedID {
                        try fault("bill", bill.billID, "duplicate_in_feed", "DUPLICATE_IN_FEED")
                    } else if (existing["due_fen"] as Int64) == bill.dueFen && (existing["customer_no"] as String) == bill.customerNo {
                        try fault("bill", bill.billID, "seen_again", "SEEN_AGAIN")
                    } else {
                        try fault("bill", bill.billID, "rejected", "AMOUNT_CHANGED")
                    }
                },
                onCancel: { cancel in
                    seq += 1
                    try db.cachedStatement(sql: "INSERT INTO feed_cancels (feed_id, seq, biller, bill_id, reason, business_date) VALUES (?, ?, ?, ?, ?, ?)")
                        .execute(arguments: [feedID, seq, biller.code, cancel.billID, String(cancel.reason.prefix(140)), date.iso])
                })
            try db.execute(sql: "UPDATE feeds SET bills = ?, cancels = ? WHERE feed_id = ?", arguments: [summary.bills, summary.cancels, feedID])
            return .staged(feedID: summary.header.feedID, bills: staged, cancels: summary.cancels, recordFaults: faults)
        } catch let replay as ReplayStop {
            return .replay(feedID: replay.feedID)
        }
    }
}
