import Foundation
import GRDB
import Ledger

/// The billing tables, and the only code that names them: bill accounts, feeds and their
/// records and cancels, bills, the nightly runs' per-biller outcomes and the payment
/// reports. Every statement runs in the caller's transaction or snapshot (`db`). What other
/// modules read of billing (reconciliation), they read through its public methods.
public struct BillStore {
    let db: Database

    public init(_ db: Database) { self.db = db }

    // MARK: Bill accounts

    struct Link {
        var id: Int64
        var walletID: Int64
        var autopay: Bool
        var autopayLimitFen: Int64
    }

    func billerExists(_ code: String) throws -> Bool {
        try Row.fetchOne(db, sql: "SELECT 1 FROM billers WHERE code = ?", arguments: [code]) != nil
    }

    /// The live link of a customer number, whoever holds it.
    func link(biller: String, customerNo: String) throws -> Link? {
        try Row.fetchOne(db, sql: "SELECT id, wallet_id, autopay, autopay_limit_fen FROM bill_accounts WHERE biller = ? AND customer_no = ? AND status = 'linked'", arguments: [biller, customerNo])
            .map { Link(id: $0[0], walletID: $0[1], autopay: $0[2], autopayLimitFen: $0[3]) }
    }

    func setAutopay(linkID: Int64, autopay: Bool, limitFen: Int64) throws {
        try db.execute(sql: "UPDATE bill_accounts SET autopay = ?, autopay_limit_fen = ? WHERE id = ?", arguments: [autopay, limitFen, linkID])
    }

    func insertLink(walletID: Int64, biller: String, customerNo: String, autopay: Bool, limitFen: Int64, at: TimestampMicros) throws -> Int64 {
        try db.execute(sql: "INSERT INTO bill_accounts (wallet_id, biller, customer_no, autopay, autopay_limit_fen, status, linked_at) VALUES (?, ?, ?, ?, ?, 'linked', ?)",
                       arguments: [walletID, biller, customerNo, autopay, limitFen, at])
        return db.lastInsertedRowID
    }

    func unlink(linkID: Int64, at: TimestampMicros) throws {
        try db.execute(sql: "UPDATE bill_accounts SET status = 'unlinked', unlinked_at = ? WHERE id = ?", arguments: [at, linkID])
    }

    // MARK: Bills

