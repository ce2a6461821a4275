import Crypto
import Feeds
import Foundation
import Ledger
import QDSQL

/// Stages one feed file into `bills`, `feed_cancels` and `feed_records`, inside the caller's
/// transaction (the caller wraps it in a savepoint: a feed-level fault leaves nothing).
public enum FeedIngest {
    public enum Outcome: Sendable, Hashable {
        /// Staged: the feed's id and what it held.
        case staged(feedID: String, bills: Int, cancels: Int, recordFaults: Int)
        /// The same FeedId with the same bytes was ingested before: nothing to do.
        case replay(feedID: String)
    }

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

    /// What was done to a feed's file before its chunk: its digest and size, and its records
    /// read to a spool (nil: the chunk reads the file).
    public struct ReadAhead: Sendable {
        public var digest: [UInt8]
        public var bytes: Int64
        public var spool: FeedSpool?
    }

    public static func ingest(
        _ db: any SQLConnection, path: String, biller: Biller, date: ShanghaiCalendar.Date,
        reader: FeedReader, executionID: Int64, now: TimestampMicros, readAhead: ReadAhead? = nil
    ) throws -> Outcome {
        let (digest, bytes) = try readAhead.map { ($0.digest, $0.bytes) } ?? sha256(path: path)
        guard bytes <= biller.feedBytesMax else {
            throw FeedError(.tooLarge, "the feed is \(bytes) bytes, over the limit of \(biller.feedBytesMax)")
        }
        let store = BillStore(db)
        let stager = store.stager(at: now)
        var feedID = ""
        var seq = 0
        var faults = 0
        func fault(_ seq: Int, _ kind: String, _ billID: String, _ outcome: String, _ reason: String) throws {
            faults += 1
            try stager.record(feedKey: feedID, seq: seq, kind: kind, billID: billID, outcome: outcome, reason: reason)
        }
        // A bill whose id was staged before: repeated inside this feed, sent again by an
        // earlier feed unchanged, or changed (refused: a corrected bill needs a new id).
        func collided(_ bill: BillStore.Stager.Staged, _ existing: BillStore.Stager.Existing) throws {
            if existing.feedKey == feedID {
                try fault(bill.seq, "bill", bill.billID, "duplicate_in_feed", "DUPLICATE_IN_FEED")
            } else if existing.dueFen == bill.dueFen && existing.customerNo == bill.customerNo {
                try fault(bill.seq, "bill", bill.billID, "seen_again", "SEEN_AGAIN")
            } else {
                try fault(bill.seq, "bill", bill.billID, "rejected", "AMOUNT_CHANGED")
            }
        }
        do {
            let onHeader = { (header: FeedHeader) throws in
                feedID = BillStore.feedKey(biller: biller.code, feedID: header.feedID)
                if let known = try store.feedDigest(feedID) {
                    if known == Data(digest) { throw ReplayStop(feedID: header.feedID) }
                    throw FeedError(.feedIdReused, "FeedId \(header.feedID) was ingested before with other content; a corrected feed needs a new FeedId")
                }
                try store.insertFeed(BillStore.Feed(key: feedID, biller: biller.code, businessDate: header.businessDate, sha256: Data(digest), bytes: bytes,
                                                    controlSumFen: header.controlSumFen, createdAt: header.createdAt, ingestedAt: now, executionID: executionID))
            }
            let onBill = { (bill: FeedBill) throws in
                seq += 1
                guard biller.validCustomerNo(bill.customerNo) else {
                    return try fault(seq, "bill", bill.billID, "rejected", "INVALID_CUSTOMER_NO")
                }
                guard bill.amountFen >= 1 else {
                    return try fault(seq, "bill", bill.billID, "rejected", "AMOUNT_TOO_SMALL")
                }
                try stager.stage(BillStore.Stager.Staged(
                    biller: biller.code, billID: bill.billID, feedKey: feedID, seq: seq, businessDate: date.iso, customerNo: bill.customerNo, customerName: bill.customerName,
                    district: bill.district, period: bill.period, usage: bill.usage, usageUnit: bill.usageUnit, amountFen: bill.amountFen, lateFeeFen: bill.lateFeeFen,
                    dueFen: bill.dueFen, issueDate: bill.issueDate, dueDate: bill.dueDate))
            }
            let onCancel = { (cancel: FeedCancel) throws in
                seq += 1
                try stager.cancel(feedKey: feedID, seq: seq, key: PaymentKey(biller: biller.code, billID: cancel.billID), reason: String(cancel.reason.prefix(140)), businessDate: date.iso)
            }
            // Read ahead: the records from the spool, as the reader handed them over.
            let summary = try readAhead?.spool.map { try $0.replay(onHeader: onHeader, onBill: onBill, onCancel: onCancel) }
                ?? reader.readBeside(path: path, expectedBiller: biller.code, expectedDate: date.iso, onHeader: onHeader, onBill: onBill, onCancel: onCancel)
            try stager.finish(feedKey: feedID, collided: collided)
            try store.setFeedCounts(feedID, bills: summary.bills, cancels: summary.cancels)
            return .staged(feedID: summary.header.feedID, bills: stager.staged, cancels: summary.cancels, recordFaults: faults)
        } catch let replay as ReplayStop {
            return .replay(feedID: replay.feedID)
        }
    }
}