    /// A wallet's bills (its own, and those of the customer numbers it links), newest first.
    func bills(walletID: Int64, status: BillStatus?, limit: Int) throws -> [BillingService.Bill] {
        var sql = """
            SELECT b.biller, b.bill_id, b.customer_no, b.period, b.amount_fen, b.late_fee_fen, b.due_fen, b.due_date, b.status, b.reason,
                b.transaction_id, b.paid_via, b.discount_fen, b.points FROM bills b
            WHERE (b.wallet_id = ? OR EXISTS (SELECT 1 FROM bill_accounts a WHERE a.wallet_id = ? AND a.status = 'linked' AND a.biller = b.biller AND a.customer_no = b.customer_no))
            """
        var arguments: StatementArguments = [walletID, walletID]
        if let status { sql += " AND b.status = ?"; arguments += [status.rawValue] }
        sql += " ORDER BY b.id DESC LIMIT ?"
        arguments += [limit]
        return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
            BillingService.Bill(biller: row[0], billId: row[1], customerNo: row[2], period: row[3], amountFen: row[4], lateFeeFen: row[5], dueFen: row[6], dueDate: row[7],
                                status: row[8], reason: row[9], transactionId: row[10], paidVia: row[11], discountFen: row[12], points: row[13])
        }
    }

    /// One bill as pay-bill needs it, with its biller.
    struct BillForPayment {
        var rowID: Int64
        var walletID: Int64?
        var customerNo: String
        var status: BillStatus
        var transactionID: Int64?
        var dueFen: Int64
        var dueDate: String
        var district: String
        var billerName: String
        var category: String
        var billerAccountID: AccountID
    }

    func bill(_ key: PaymentKey) throws -> BillForPayment? {
        try Row.fetchOne(db, sql: """
            SELECT b.id, b.wallet_id, b.customer_no, b.status, b.transaction_id, b.due_fen, b.due_date, b.district, r.name, r.category, r.account_id
            FROM bills b JOIN billers r ON r.code = b.biller WHERE b.biller = ? AND b.bill_id = ?
            """, arguments: [key.biller, key.billID]).map {
            BillForPayment(rowID: $0[0], walletID: $0[1], customerNo: $0[2], status: try Self.status($0[3]), transactionID: $0[4], dueFen: $0[5], dueDate: $0[6],
                           district: $0[7], billerName: $0[8], category: $0[9], billerAccountID: $0[10])
        }
    }

    static func status(_ text: String) throws -> BillStatus {
        guard let status = BillStatus(rawValue: text) else { throw LedgerError(.storage, "a bill has an unknown status", context: String(text.prefix(32))) }
        return status
    }

    /// What autopay took from a wallet on a business day (after discounts).
    func autopayUsed(walletID: Int64, on date: ShanghaiCalendar.Date) throws -> Int64 {
        try Int64.fetchOne(try db.cachedStatement(sql: """
            SELECT coalesce(sum(paid_fen - discount_fen), 0) FROM bills
            WHERE wallet_id = ? AND paid_via = ? AND paid_business_date = ? AND status = ?
            """), arguments: [walletID, PaidVia.autopay.rawValue, date.iso, BillStatus.paid.rawValue]) ?? 0
    }

    /// Whether the wallet ever paid this biller (a refunded payment counts).
    func hasPaid(walletID: Int64, biller: String) throws -> Bool {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT 1 FROM bills WHERE wallet_id = ? AND biller = ? AND status IN (?, ?) LIMIT 1"),
                         arguments: [walletID, biller, BillStatus.paid.rawValue, BillStatus.refunded.rawValue]) != nil
    }

    struct Paid {
        var walletID: Int64
        var billAccountID: Int64?
        var transactionID: TransactionID
        var paidFen: Int64
        var discountFen: Int64
        var points: Int64
        var via: PaidVia
        var businessDate: ShanghaiCalendar.Date
    }

    func markPaid(rowID: Int64, _ paid: Paid, at now: TimestampMicros) throws {
        try db.cachedStatement(sql: """
            UPDATE bills SET status = ?, reason = NULL, wallet_id = ?, bill_account_id = ?, transaction_id = ?, paid_fen = ?, discount_fen = ?, points = ?,
                paid_at = ?, paid_via = ?, paid_business_date = ?, updated_at = ? WHERE id = ?
            """).execute(arguments: [BillStatus.paid.rawValue, paid.walletID, paid.billAccountID, paid.transactionID, paid.paidFen, paid.discountFen, paid.points,
                                     now, paid.via.rawValue, paid.businessDate.iso, now, rowID])
    }

    func markUnmatched(rowID: Int64, at now: TimestampMicros) throws {
        try db.cachedStatement(sql: "UPDATE bills SET status = ?, reason = 'UNKNOWN_CUSTOMER', updated_at = ? WHERE id = ?").execute(arguments: [BillStatus.unmatched.rawValue, now, rowID])
    }

    func markPayable(rowID: Int64, reason: PendingReason, walletID: Int64?, billAccountID: Int64?, at now: TimestampMicros) throws {
        try db.cachedStatement(sql: "UPDATE bills SET status = ?, reason = ?, wallet_id = ?, bill_account_id = ?, updated_at = ? WHERE id = ?")
            .execute(arguments: [BillStatus.payable.rawValue, reason.code, walletID, billAccountID, now, rowID])
    }

    func markCancelled(rowID: Int64, on day: ShanghaiCalendar.Date, at now: TimestampMicros) throws {
        try db.execute(sql: "UPDATE bills SET status = ?, reason = NULL, cancelled_business_date = ?, updated_at = ? WHERE id = ?", arguments: [BillStatus.cancelled.rawValue, day.iso, now, rowID])
    }

    func markRefunded(rowID: Int64, refund: TransactionID, on day: ShanghaiCalendar.Date, at now: TimestampMicros) throws {
        try db.execute(sql: """
            UPDATE bills SET status = ?, refund_transaction_id = ?, refunded_at = ?, refunded_business_date = ?, cancelled_business_date = ?, updated_at = ? WHERE id = ?
            """, arguments: [BillStatus.refunded.rawValue, refund, now, day.iso, day.iso, now, rowID])
    }

    // MARK: The nightly run's reads

    func countNew() throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM bills WHERE status = ?", arguments: [BillStatus.new.rawValue]) ?? 0
    }

    /// A staged bill with its biller and the live link of its customer number.
    struct NewBill {
        var rowID: Int64
        var biller: String
        var billID: String
        var dueFen: Int64
        var dueDate: String
        var district: String
        var link: Link?
        var billerName: String
        var category: String
        var billerAccountID: AccountID
    }

    /// The next staged bills of a business date after `afterID`, in id order.
    func newBills(of date: ShanghaiCalendar.Date, after afterID: Int64, limit: Int) throws -> [NewBill] {
        // Read by position (the columns of the select, in order): no lookup by name per bill.
        try Row.fetchAll(try db.cachedStatement(sql: """
            SELECT b.id, b.biller, b.bill_id, b.due_fen, b.due_date, b.district, a.id, a.wallet_id, a.autopay, a.autopay_limit_fen, r.name, r.category, r.account_id
            FROM bills b
            JOIN billers r ON r.code = b.biller
            LEFT JOIN bill_accounts a ON a.biller = b.biller AND a.customer_no = b.customer_no AND a.status = 'linked'
            WHERE b.status = ? AND b.id > ? AND b.business_date = ? ORDER BY b.id LIMIT ?
            """), arguments: [BillStatus.new.rawValue, afterID, date.iso, limit]).map { row in
            let linkID: Int64? = row[6]
            return NewBill(rowID: row[0], biller: row[1], billID: row[2], dueFen: row[3], dueDate: row[4], district: row[5],
                           link: linkID.map { Link(id: $0, walletID: row[7], autopay: row[8], autopayLimitFen: row[9]) },
                           billerName: row[10], category: row[11], billerAccountID: row[12])
        }
    }

    /// A cancel of a business date with the bill it names (nil when the bill is unknown).
    struct Cancel {
        var id: Int64
        var feedID: String
        var seq: Int
        var key: PaymentKey
        var day: String
        var bill: CancelledBill?
        var billerName: String
        var category: String
    }

    struct CancelledBill {
        var rowID: Int64
        var status: BillStatus
        var transactionID: Int64?
        var walletID: Int64?
        var paidFen: Int64
        var discountFen: Int64
    }

    func openCancels(of date: ShanghaiCalendar.Date, after afterID: Int64, limit: Int) throws -> [Cancel] {
        try Row.fetchAll(db, sql: """
            SELECT c.id, c.feed_id, c.seq, c.biller, c.bill_id, c.business_date, b.id, b.status, b.transaction_id, b.wallet_id, b.paid_fen, b.discount_fen, r.name, r.category
            FROM feed_cancels c LEFT JOIN bills b ON b.biller = c.biller AND b.bill_id = c.bill_id
            JOIN billers r ON r.code = c.biller
            WHERE c.outcome IS NULL AND c.id > ? AND c.business_date = ? ORDER BY c.id LIMIT ?
            """, arguments: [afterID, date.iso, limit]).map { row in
            let billRow: Int64? = row[6]
            return Cancel(id: row[0], feedID: row[1], seq: row[2], key: PaymentKey(biller: row[3], billID: row[4]), day: row[5],
                          bill: try billRow.map { CancelledBill(rowID: $0, status: try Self.status(row[7]), transactionID: row[8], walletID: row[9], paidFen: (row[10] as Int64?) ?? 0, discountFen: (row[11] as Int64?) ?? 0) },
                          billerName: row[12], category: row[13])
        }
    }

    func setCancelOutcome(id: Int64, outcome: String) throws {
        try db.execute(sql: "UPDATE feed_cancels SET outcome = ? WHERE id = ?", arguments: [outcome, id])
    }

    func recordRejectedCancel(feedID: String, seq: Int, billID: String, reason: String) throws {
        try db.execute(sql: "INSERT INTO feed_records (feed_id, seq, kind, bill_id, outcome, reason) VALUES (?, ?, 'cancel', ?, 'rejected', ?)", arguments: [feedID, seq, billID, reason])
    }

    // MARK: Feeds

    /// The SHA-256 a feed was ingested with, by its key (`BILLER/FEEDID`).
    func feedDigest(_ key: String) throws -> Data? {
        try Data.fetchOne(db, sql: "SELECT sha256 FROM feeds WHERE feed_id = ?", arguments: [key])
    }

    struct Feed {
        var key: String
        var biller: String
        var businessDate: String
        var sha256: Data
        var bytes: Int64
        var controlSumFen: Int64
        var createdAt: String
        var ingestedAt: TimestampMicros
        var executionID: Int64
    }

    func insertFeed(_ feed: Feed) throws {
        try db.execute(sql: """
            INSERT INTO feeds (feed_id, biller, business_date, sha256, bytes, bills, cancels, ctrl_sum_fen, created_at, ingested_at, execution_id)
            VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?)
            """, arguments: [feed.key, feed.biller, feed.businessDate, feed.sha256, feed.bytes, feed.controlSumFen, feed.createdAt, feed.ingestedAt, feed.executionID])
    }

    func setFeedCounts(_ key: String, bills: Int, cancels: Int) throws {
        try db.execute(sql: "UPDATE feeds SET bills = ?, cancels = ? WHERE feed_id = ?", arguments: [bills, cancels, key])
    }

    /// Stages a feed's bills; prepared once per feed.
    struct Stager {
        let db: Database
        let insertBill: Statement
        let insertRecord: Statement
        let insertCancel: Statement
        let existing: Statement

        struct Staged {
            var biller: String
            var billID: String
            var feedKey: String
            var seq: Int
            var businessDate: String
            var customerNo: String
            var customerName: String
            var district: String
            var period: String
            var usage: String
            var usageUnit: String
            var amountFen: Int64
            var lateFeeFen: Int64
            var dueFen: Int64
            var issueDate: String
            var dueDate: String
        }

        /// Stages a new bill; false when the biller's bill id was staged before (nothing written).
        func stage(_ bill: Staged, at now: TimestampMicros) throws -> Bool {
            try insertBill.execute(arguments: [
                bill.biller, bill.billID, bill.feedKey, bill.seq, bill.businessDate, bill.customerNo, bill.customerName, bill.district, bill.period,
                bill.usage, bill.usageUnit, bill.amountFen, bill.lateFeeFen, bill.dueFen, bill.issueDate, bill.dueDate, BillStatus.new.rawValue, now,
            ])
            return db.changesCount == 1
        }

        /// The staged bill a repeated bill id collides with.
        func existing(_ key: PaymentKey) throws -> (feedKey: String, dueFen: Int64, customerNo: String)? {
            try Row.fetchOne(existing, arguments: [key.biller, key.billID]).map { ($0[0], $0[1], $0[2]) }
        }

        /// A record of the feed that was not staged as a bill, and why.
        func record(feedKey: String, seq: Int, kind: String, billID: String, outcome: String, reason: String) throws {
            try insertRecord.execute(arguments: [feedKey, seq, kind, billID, outcome, reason])
        }

        func cancel(feedKey: String, seq: Int, key: PaymentKey, reason: String, businessDate: String) throws {
            try insertCancel.execute(arguments: [feedKey, seq, key.biller, key.billID, reason, businessDate])
        }
    }

    func stager() throws -> Stager {
        Stager(
            db: db,
            insertBill: try db.cachedStatement(sql: """
                INSERT INTO bills (biller, bill_id, feed_id, seq, business_date, customer_no, customer_name, district, period, usage, usage_unit,
                    amount_fen, late_fee_fen, due_fen, issue_date, due_date, status, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (biller, bill_id) DO NOTHING
                """),
            insertRecord: try db.cachedStatement(sql: "INSERT INTO feed_records (feed_id, seq, kind, bill_id, outcome, reason) VALUES (?, ?, ?, ?, ?, ?)"),
            insertCancel: try db.cachedStatement(sql: "INSERT INTO feed_cancels (feed_id, seq, biller, bill_id, reason, business_date) VALUES (?, ?, ?, ?, ?, ?)"),
            existing: try db.cachedStatement(sql: "SELECT feed_id, due_fen, customer_no FROM bills WHERE biller = ? AND bill_id = ?"))
    }

    /// A feed's identity is its biller and the FeedId the biller gave it: two billers may
    /// number their feeds alike. The feed tables key feeds as `BILLER/FEEDID`; what is shown
    /// (summaries, reports, reconciliation) is the biller's FeedId.
    static func feedKey(biller: String, feedID: String) -> String { biller + "/" + feedID }

    /// The biller's FeedId of a stored key.
    static func shownFeedID(_ key: String) -> String {
        key.firstIndex(of: "/").map { String(key[key.index(after: $0)...]) } ?? key
    }

    /// The FeedIds of a biller's feeds of a day, in the order they were ingested.
    func feedIDs(biller: String, on date: ShanghaiCalendar.Date) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT feed_id FROM feeds WHERE biller = ? AND business_date = ? ORDER BY ingested_at, feed_id", arguments: [biller, date.iso]).map(Self.shownFeedID)
    }

    public struct FeedTotals {
        public var feedID: String
        public var bills: Int
        public var controlSumFen: Int64
    }

    /// A biller's feeds of a day, in FeedId order, with the totals their headers declared.
    public func feeds(biller: String, on date: ShanghaiCalendar.Date) throws -> [FeedTotals] {
        try Row.fetchAll(db, sql: "SELECT feed_id, bills, ctrl_sum_fen FROM feeds WHERE biller = ? AND business_date = ?", arguments: [biller, date.iso])
            .map { FeedTotals(feedID: Self.shownFeedID($0[0]), bills: $0[1], controlSumFen: $0[2]) }
            .sorted { $0.feedID < $1.feedID }
    }

    public func feedCount(biller: String, on date: ShanghaiCalendar.Date) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM feeds WHERE biller = ? AND business_date = ?", arguments: [biller, date.iso]) ?? 0
    }

    /// What the feeds of a biller's day hold, by bill status and reason.
    public struct FeedDay {
        /// Count and amount due by status and reason (nil reason: none recorded).
        public var byStatus: [(status: BillStatus, reason: String?, count: Int, dueFen: Int64)] = []
        /// Records that were not staged as bills: rejected, or repeated inside their feed.
        public var rejectedRecords = 0
        /// Every bill record of the feeds, staged or not.
        public var billRecords = 0
        public var staged: (count: Int, dueFen: Int64) = (0, 0)
        public var matched: (count: Int, dueFen: Int64) = (0, 0)
    }

    public func feedDay(biller: String, on date: ShanghaiCalendar.Date) throws -> FeedDay {
        var day = FeedDay()
        let keys = try String.fetchAll(db, sql: "SELECT feed_id FROM feeds WHERE biller = ? AND business_date = ?", arguments: [biller, date.iso])
        for key in keys {
            for row in try Row.fetchAll(db, sql: "SELECT status, reason, count(*), coalesce(sum(due_fen), 0), count(wallet_id), coalesce(sum(CASE WHEN wallet_id IS NOT NULL THEN due_fen END), 0) FROM bills WHERE feed_id = ? GROUP BY status, reason", arguments: [key]) {
                let count: Int = row[2], fen: Int64 = row[3]
                day.byStatus.append((try Self.status(row[0]), row[1], count, fen))
                day.staged.count += count
                day.staged.dueFen += fen
                day.matched.count += row[4] as Int
                day.matched.dueFen += row[5] as Int64
            }
            day.rejectedRecords += try Int.fetchOne(db, sql: "SELECT count(*) FROM feed_records WHERE feed_id = ? AND outcome IN ('rejected', 'duplicate_in_feed')", arguments: [key]) ?? 0
            day.billRecords += try Int.fetchOne(db, sql: "SELECT count(*) FROM feed_records WHERE feed_id = ? AND kind = 'bill'", arguments: [key]) ?? 0
        }
        return day
    }

    // MARK: Day totals

    /// What a biller's bills moved on a business day: payments made that day, refunds made
    /// that day, cancels of that day. The one sum the summary, the report and the
    /// reconciliation read.
    public func dayTotals(biller: String, on date: ShanghaiCalendar.Date) throws -> DayTotals {
        var totals = DayTotals()
        if let row = try Row.fetchOne(db, sql: """
            SELECT count(*), coalesce(sum(paid_fen), 0),
                count(CASE WHEN paid_via = 'autopay' THEN 1 END), coalesce(sum(CASE WHEN paid_via = 'autopay' THEN paid_fen END), 0),
                coalesce(sum(CASE WHEN paid_via = 'autopay' THEN discount_fen END), 0), coalesce(sum(CASE WHEN paid_via = 'autopay' THEN points END), 0),
                count(CASE WHEN paid_via = 'manual' THEN 1 END), coalesce(sum(CASE WHEN paid_via = 'manual' THEN paid_fen END), 0)
            FROM bills WHERE biller = ? AND paid_business_date = ?
            """, arguments: [biller, date.iso]) {
            totals.paidCount = row[0]
            totals.paidFen = row[1]
            totals.autopayCount = row[2]
            totals.autopayFen = row[3]
            totals.autopayDiscountFen = row[4]
            totals.autopayPoints = row[5]
            totals.manualCount = row[6]
            totals.manualFen = row[7]
        }
        if let row = try Row.fetchOne(db, sql: "SELECT count(*), coalesce(sum(paid_fen), 0) FROM bills WHERE biller = ? AND refunded_business_date = ?", arguments: [biller, date.iso]) {
            totals.refundedCount = row[0]
            totals.refundedFen = row[1]
        }
        if let row = try Row.fetchOne(db, sql: """
            SELECT count(*), count(CASE WHEN status = ?3 THEN 1 END), coalesce(sum(CASE WHEN status = ?3 THEN due_fen END), 0)
            FROM bills WHERE biller = ?1 AND cancelled_business_date = ?2
            """, arguments: [biller, date.iso, BillStatus.cancelled.rawValue]) {
            totals.cancelledCount = row[0]
            totals.cancelledUnpaidCount = row[1]
            totals.cancelledUnpaidFen = row[2]
        }
        return totals
    }

    // MARK: Reads for reconciliation

    public struct BillerAccount: Sendable, Hashable {
        public var code: String
        public var accountID: AccountID
    }

    /// The registered billers, in code order, with their settlement accounts.
    public func billers() throws -> [BillerAccount] {
        try Row.fetchAll(db, sql: "SELECT code, account_id FROM billers ORDER BY code").map { BillerAccount(code: $0[0], accountID: $0[1]) }
    }

    /// A bill paid (and maybe refunded since), with the payment it records.
    public struct PaidBill: Sendable, Hashable {
        public var key: PaymentKey
        public var paidFen: Int64
        public var transactionID: TransactionID?
        public var billerAccountID: AccountID
    }

    /// The bills paid on the business days after `after` through `through`.
    public func paidBills(after: ShanghaiCalendar.Date, through: ShanghaiCalendar.Date) throws -> [PaidBill] {
        try Row.fetchAll(db, sql: """
            SELECT b.biller, b.bill_id, b.paid_fen, b.transaction_id, r.account_id FROM bills b JOIN billers r ON r.code = b.biller
            WHERE b.paid_business_date > ? AND b.paid_business_date <= ? AND b.status IN (?, ?)
            """, arguments: [after.iso, through.iso, BillStatus.paid.rawValue, BillStatus.refunded.rawValue])
            .map { PaidBill(key: PaymentKey(biller: $0[0], billID: $0[1]), paidFen: $0[2], transactionID: $0[3], billerAccountID: $0[4]) }
    }

    /// Payments that more than one bill records: each with the bills (`BILLER:BILLID`).
    public func sharedPayments() throws -> [(transactionID: TransactionID, bills: [String])] {
        try Row.fetchAll(db, sql: "SELECT transaction_id, group_concat(biller || ':' || bill_id) FROM bills WHERE transaction_id IS NOT NULL GROUP BY transaction_id HAVING count(*) > 1")
            .map { ($0[0], ($0[1] as String).split(separator: ",").map(String.init)) }
    }

    /// Of `ids`, the payments some bill records.
    public func recordedPayments(among ids: [TransactionID]) throws -> Set<TransactionID> {
        var found: Set<TransactionID> = []
        let unique = Array(Set(ids)).sorted()
        for start in stride(from: 0, to: unique.count, by: 500) {
            let part = Array(unique[start..<min(start + 500, unique.count)])
            let marks = part.map { _ in "?" }.joined(separator: ",")
            found.formUnion(try TransactionID.fetchAll(db, sql: "SELECT transaction_id FROM bills WHERE transaction_id IN (\(marks))", arguments: StatementArguments(part)))
        }
        return found
    }

    /// Bills still unmatched that were staged on or before `date`, oldest first.
    public func unmatched(stagedOnOrBefore date: ShanghaiCalendar.Date, limit: Int) throws -> [(key: PaymentKey, businessDate: String)] {
        try Row.fetchAll(db, sql: "SELECT biller, bill_id, business_date FROM bills WHERE status = ? AND business_date <= ? ORDER BY id LIMIT ?",
                         arguments: [BillStatus.unmatched.rawValue, date.iso, limit])
            .map { (PaymentKey(biller: $0[0], billID: $0[1]), $0[2]) }
    }

    /// What every biller was paid on a business day.
    public func paidFen(on date: ShanghaiCalendar.Date) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT coalesce(sum(paid_fen), 0) FROM bills WHERE paid_business_date = ?", arguments: [date.iso]) ?? 0
    }

    /// A payable bill of a wallet, as a reminder tells it.
    public struct PayableBill: Sendable, Hashable {
        public var key: PaymentKey
        public var dueFen: Int64
        public var dueDate: String
        public var walletID: Int64
    }

    /// Payable bills of a wallet due on or before `date` (`YYYY-MM-DD`), in staging order.
    public func payable(dueOnOrBefore date: String, limit: Int) throws -> [PayableBill] {
        try Row.fetchAll(db, sql: """
            SELECT biller, bill_id, due_fen, due_date, wallet_id FROM bills WHERE status = ? AND due_date <= ? AND wallet_id IS NOT NULL ORDER BY id LIMIT ?
            """, arguments: [BillStatus.payable.rawValue, date, limit])
            .map { PayableBill(key: PaymentKey(biller: $0[0], billID: $0[1]), dueFen: $0[2], dueDate: $0[3], walletID: $0[4]) }
    }

    // MARK: Runs

    public struct Run {
        public var biller: String
        public var feedID: String?
        public var status: String
        public var errorCode: String?
        public var error: String?
    }

    func recordRun(executionID: Int64, biller: String, date: ShanghaiCalendar.Date, feedID: String?, status: String, errorCode: String?, error: String?, at now: TimestampMicros) throws {
        try db.execute(sql: """
            INSERT INTO billing_runs (execution_id, biller, business_date, feed_id, status, error_code, error, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (execution_id, biller) DO UPDATE SET feed_id = excluded.feed_id, status = excluded.status, error_code = excluded.error_code, error = excluded.error, at = excluded.at
            """, arguments: [executionID, biller, date.iso, feedID, status, errorCode, error, now])
    }

    /// The per-biller outcomes of one execution.
    func runs(executionID: Int64) throws -> [Run] {
        try Row.fetchAll(db, sql: "SELECT biller, feed_id, status, error_code, error FROM billing_runs WHERE execution_id = ?", arguments: [executionID])
            .map { Run(biller: $0[0], feedID: $0[1], status: $0[2], errorCode: $0[3], error: $0[4]) }
    }

    /// The latest run's outcome for a biller's day.
    public func lastRun(biller: String, on date: ShanghaiCalendar.Date) throws -> Run? {
        try Row.fetchOne(db, sql: "SELECT biller, feed_id, status, error_code, error FROM billing_runs WHERE biller = ? AND business_date = ? ORDER BY at DESC, execution_id DESC LIMIT 1", arguments: [biller, date.iso])
            .map { Run(biller: $0[0], feedID: $0[1], status: $0[2], errorCode: $0[3], error: $0[4]) }
    }

    // MARK: Payment reports

    /// One row of a report's items, as `PaymentReports.item` reads it.
    struct ReportRow {
        var source: String
        var billID: String
        var outcome: String?
        var reasonCode: String?
        var status: BillStatus?
        var reason: String?
        var paidFen: Int64?
        var paidAt: Int64?
        var transactionID: Int64?
        var refundTransactionID: Int64?
        var paidBusinessDate: String?
        var refundedBusinessDate: String?
    }

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
        SELECT l.source, l.bill_id, l.outcome, l.reason_code, b.status, b.reason, b.paid_fen, b.paid_at, b.transaction_id, b.refund_transaction_id,
            b.paid_business_date, b.refunded_business_date
        FROM listed l LEFT JOIN bills b ON b.biller = ?1 AND b.bill_id = l.bill_id
        WHERE NOT (l.source IN ('bill', 'cancel', 'other') AND b.id IS NULL)
        ORDER BY l.position, b.id
        """

    /// The report rows of a biller's day, read one at a time.
    func reportRows(biller: String, on date: ShanghaiCalendar.Date) throws -> AnyIterator<Result<ReportRow, any Error>> {
        let cursor = try Row.fetchCursor(db, sql: Self.itemsSQL, arguments: [biller, date.iso])
        var failed = false
        return AnyIterator {
            guard !failed else { return nil }
            do {
                guard let row = try cursor.next() else { return nil }
                let status: String? = row[4]
                return .success(ReportRow(source: row[0], billID: row[1], outcome: row[2], reasonCode: row[3], status: try status.map(Self.status), reason: row[5], paidFen: row[6],
                                          paidAt: row[7], transactionID: row[8], refundTransactionID: row[9], paidBusinessDate: row[10], refundedBusinessDate: row[11]))
            } catch {
                failed = true
                return .failure(error)
            }
        }
    }

    /// The report of a biller's day as last written.
    public struct StoredReport {
        public var version: Int
        public var reportID: String
        public var path: String
        public var sha256: Data
        public var createdAt: TimestampMicros
        public var deliveredAt: TimestampMicros?
        public var deliveredTo: String?
        public var paidSumFen: Int64
        public var refundedSumFen: Int64
        public var ledgerHead: String?

        public var isDelivered: Bool { deliveredAt != nil }
    }

    public func report(biller: String, on date: ShanghaiCalendar.Date) throws -> StoredReport? {
        try Row.fetchOne(db, sql: "SELECT version, report_id, path, sha256, created_at, delivered_at, delivered_to, paid_sum_fen, refunded_sum_fen, ledger_head FROM payment_reports WHERE biller = ? AND business_date = ?",
                         arguments: [biller, date.iso])
            .map { StoredReport(version: $0[0], reportID: $0[1], path: $0[2], sha256: $0[3], createdAt: $0[4], deliveredAt: $0[5], deliveredTo: $0[6], paidSumFen: $0[7], refundedSumFen: $0[8], ledgerHead: $0[9]) }
    }

    /// Where every payment report was written, by business day and biller.
    public func reportPaths() throws -> [String] {
        try String.fetchAll(db, sql: "SELECT path FROM payment_reports ORDER BY business_date, biller")
    }

    func undeliveredReports(on date: ShanghaiCalendar.Date) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM payment_reports WHERE business_date = ? AND delivered_at IS NULL", arguments: [date.iso]) ?? 0
    }

    /// Records the report as written (and delivered, when `deliveredTo` is set); every
    /// delivered version is kept in `payment_report_versions`, never replaced.
    func recordReport(_ header: ReportHeaderTotals, reportID: String, path: String, sha256: Data, items: Int, version: Int, deliveredTo: String?, deliveryError: String?, at now: TimestampMicros) throws {
        try db.cachedStatement(sql: """
            INSERT INTO payment_reports (biller, business_date, report_id, path, sha256, items, paid_count, paid_sum_fen, refunded_count, refunded_sum_fen, created_at, delivered_to, delivered_at, delivery_error, version, ledger_head)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (biller, business_date) DO UPDATE SET report_id = excluded.report_id, path = excluded.path, sha256 = excluded.sha256, items = excluded.items,
                paid_count = excluded.paid_count, paid_sum_fen = excluded.paid_sum_fen, refunded_count = excluded.refunded_count, refunded_sum_fen = excluded.refunded_sum_fen,
                created_at = excluded.created_at, delivered_to = excluded.delivered_to, delivered_at = excluded.delivered_at, delivery_error = excluded.delivery_error,
                version = excluded.version, ledger_head = excluded.ledger_head
            """).execute(arguments: [header.biller, header.businessDate, reportID, path, sha256, items, header.paidCount, header.paidSumFen,
                                     header.refundedCount, header.refundedSumFen, header.createdAt, deliveredTo, deliveredTo == nil ? nil : now, deliveryError, version,
                                     header.ledgerHead])
        if deliveredTo != nil {
            try db.cachedStatement(sql: """
                INSERT INTO payment_report_versions (biller, business_date, version, report_id, path, sha256, paid_count, paid_sum_fen, refunded_count, refunded_sum_fen, delivered_to, delivered_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (biller, business_date, version) DO NOTHING
                """).execute(arguments: [header.biller, header.businessDate, version, reportID, path, sha256, header.paidCount, header.paidSumFen,
                                         header.refundedCount, header.refundedSumFen, deliveredTo, now])
        }
    }

    /// The header figures a report row records.
    struct ReportHeaderTotals {
        var biller: String
        var businessDate: String
        var paidCount: Int
        var paidSumFen: Int64
        var refundedCount: Int
        var refundedSumFen: Int64
        var createdAt: TimestampMicros
        var ledgerHead: String?
    }
}
