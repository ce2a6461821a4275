import Foundation
import Ledger
import QDSQL

/// The billing tables, and the only code that names them: bill accounts, feeds and their
/// records and cancels, bills, the nightly runs' per-biller outcomes and the payment
/// reports. Every statement runs in the caller's transaction or snapshot (`db`). What other
/// modules read of billing (reconciliation), they read through its public methods.
public struct BillStore {
    /// The transaction's GRDB handle, for what the wallet's service still takes it for.
    let db: any SQLConnection
    let sql: any SQLConnection

    public init(_ db: any SQLConnection) {
        self.db = db
        sql = db
    }

    // MARK: Bill accounts

    struct Link {
        var id: Int64
        var walletID: Int64
        var autopay: Bool
        var autopayLimitFen: Int64
    }

    func billerExists(_ code: String) throws -> Bool {
        try sql.oneRow("SELECT 1 FROM billers WHERE code = ?", [code]) != nil
    }

    /// The live link of a customer number, whoever holds it.
    func link(biller: String, customerNo: String) throws -> Link? {
        try sql.oneRow("SELECT id, wallet_id, autopay, autopay_limit_fen FROM bill_accounts WHERE biller = ? AND customer_no = ? AND status = 'linked'", [biller, customerNo])
            .map { Link(id: try $0[0], walletID: try $0[1], autopay: try $0[2], autopayLimitFen: try $0[3]) }
    }

    /// A wallet's live links, oldest first.
    func links(walletID: Int64) throws -> [BillingService.BillAccount] {
        try sql.allRows("SELECT id, biller, customer_no, autopay, autopay_limit_fen FROM bill_accounts WHERE wallet_id = ? AND status = 'linked' ORDER BY id", [walletID]).map {
            BillingService.BillAccount(id: try $0[0], biller: try $0[1], customerNo: try $0[2], autopay: try $0[3], autopayLimitFen: try $0[4], status: "linked")
        }
    }

    /// A wallet's live link by its id.
    func link(id: Int64, walletID: Int64) throws -> BillingService.BillAccount? {
        try sql.oneRow("SELECT id, biller, customer_no, autopay, autopay_limit_fen FROM bill_accounts WHERE id = ? AND wallet_id = ? AND status = 'linked'", [id, walletID])
            .map { BillingService.BillAccount(id: try $0[0], biller: try $0[1], customerNo: try $0[2], autopay: try $0[3], autopayLimitFen: try $0[4], status: "linked") }
    }

    func setAutopay(linkID: Int64, autopay: Bool, limitFen: Int64) throws {
        try sql.run("UPDATE bill_accounts SET autopay = ?, autopay_limit_fen = ? WHERE id = ?", [autopay, limitFen, linkID])
    }

    func insertLink(walletID: Int64, biller: String, customerNo: String, autopay: Bool, limitFen: Int64, at: TimestampMicros) throws -> Int64 {
        guard let id = try sql.int64("INSERT INTO bill_accounts (wallet_id, biller, customer_no, autopay, autopay_limit_fen, status, linked_at) VALUES (?, ?, ?, ?, ?, 'linked', ?) RETURNING id",
                                     [walletID, biller, customerNo, autopay, limitFen, at]) else {
            throw LedgerError(.storage, "a new bill account has no id")
        }
        return id
    }

    func unlink(linkID: Int64, at: TimestampMicros) throws {
        try sql.run("UPDATE bill_accounts SET status = 'unlinked', unlinked_at = ? WHERE id = ?", [at, linkID])
    }

    // MARK: Bills

    /// A wallet's bills (its own, and those of the customer numbers it links: bills no wallet
    /// was given yet, and those another wallet had before the number was linked here), newest
    /// first. Each half through its index (`bills_by_wallet`, `bills_by_customer`): a read
    /// that grows with the wallet's bills, not with every bill kept.
    func bills(walletID: Int64, status: BillStatus?, limit: Int) throws -> [BillingService.Bill] {
        let arguments: [any SQLBindable] = status.map { [walletID, $0.rawValue, limit] } ?? [walletID, limit]
        return try sql.allRows(Self.walletBillsSQL(status: status != nil), arguments).map { row in
            BillingService.Bill(biller: try row[0], billId: try row[1], customerNo: try row[2], period: try row[3], amountFen: try row[4], lateFeeFen: try row[5], dueFen: try row[6], dueDate: try row[7],
                                status: try row[8], reason: try row[9], transactionId: try row[10], paidVia: try row[11], discountFen: try row[12], points: try row[13])
        }
    }

    /// The wallet's bills: the wallet bound as `?1`, then the status when `status`, then the
    /// limit.
    static func walletBillsSQL(status: Bool) -> String {
        """
        SELECT b.biller, b.bill_id, b.customer_no, b.period, b.amount_fen, b.late_fee_fen, b.due_fen, b.due_date, b.status, b.reason,
            b.transaction_id, b.paid_via, b.discount_fen, b.points FROM bills b
        WHERE b.id IN (SELECT o.id FROM bills o WHERE o.wallet_id = ?1
                       UNION SELECT c.id FROM bill_accounts a JOIN bills c ON c.biller = a.biller AND c.customer_no = a.customer_no
                       WHERE a.wallet_id = ?1 AND a.status = 'linked')\(status ? " AND b.status = ?2" : "")
        ORDER BY b.id DESC LIMIT \(status ? "?3" : "?2")
        """
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

    /// With other writers at once (PostgreSQL): locks the bills' rows, in id order, until the
    /// transaction ends, so that a bill's status is decided by one transaction at a time
    /// (pay-bill and the night's cancel of the same bill). One writer at a time: nothing to do.
    func lock(rowIDs: [Int64]) throws {
        guard sql.dialect == .postgres, !rowIDs.isEmpty else { return }
        let ids = PostgresText.integerList(Set(rowIDs).sorted(), braces: false)
        try sql.query("SELECT id FROM bills WHERE id = ANY(string_to_array(?, ',')::bigint[]) ORDER BY id FOR UPDATE", [.text(ids)]) { _ in true }
    }

    func bill(_ key: PaymentKey) throws -> BillForPayment? {
        try sql.oneRow("""
            SELECT b.id, b.wallet_id, b.customer_no, b.status, b.transaction_id, b.due_fen, b.due_date, b.district, r.name, r.category, r.account_id
            FROM bills b JOIN billers r ON r.code = b.biller WHERE b.biller = ? AND b.bill_id = ?
            """, [key.biller, key.billID]).map {
            BillForPayment(rowID: try $0[0], walletID: try $0[1], customerNo: try $0[2], status: try Self.status(try $0[3]), transactionID: try $0[4], dueFen: try $0[5], dueDate: try $0[6],
                           district: try $0[7], billerName: try $0[8], category: try $0[9], billerAccountID: try $0[10])
        }
    }

    static func status(_ text: String) throws -> BillStatus {
        guard let status = BillStatus(rawValue: text) else { throw LedgerError(.storage, "a bill has an unknown status", context: String(text.prefix(32))) }
        return status
    }

    /// What autopay took from a wallet on a business day (after discounts).
    ///
    /// Read through the wallets' index of bills, keyed by wallet, status and paid day
    /// (`billing-v11-wallet-paid-day`): the bills the wallet paid that day, whatever it paid
    /// on the days before. Keyed by wallet and status alone, the read took every bill the
    /// wallet ever paid, a night that grew with the months kept. The day is compared through
    /// `coalesce`, as the index keys it, which the index of bills paid by day cannot answer:
    /// planned on statistics taken while few bills were paid (or a generic plan of the
    /// prepared statement), a plain day had PostgreSQL read every bill paid that day, once a
    /// chunk (100,000 bills: 18.5 s of the server's 33 s in this one read).
    func autopayUsed(walletID: Int64, on date: ShanghaiCalendar.Date) throws -> Int64 {
        try sql.int64(Self.autopayUsedSQL(wallets: "?", grouped: false), [walletID, date.iso]) ?? 0
    }

    /// `autopayUsed` for many wallets in a few reads (through the same index); every wallet
    /// asked for is in the answer.
    func autopayUsed(walletIDs: [Int64], on date: ShanghaiCalendar.Date) throws -> [Int64: Int64] {
        var used = Dictionary(walletIDs.map { ($0, Int64(0)) }, uniquingKeysWith: { first, _ in first })
        try sql.forEachRow(Self.autopayUsedSQL(wallets: "{ids}", grouped: true), ids: walletIDs, after: [date.iso]) { row in
            used[try row.int64(0)] = try row.int64(1)
        }
        return used
    }

    /// The autopay read: the wallets' ids bound in `wallets`, then the day.
    static func autopayUsedSQL(wallets: String, grouped: Bool) -> String {
        """
        SELECT \(grouped ? "wallet_id, " : "")coalesce(sum(paid_fen - discount_fen), 0) FROM bills
        WHERE wallet_id IN (\(wallets)) AND status = '\(BillStatus.paid.rawValue)' AND coalesce(paid_business_date, '') = ? AND paid_via = '\(PaidVia.autopay.rawValue)'\(grouped ? " GROUP BY wallet_id" : "")
        """
    }

    /// Whether the wallet ever paid this biller (a refunded payment counts).
    func hasPaid(walletID: Int64, biller: String) throws -> Bool {
        try sql.oneRow("SELECT 1 FROM bills WHERE wallet_id = ? AND biller = ? AND status IN (?, ?) LIMIT 1", [walletID, biller, BillStatus.paid.rawValue, BillStatus.refunded.rawValue]) != nil
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

    /// Marks bills paid, in a few multi-row statements.
    func markPaid(_ paid: [(rowID: Int64, paid: Paid)], at now: TimestampMicros) throws {
        try sql.runRows("""
            UPDATE bills SET status = '\(BillStatus.paid.rawValue)', reason = NULL, wallet_id = v.column2, bill_account_id = v.column3, transaction_id = v.column4, paid_fen = v.column5,
                discount_fen = v.column6, points = v.column7, paid_at = v.column8, paid_via = v.column9, paid_business_date = v.column10, updated_at = v.column8 FROM (VALUES
            """, row: "(CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT), ?, ?)",
            ") AS v WHERE bills.id = v.column1",
            values: paid.map {
                [.integer($0.rowID), .integer($0.paid.walletID), $0.paid.billAccountID.sqlValue, .integer($0.paid.transactionID), .integer($0.paid.paidFen),
                 .integer($0.paid.discountFen), .integer($0.paid.points), .integer(now), .text($0.paid.via.rawValue), .text($0.paid.businessDate.iso)]
            })
    }

    /// Marks bills unmatched (no wallet holds the customer number), or payable with the
    /// reason the resident is told, in a few multi-row statements.
    func markNotPaid(unmatched: [Int64], payable: [(rowID: Int64, reason: PendingReason, walletID: Int64?, billAccountID: Int64?)], at now: TimestampMicros) throws {
        try sql.runRows("UPDATE bills SET status = '\(BillStatus.unmatched.rawValue)', reason = '\(Stager.unknownCustomer)', updated_at = v.column2 FROM (VALUES",
                        row: "(CAST(? AS BIGINT), CAST(? AS BIGINT))", ") AS v WHERE bills.id = v.column1", values: unmatched.map { [.integer($0), .integer(now)] })
        try sql.runRows("UPDATE bills SET status = '\(BillStatus.payable.rawValue)', reason = v.column2, wallet_id = v.column3, bill_account_id = v.column4, updated_at = v.column5 FROM (VALUES",
                        row: "(CAST(? AS BIGINT), ?, CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT))", ") AS v WHERE bills.id = v.column1",
                        values: payable.map { [.integer($0.rowID), .text($0.reason.code), $0.walletID.sqlValue, $0.billAccountID.sqlValue, .integer(now)] })
    }

    func markCancelled(rowID: Int64, on day: ShanghaiCalendar.Date, at now: TimestampMicros) throws {
        try sql.run("UPDATE bills SET status = ?, reason = NULL, cancelled_business_date = ?, updated_at = ? WHERE id = ?", [BillStatus.cancelled.rawValue, day.iso, now, rowID])
    }

    func markRefunded(rowID: Int64, refund: TransactionID, on day: ShanghaiCalendar.Date, at now: TimestampMicros) throws {
        try sql.run("""
            UPDATE bills SET status = ?, refund_transaction_id = ?, refunded_at = ?, refunded_business_date = ?, cancelled_business_date = ?, updated_at = ? WHERE id = ?
            """, [BillStatus.refunded.rawValue, refund, now, day.iso, day.iso, now, rowID])
    }

    // MARK: The nightly run's reads

    /// The bills staged and not yet processed (the processing's progress total), counted
    /// through the index of the new bills alone: the status written as the index names it
    /// and a range of its key (a bound status matched no partial index, and SQLite counted
    /// the status alone through the whole wallets' index: every bill kept).
    func countNew() throws -> Int {
        try sql.int(Self.countNewSQL, []) ?? 0
    }

    /// Each biller's last bill of a business day: the end of the rows its feeds of the day
    /// wrote (a biller none of whose feeds wrote a bill is not named). The bills of the day
    /// are those rows (`business_date` is the feed's): once the processing, which takes them
    /// in row order, is past this row, none of the biller's bills of the day is new.
    func lastBillsOfTheDay(_ date: ShanghaiCalendar.Date) throws -> [String: Int64] {
        var last: [String: Int64] = [:]
        for row in try sql.allRows("SELECT biller, max(last_bill) FROM feeds WHERE business_date = ? AND last_bill IS NOT NULL GROUP BY biller", [date.iso]) {
            last[try row[0]] = try row[1]
        }
        return last
    }

    static let countNewSQL = "SELECT count(*) FROM bills WHERE status = '\(BillStatus.new.rawValue)' AND id > 0"

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

    /// PostgreSQL: refreshes the planner's statistics of the bills once a night's feeds are
    /// staged. Planned on the statistics of before (a few staged bills, or none), the read of
    /// a chunk took every staged bill still new, joined them all and sorted them to keep the
    /// first few thousand: each chunk cost as much as all the bills after it. The wallet's
    /// column too, so that the sums by wallet (`autopayUsed`) are planned as the few rows
    /// they are. Nothing on SQLite, whose plan does not depend on statistics here.
    func refreshStatistics() throws {
        guard sql.dialect == .postgres else { return }
        try sql.execute("ANALYZE bills (id, status, business_date, wallet_id)", [])
    }

    /// The next staged bills of a business date after `afterID`, in id order (through the
    /// index of the new bills, whose predicate the text names as it is, for any plan).
    func newBills(of date: ShanghaiCalendar.Date, after afterID: Int64, limit: Int) throws -> [NewBill] {
        // Read by position (the columns of the select, in order): no lookup by name per bill.
        try sql.allRows("""
            SELECT b.id, b.biller, b.bill_id, b.due_fen, b.due_date, b.district, a.id, a.wallet_id, a.autopay, a.autopay_limit_fen, r.name, r.category, r.account_id
            FROM bills b
            JOIN billers r ON r.code = b.biller
            LEFT JOIN bill_accounts a ON a.biller = b.biller AND a.customer_no = b.customer_no AND a.status = 'linked'
            WHERE b.status = '\(BillStatus.new.rawValue)' AND b.id > ? AND b.business_date = ? ORDER BY b.id LIMIT ?
            """, [afterID, date.iso, limit]).map { row in
            let linkID: Int64? = try row[6]
            return NewBill(rowID: try row[0], biller: try row[1], billID: try row[2], dueFen: try row[3], dueDate: try row[4], district: try row[5],
                           link: try linkID.map { Link(id: $0, walletID: try row[7], autopay: try row[8], autopayLimitFen: try row[9]) },
                           billerName: try row[10], category: try row[11], billerAccountID: try row[12])
        }
    }

    /// What changed in a chunk of new bills since `newBills` read it, read again under the
    /// wallets' locks (other writers at once): the bills no longer new (paid by hand
    /// meanwhile), and whether any link the chunk read was unlinked or changed, or a bill read
    /// without a link has one now. Three reads sent together: the bills and the links through
    /// their primary keys, and only the unlinked bills joined to the links again.
    func changedSince(_ chunk: [NewBill]) throws -> (gone: Set<Int64>, linksChanged: Bool) {
        guard !chunk.isEmpty else { return ([], false) }
        func array(_ ids: [Int64]) -> SQLValue { .text(PostgresText.integerList(ids, braces: true)) }
        let links = chunk.compactMap(\.link)
        let unlinked = chunk.filter { $0.link == nil }.map(\.rowID)
        let gone = try sql.sendAll("SELECT id FROM bills WHERE id = ANY(?::bigint[]) AND status <> '\(BillStatus.new.rawValue)'",
                                   [array(chunk.map(\.rowID))]) { try $0.int64(0) }
        let current = try sql.sendAll("SELECT id, wallet_id, autopay, autopay_limit_fen FROM bill_accounts WHERE id = ANY(?::bigint[]) AND status = 'linked'",
                                      [array(Array(Set(links.map(\.id))).sorted())]) { row in
            Link(id: try row[0], walletID: try row[1], autopay: try row[2], autopayLimitFen: try row[3])
        }
        let linkedNow = try sql.sendAll("""
            SELECT b.id FROM bills b JOIN bill_accounts a ON a.biller = b.biller AND a.customer_no = b.customer_no AND a.status = 'linked'
            WHERE b.id = ANY(?::bigint[]) LIMIT 1
            """, [array(unlinked)]) { try $0.int64(0) }
        var read: [Int64: Link] = [:]
        for link in links { read[link.id] = link }
        let now = try current.get()
        let same = now.count == read.count && now.allSatisfy { link in
            read[link.id].map { $0.walletID == link.walletID && $0.autopay == link.autopay && $0.autopayLimitFen == link.autopayLimitFen } ?? false
        }
        let linkedSince = try linkedNow.get()
        return (Set(try gone.get()), !same || !linkedSince.isEmpty)
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
        try sql.allRows("""
            SELECT c.id, c.feed_id, c.seq, c.biller, c.bill_id, c.business_date, b.id, b.status, b.transaction_id, b.wallet_id, b.paid_fen, b.discount_fen, r.name, r.category
            FROM feed_cancels c LEFT JOIN bills b ON b.biller = c.biller AND b.bill_id = c.bill_id
            JOIN billers r ON r.code = c.biller
            WHERE c.outcome IS NULL AND c.id > ? AND c.business_date = ? ORDER BY c.id LIMIT ?
            """, [afterID, date.iso, limit]).map { row in
            let billRow: Int64? = try row[6]
            return Cancel(id: try row[0], feedID: try row[1], seq: try row[2], key: PaymentKey(biller: try row[3], billID: try row[4]), day: try row[5],
                          bill: try billRow.map { CancelledBill(rowID: $0, status: try Self.status(try row[7]), transactionID: try row[8], walletID: try row[9], paidFen: (try row[10] as Int64?) ?? 0, discountFen: (try row[11] as Int64?) ?? 0) },
                          billerName: try row[12], category: try row[13])
        }
    }

    func setCancelOutcome(id: Int64, outcome: String) throws {
        try sql.run("UPDATE feed_cancels SET outcome = ? WHERE id = ?", [outcome, id])
    }

    func recordRejectedCancel(feedID: String, seq: Int, billID: String, reason: String) throws {
        try sql.run("INSERT INTO feed_records (feed_id, seq, kind, bill_id, outcome, reason) VALUES (?, ?, 'cancel', ?, 'rejected', ?)", [feedID, seq, billID, reason])
    }

    // MARK: Feeds

    /// The SHA-256 a feed was ingested with, by its key (`BILLER/FEEDID`).
    func feedDigest(_ key: String) throws -> Data? {
        try sql.dataValue("SELECT sha256 FROM feeds WHERE feed_id = ?", [key])
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
        try sql.run("""
            INSERT INTO feeds (feed_id, biller, business_date, sha256, bytes, bills, cancels, ctrl_sum_fen, created_at, ingested_at, execution_id)
            VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?)
            """, [feed.key, feed.biller, feed.businessDate, feed.sha256, feed.bytes, feed.controlSumFen, feed.createdAt, feed.ingestedAt, feed.executionID])
    }

    func setFeedCounts(_ key: String, bills: Int, cancels: Int) throws {
        try sql.run("UPDATE feeds SET bills = ?, cancels = ? WHERE feed_id = ?", [bills, cancels, key])
    }

    /// Stages a feed's bills: each bill is buffered, and every 4,096 are written to the
    /// feed's staging table (a temporary table of this connection, keyed by sequence number
    /// and with no other index) as one `COPY` on PostgreSQL, multi-row `INSERT`s on SQLite.
    /// When the feed has been read, `finish` indexes its bill ids (load, then index: one
    /// sort, no index kept up a row at a time) and marks the repeats, then moves the rest into
    /// `bills` in one statement, ordered by the wallet each customer number is linked to
    /// (then by sequence number), so that the processing step, which goes in id order, finds a
    /// chunk's bills and their wallets' rows together. A bill whose id was staged before (in
    /// an earlier feed, or earlier in this one) writes nothing and is handed to the caller
    /// with the row it collided with.
    final class Stager {
        let sql: any SQLConnection
        let now: TimestampMicros
        /// Bills written to `bills` (known once `finish` has run).
        private(set) var staged = 0
        private var pending: [Staged] = []
        /// Bills of the current feed written to the staging table (repeats included).
        private var feedRows = 0
        private var begun = false
        static let group = 4096
        static let columns = "biller, bill_id, feed_id, seq, business_date, customer_no, customer_name, district, period, usage, usage_unit, amount_fen, late_fee_fen, due_fen, issue_date, due_date"
        static let columnList = columns.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        /// The reason an unmatched bill carries.
        static let unknownCustomer = "UNKNOWN_CUSTOMER"

        init(sql: any SQLConnection, now: TimestampMicros) {
            self.sql = sql
            self.now = now
        }

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

        /// The staged bill a repeated bill id collided with.
        struct Existing {
            var feedKey: String
            var seq: Int
            var dueFen: Int64
            var customerNo: String
        }

        /// Buffers a bill; a full buffer is written to the staging table.
        func stage(_ bill: Staged) throws {
            if !begun { try begin() }
            pending.append(bill)
            feedRows += 1
            if pending.count >= Self.group { try flush() }
        }

        /// The staging table, made once a connection (temporary: it lives and dies with the
        /// connection, and what the feed's transaction put in it goes if it rolls back), and
        /// emptied for each feed. `repeat_of` is set by `finish` on a bill whose id came
        /// earlier in the feed: the sequence number of its first.
        private func begin() throws {
            let postgres = sql.dialect == .postgres
            // Asked first: PostgreSQL's `IF NOT EXISTS` would print a notice for every feed.
            let made = try sql.one(postgres ? "SELECT CASE WHEN to_regclass('pg_temp.bills_staging') IS NULL THEN 0 ELSE 1 END" : "SELECT count(*) FROM sqlite_temp_master WHERE name = 'bills_staging'") { try $0.int64(0) } == 1
            if !made { try sql.run("""
                CREATE TEMP TABLE bills_staging (\(postgres ? "seq BIGINT PRIMARY KEY" : "seq INTEGER PRIMARY KEY"), biller TEXT NOT NULL, bill_id TEXT NOT NULL, feed_id TEXT NOT NULL,
                    business_date TEXT NOT NULL, customer_no TEXT NOT NULL, customer_name TEXT NOT NULL, district TEXT NOT NULL, period TEXT NOT NULL,
                    usage TEXT NOT NULL, usage_unit TEXT NOT NULL, amount_fen BIGINT NOT NULL, late_fee_fen BIGINT NOT NULL, due_fen BIGINT NOT NULL,
                    issue_date TEXT NOT NULL, due_date TEXT NOT NULL, repeat_of BIGINT)
                """, []) }
            // Made and dropped by `finish`; dropped here too in case a feed failed in between,
            // so that no load keeps it up.
            try sql.run("DROP INDEX IF EXISTS bills_staging_by_id", [])
            try sql.run("DELETE FROM bills_staging", [])
            feedRows = 0
            begun = true
        }

        /// Writes what is buffered to the staging table.
        private func flush() throws {
            guard !pending.isEmpty else { return }
            try sql.copyRows(into: "bills_staging", columns: Self.columnList, rows: pending.map { bill in
                [.text(bill.biller), .text(bill.billID), .text(bill.feedKey), .integer(Int64(bill.seq)), .text(bill.businessDate), .text(bill.customerNo),
                 .text(bill.customerName), .text(bill.district), .text(bill.period), .text(bill.usage), .text(bill.usageUnit), .integer(bill.amountFen),
                 .integer(bill.lateFeeFen), .integer(bill.dueFen), .text(bill.issueDate), .text(bill.dueDate)]
            })
            pending.removeAll(keepingCapacity: true)
        }

        /// Finds the feed's repeated bills, writes the rest to `bills` in the order of the
        /// wallet each customer number is linked to now (0 when none, first), then of
        /// sequence number; and hands `collided`, in sequence order and a thousand at a time,
        /// each bill repeated inside the feed (with the bill an earlier feed staged under that
        /// id, if any, else with its first in this feed), then each bill whose id an earlier
        /// feed had staged; and keeps the ids of the feed's first and last bill moved with the
        /// feed (`feedKey`), its bills' range. Call it before the feed's counts are read.
        func finish(feedKey: String, collided: (Staged, Existing) throws -> Void) throws {
            guard begun else { return }
            try flush()
            let columns = Self.columnList.map { "t." + $0 }.joined(separator: ", ")
            // The feed's ids indexed once, loaded (one sort, not an index kept up a row at a
            // time); only the repeats are written.
            try sql.run("CREATE INDEX bills_staging_by_id ON bills_staging (biller, bill_id)", [])
            let repeats = try sql.run("""
                UPDATE bills_staging SET repeat_of = d.first
                FROM (SELECT biller, bill_id, min(seq) AS first FROM bills_staging GROUP BY biller, bill_id HAVING count(*) > 1) d
                WHERE bills_staging.biller = d.biller AND bills_staging.bill_id = d.bill_id AND bills_staging.seq > d.first
                """, [])
            if repeats > 0 { try forEachCollision("""
                SELECT \(columns), coalesce(b.feed_id, f.feed_id), coalesce(b.seq, f.seq), coalesce(b.due_fen, f.due_fen), coalesce(b.customer_no, f.customer_no)
                FROM bills_staging t JOIN bills_staging f ON f.seq = t.repeat_of
                LEFT JOIN bills b ON b.biller = t.biller AND b.bill_id = t.bill_id
                WHERE t.repeat_of IS NOT NULL AND t.seq > ? ORDER BY t.seq LIMIT 1000
                """, collided) }
            // What the link alone decides is written here, as the processing would decide
            // it, so that the processing reads and rewrites only the bills it may pay: a bill
            // no wallet has linked is unmatched; one whose link has autopay off, or a limit
            // below the amount due, is payable for the wallet with the reason (the first two
            // rules of `BillPayment.decide`, in its order). A link made or changed after this
            // moment finds the bill as the processing would have left it a moment earlier.
            let before = try sql.int64("SELECT coalesce(max(id), 0) FROM bills", []) ?? 0
            let moved = try sql.run(Self.moveSQL(columns: columns), [now])
            staged += moved
            if moved > 0 {
                // Through the table's key after the last id before the move, from each end:
                // the feed's rows are all there (on PostgreSQL among those of another feed
                // moved at the same moment, if any).
                let first = try sql.int64("SELECT id FROM bills WHERE id > ? AND feed_id = ? ORDER BY id LIMIT 1", [before, feedKey])
                let last = try sql.int64("SELECT id FROM bills WHERE id > ? AND feed_id = ? ORDER BY id DESC LIMIT 1", [before, feedKey])
                guard let first, let last else {
                    throw LedgerError(.corrupt, "a feed's moved bills are not found after its move", context: feedKey)
                }
                try sql.run("UPDATE feeds SET first_bill = ?, last_bill = ? WHERE feed_id = ?", [first, last, feedKey])
            }
            // A bill not repeated inside the feed was left out of `bills` only for a row its
            // key already had: when every one went in, none collided, and the search for the
            // collisions (a lookup of every bill of the feed by key) is not made.
            if moved < feedRows - repeats { try forEachCollision("""
                SELECT \(columns), b.feed_id, b.seq, b.due_fen, b.customer_no
                FROM bills_staging t JOIN bills b ON b.biller = t.biller AND b.bill_id = t.bill_id
                WHERE t.repeat_of IS NULL AND t.seq > ? AND NOT (b.feed_id = t.feed_id AND b.seq = t.seq) ORDER BY t.seq LIMIT 1000
                """, collided) }
            try sql.run("DROP INDEX bills_staging_by_id", [])
            try sql.run("DELETE FROM bills_staging", [])
            begun = false
        }

        /// The feed's move from staging into `bills`, in wallet order, each bill with the
        /// state its link alone decides (see `finish`); `now` bound.
        static func moveSQL(columns: String) -> String {
            let decided = "a.autopay = 0 OR t.due_fen > a.autopay_limit_fen"
            return """
                INSERT INTO bills (\(Self.columns), status, reason, wallet_id, bill_account_id, updated_at)
                SELECT \(columns),
                    CASE WHEN a.id IS NULL THEN '\(BillStatus.unmatched.rawValue)' WHEN \(decided) THEN '\(BillStatus.payable.rawValue)' ELSE '\(BillStatus.new.rawValue)' END,
                    CASE WHEN a.id IS NULL THEN '\(Self.unknownCustomer)' WHEN a.autopay = 0 THEN '\(PendingReason.autopayOff.code)'
                         WHEN t.due_fen > a.autopay_limit_fen THEN '\(PendingReason.overAutopayLimit.code)' END,
                    CASE WHEN \(decided) THEN a.wallet_id END, CASE WHEN \(decided) THEN a.id END, CAST(? AS BIGINT)
                FROM bills_staging t LEFT JOIN bill_accounts a ON a.biller = t.biller AND a.customer_no = t.customer_no AND a.status = 'linked'
                WHERE t.repeat_of IS NULL ORDER BY coalesce(a.wallet_id, 0), t.seq
                ON CONFLICT (biller, bill_id) DO NOTHING
                """
        }

        /// Pages through a query of staged bills and what each collided with, by sequence
        /// number, a thousand at a time.
        private func forEachCollision(_ query: String, _ collided: (Staged, Existing) throws -> Void) throws {
            var after = -1
            while true {
                let repeats = try sql.all(query, [after]) { row in
                    (Staged(biller: try row.text(0), billID: try row.text(1), feedKey: try row.text(2), seq: try row.int(3), businessDate: try row.text(4),
                            customerNo: try row.text(5), customerName: try row.text(6), district: try row.text(7), period: try row.text(8), usage: try row.text(9),
                            usageUnit: try row.text(10), amountFen: try row.int64(11), lateFeeFen: try row.int64(12), dueFen: try row.int64(13),
                            issueDate: try row.text(14), dueDate: try row.text(15)),
                     Existing(feedKey: try row.text(16), seq: try row.int(17), dueFen: try row.int64(18), customerNo: try row.text(19)))
                }
                for (bill, existing) in repeats { try collided(bill, existing) }
                guard repeats.count == 1000, let last = repeats.last else { break }
                after = last.0.seq
            }
        }

        /// A record of the feed that was not staged as a bill, and why.
        func record(feedKey: String, seq: Int, kind: String, billID: String, outcome: String, reason: String) throws {
            try sql.run("INSERT INTO feed_records (feed_id, seq, kind, bill_id, outcome, reason) VALUES (?, ?, ?, ?, ?, ?)", [feedKey, seq, kind, billID, outcome, reason])
        }

        func cancel(feedKey: String, seq: Int, key: PaymentKey, reason: String, businessDate: String) throws {
            try sql.run("INSERT INTO feed_cancels (feed_id, seq, biller, bill_id, reason, business_date) VALUES (?, ?, ?, ?, ?, ?)", [feedKey, seq, key.biller, key.billID, reason, businessDate])
        }
    }

    /// A bill a feed's move left payable for a wallet (its link decided it), as its notice
    /// needs it.
    struct DecidedAtMove {
        var rowID: Int64
        var key: PaymentKey
        var dueFen: Int64
        var dueDate: String
        var reason: String
        var walletID: Int64
    }

    /// The bills of a feed its move left payable for a wallet, `page` at a time in row order,
    /// through the feed's range of ids (streamed: memory bounded by the page, whatever the
    /// feed). Right after the move these are the feed's only payable bills.
    func forEachDecidedAtMove(feedKey: String, page: Int, _ body: ([DecidedAtMove]) throws -> Void) throws {
        let cursor = try sql.cursor(Self.decidedAtMoveSQL, [feedKey.sqlValue])
        var bills: [DecidedAtMove] = []
        bills.reserveCapacity(page)
        while let row = try cursor.next() {
            guard let walletID: Int64 = try row[6] else { continue }
            bills.append(DecidedAtMove(rowID: try row.int64(0), key: PaymentKey(biller: try row.text(1), billID: try row.text(2)), dueFen: try row.int64(3),
                                       dueDate: try row.text(4), reason: try row.text(5), walletID: walletID))
            if bills.count >= page {
                try body(bills)
                bills.removeAll(keepingCapacity: true)
            }
        }
        if !bills.isEmpty { try body(bills) }
    }

    /// Every one of them has a wallet; the text does not say so, or PostgreSQL may read the
    /// feed's bills through the index of every payable bill with a wallet (`bills_to_remind`,
    /// whose predicate the condition would then imply): a read that grows with the bills kept.
    static let decidedAtMoveSQL = """
        SELECT b.id, b.biller, b.bill_id, b.due_fen, b.due_date, b.reason, b.wallet_id FROM feeds f JOIN bills b ON \(feedsBills("f", "b"))
        WHERE f.feed_id = ? AND b.status = '\(BillStatus.payable.rawValue)' ORDER BY b.id
        """

    /// The join of a feed (`feed`, a row of `feeds`) and its bills (`bill`): the feed's
    /// range of ids, each row's feed compared (on PostgreSQL the range may hold bills of a
    /// feed moved at the same moment).
    static func feedsBills(_ feed: String, _ bill: String) -> String {
        "\(bill).id BETWEEN \(feed).first_bill AND \(feed).last_bill AND \(bill).feed_id = \(feed).feed_id"
    }

    /// The stager of a feed: its statements are prepared on first use and kept by the connection.
    func stager(at now: TimestampMicros) -> Stager { Stager(sql: sql, now: now) }

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
        try sql.texts("SELECT feed_id FROM feeds WHERE biller = ? AND business_date = ? ORDER BY ingested_at, feed_id", [biller, date.iso]).map(Self.shownFeedID)
    }

    public struct FeedTotals {
        public var feedID: String
        public var bills: Int
        public var controlSumFen: Int64
    }

    /// A biller's feeds of a day, in FeedId order, with the totals their headers declared.
    public func feeds(biller: String, on date: ShanghaiCalendar.Date) throws -> [FeedTotals] {
        try sql.allRows("SELECT feed_id, bills, ctrl_sum_fen FROM feeds WHERE biller = ? AND business_date = ?", [biller, date.iso])
            .map { FeedTotals(feedID: Self.shownFeedID(try $0[0]), bills: try $0[1], controlSumFen: try $0[2]) }
            .sorted { $0.feedID < $1.feedID }
    }

    public func feedCount(biller: String, on date: ShanghaiCalendar.Date) throws -> Int {
        try sql.int("SELECT count(*) FROM feeds WHERE biller = ? AND business_date = ?", [biller, date.iso]) ?? 0
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
        let keys = try sql.texts("SELECT feed_id FROM feeds WHERE biller = ? AND business_date = ?", [biller, date.iso])
        for key in keys {
            for row in try sql.allRows("""
                SELECT b.status, b.reason, count(*), coalesce(sum(b.due_fen), 0), count(b.wallet_id), coalesce(sum(CASE WHEN b.wallet_id IS NOT NULL THEN b.due_fen END), 0)
                FROM feeds f JOIN bills b ON \(Self.feedsBills("f", "b")) WHERE f.feed_id = ? GROUP BY b.status, b.reason
                """, [key]) {
                let count: Int = try row[2], fen: Int64 = try row[3]
                day.byStatus.append((try Self.status(try row[0]), try row[1], count, fen))
                day.staged.count += count
                day.staged.dueFen += fen
                day.matched.count += try row[4] as Int
                day.matched.dueFen += try row[5] as Int64
            }
            day.rejectedRecords += try sql.int("SELECT count(*) FROM feed_records WHERE feed_id = ? AND outcome IN ('rejected', 'duplicate_in_feed')", [key]) ?? 0
            day.billRecords += try sql.int("SELECT count(*) FROM feed_records WHERE feed_id = ? AND kind = 'bill'", [key]) ?? 0
        }
        return day
    }

    // MARK: Day totals

    /// What a biller's bills moved on a business day: payments made that day, refunds made
    /// that day, cancels of that day. The one sum the summary, the report and the
    /// reconciliation read.
    public func dayTotals(biller: String, on date: ShanghaiCalendar.Date) throws -> DayTotals {
        var totals = DayTotals()
        if let row = try sql.oneRow("""
            SELECT count(*), coalesce(sum(paid_fen), 0),
                count(CASE WHEN paid_via = 'autopay' THEN 1 END), coalesce(sum(CASE WHEN paid_via = 'autopay' THEN paid_fen END), 0),
                coalesce(sum(CASE WHEN paid_via = 'autopay' THEN discount_fen END), 0), coalesce(sum(CASE WHEN paid_via = 'autopay' THEN points END), 0),
                count(CASE WHEN paid_via = 'manual' THEN 1 END), coalesce(sum(CASE WHEN paid_via = 'manual' THEN paid_fen END), 0)
            FROM bills WHERE biller = ? AND paid_business_date = ?
            """, [biller, date.iso]) {
            totals.paidCount = try row[0]
            totals.paidFen = try row[1]
            totals.autopayCount = try row[2]
            totals.autopayFen = try row[3]
            totals.autopayDiscountFen = try row[4]
            totals.autopayPoints = try row[5]
            totals.manualCount = try row[6]
            totals.manualFen = try row[7]
        }
        if let row = try sql.oneRow("SELECT count(*), coalesce(sum(paid_fen), 0) FROM bills WHERE biller = ? AND refunded_business_date = ?", [biller, date.iso]) {
            totals.refundedCount = try row[0]
            totals.refundedFen = try row[1]
        }
        if let row = try sql.oneRow("""
            SELECT count(*), count(CASE WHEN status = ?3 THEN 1 END), coalesce(sum(CASE WHEN status = ?3 THEN due_fen END), 0)
            FROM bills WHERE biller = ?1 AND cancelled_business_date = ?2
            """, [biller, date.iso, BillStatus.cancelled.rawValue]) {
            totals.cancelledCount = try row[0]
            totals.cancelledUnpaidCount = try row[1]
            totals.cancelledUnpaidFen = try row[2]
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
        try sql.allRows("SELECT code, account_id FROM billers ORDER BY code").map { BillerAccount(code: try $0[0], accountID: try $0[1]) }
    }

    /// A bill paid (and maybe refunded since), with the payment it records.
    public struct PaidBill: Sendable, Hashable {
        public var key: PaymentKey
        public var paidFen: Int64
        public var transactionID: TransactionID?
        public var billerAccountID: AccountID
    }

    /// The bills paid on the business days after `after` through `through`, handed to `body`
    /// at most `page` at a time: day by day and biller by biller (a payment needs its biller's
    /// account), each through the index of the days bills were paid on, in id order. Memory is
    /// bounded by the page, not by the month, and the read does not grow with the months kept.
    public func forEachPaidBillPage(after: ShanghaiCalendar.Date, through: ShanghaiCalendar.Date, page: Int = 5_000, _ body: ([PaidBill]) throws -> Void) throws {
        let billers = try billers()
        var day = after.adding(days: 1)
        while day.daysSinceEpoch <= through.daysSinceEpoch {
            for biller in billers {
                var last: Int64 = 0
                while true {
                    var bills: [PaidBill] = []
                    for row in try sql.allRows("""
                        SELECT id, bill_id, paid_fen, transaction_id FROM bills
                        WHERE biller = ? AND paid_business_date = ? AND status IN (?, ?) AND id > ? ORDER BY id LIMIT ?
                        """, [biller.code, day.iso, BillStatus.paid.rawValue, BillStatus.refunded.rawValue, last, page]) {
                        last = try row[0]
                        bills.append(PaidBill(key: PaymentKey(biller: biller.code, billID: try row[1]), paidFen: try row[2], transactionID: try row[3], billerAccountID: biller.accountID))
                    }
                    if !bills.isEmpty { try body(bills) }
                    if bills.count < page { break }
                }
            }
            day = day.adding(days: 1)
        }
    }

    /// Of `ids` (ledger transactions), the payments some bill records: through the bills'
    /// unique index of their payments, 500 a statement.
    public func recordedPayments(among ids: [TransactionID]) throws -> Set<TransactionID> {
        var found: Set<TransactionID> = []
        let unique = Array(Set(ids)).sorted()
        for start in stride(from: 0, to: unique.count, by: 500) {
            let part = Array(unique[start..<min(start + 500, unique.count)])
            found.formUnion(try sql.int64s(Self.recordedPaymentsSQL(marks: part.map { _ in "?" }.joined(separator: ",")), part))
        }
        return found
    }

    /// Which of the payments `marks` names some bill records.
    static func recordedPaymentsSQL(marks: String) -> String {
        "SELECT transaction_id FROM bills WHERE transaction_id IN (\(marks))"
    }

    /// Bills still unmatched that were staged on or before `date`, oldest first.
    public func unmatched(stagedOnOrBefore date: ShanghaiCalendar.Date, limit: Int) throws -> [(key: PaymentKey, businessDate: String)] {
        try sql.allRows("SELECT biller, bill_id, business_date FROM bills WHERE status = ? AND business_date <= ? ORDER BY id LIMIT ?", [BillStatus.unmatched.rawValue, date.iso, limit])
            .map { (PaymentKey(biller: try $0[0], billID: try $0[1]), try $0[2]) }
    }

    /// What every biller was paid on a business day, biller by biller through the index of
    /// the days paid on (as in `forEachPaidBillPage`).
    public func paidFen(on date: ShanghaiCalendar.Date) throws -> Int64 {
        try sql.int64("SELECT coalesce(sum(b.paid_fen), 0) FROM billers r CROSS JOIN bills b WHERE b.biller = r.code AND b.paid_business_date = ?", [date.iso]) ?? 0
    }

    /// A payable bill of a wallet, as a reminder tells it.
    public struct PayableBill: Sendable, Hashable {
        /// The bill's row.
        public var id: Int64
        public var key: PaymentKey
        public var dueFen: Int64
        public var dueDate: String
        public var walletID: Int64
    }

    /// How far a payable bill's reminders went: none yet, told it is due soon, told it is
    /// overdue (the last: nothing more is sent).
    public enum ReminderStage: Int64, Sendable {
        case none = 0, dueSoon = 1, overdue = 2
    }

    /// Payable bills of a wallet whose reminders stand at `stage`, due on or before `date`
    /// (`YYYY-MM-DD`), soonest due first: a page at most `limit` long. Read through the index
    /// of the bills waiting by stage and due date (`bills_to_remind`), which the status and the
    /// stage written as literals let a planner use: a page reads the bills it returns, not the
    /// payable bills not yet due nor those already reminded. The page starts after the bill
    /// (`afterDate`, `afterID`) in that order ("", 0: from the first), so the pages of a run
    /// follow each other; a run moves each bill it read to its next stage (`markReminded`), so
    /// the next run does not read it again.
    public func toRemind(at stage: ReminderStage, dueOnOrBefore date: String, afterDate: String = "", afterID: Int64 = 0, limit: Int) throws -> [PayableBill] {
        try sql.allRows(Self.toRemindSQL(stage), [date, afterDate, afterID, limit])
            .map { PayableBill(id: try $0[0], key: PaymentKey(biller: try $0[1], billID: try $0[2]), dueFen: try $0[3], dueDate: try $0[4], walletID: try $0[5]) }
    }

    /// The page of `toRemind(at:dueOnOrBefore:afterDate:afterID:limit:)` at one stage: due
    /// date, after date, after id, limit.
    static func toRemindSQL(_ stage: ReminderStage) -> String {
        """
        SELECT id, biller, bill_id, due_fen, due_date, wallet_id FROM bills
        WHERE status = '\(BillStatus.payable.rawValue)' AND wallet_id IS NOT NULL AND reminded = \(stage.rawValue)
          AND due_date <= ? AND (due_date, id) > (?, ?)
        ORDER BY due_date, id LIMIT ?
        """
    }

    /// Records that these bills were reminded (in the transaction that queues their
    /// messages): those due before `today` (`YYYY-MM-DD`) as told they are overdue, the others
    /// as told they are due soon. One pass in id order, the order other writers lock bills in.
    public func markReminded(_ ids: [Int64], overdueBefore today: String) throws {
        try sql.forEachRow("""
            UPDATE bills SET reminded = CASE WHEN due_date < ? THEN \(ReminderStage.overdue.rawValue) ELSE \(ReminderStage.dueSoon.rawValue) END
            WHERE id IN ({ids})
            """, ids: ids, before: [today]) { _ in }
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
        try sql.run("""
            INSERT INTO billing_runs (execution_id, biller, business_date, feed_id, status, error_code, error, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (execution_id, biller) DO UPDATE SET feed_id = excluded.feed_id, status = excluded.status, error_code = excluded.error_code, error = excluded.error, at = excluded.at
            """, [executionID, biller, date.iso, feedID, status, errorCode, error, now])
    }

    /// The per-biller outcomes of one execution.
    func runs(executionID: Int64) throws -> [Run] {
        try sql.allRows("SELECT biller, feed_id, status, error_code, error FROM billing_runs WHERE execution_id = ?", [executionID])
            .map { Run(biller: try $0[0], feedID: try $0[1], status: try $0[2], errorCode: try $0[3], error: try $0[4]) }
    }

    /// The latest run's outcome for a biller's day.
    public func lastRun(biller: String, on date: ShanghaiCalendar.Date) throws -> Run? {
        try sql.oneRow("SELECT biller, feed_id, status, error_code, error FROM billing_runs WHERE biller = ? AND business_date = ? ORDER BY at DESC, execution_id DESC LIMIT 1", [biller, date.iso])
            .map { Run(biller: try $0[0], feedID: try $0[1], status: try $0[2], errorCode: try $0[3], error: try $0[4]) }
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
    ///
    /// A bill staged by one of the day's feeds is listed at its own position, with what its
    /// row says, and no other record of the day naming it is: a feed that refused the bill
    /// (say, its customer number had a digit too few) and a later feed of the day that sent it
    /// again, valid, leave one item, the bill, paid or not. Listed at the refusal, as the
    /// first of its records, the bill's payment was missing from a report whose header
    /// counted it: the report was never delivered, and the run failed every time.
    ///
    /// Another record or cancel is listed when no record of the day naming its bill came
    /// before it (`earlier`: feeds in the order they were ingested, then by feed id, should
    /// two share the time, records in the order of their feed). A bill and its cancel in
    /// another feed ingested at the same moment are one item, the bill, which says it was
    /// cancelled or refunded. (At one position of one feed, a cancel of an unknown bill and
    /// its rejection record are both first; the cancel, naming no bill, is not listed.) Each
    /// of these is asked through the records', cancels' and bills' indexes by bill id, for the
    /// few records and cancels; the day's bills are neither ranked nor sorted by bill id,
    /// and each carries its own columns (sorted once, in the report's order).
    ///
    /// The bills paid or refunded that day are found through the indexes of each day, one
    /// branch each: as one condition (paid that day or refunded that day), SQLite read every
    /// bill the biller ever sent, a cost that grew with the months kept.
    ///
    /// Whether a record of the day names a bill paid through another path is asked of the
    /// tables' indexes (the bill's own feed, the records and cancels by bill id), never of the
    /// day's records as a list: as `bill_id NOT IN (SELECT bill_id FROM records)`, PostgreSQL
    /// keeps the list hashed only while its estimate fits in `work_mem` (about 65,000 bill ids
    /// of a biller's day by default), and beyond that scans it whole for every such bill.
    static func itemsSQL(billOf: (_ billID: String, _ kept: Bool) -> String) -> String {
        let columns = "b.id, b.status, b.reason, b.paid_fen, b.paid_at, b.transaction_id, b.refund_transaction_id, b.paid_business_date, b.refunded_business_date"
        // A bill staged by one of the day's feeds under `billID`: it is the item.
        func stagedToday(_ billID: String) -> String {
            "EXISTS (SELECT 1 FROM bills s JOIN day e ON e.feed_id = s.feed_id WHERE s.biller = ?1 AND s.bill_id = \(billID))"
        }
        // No record or cancel of the day naming `billID` (other than a repeat inside its
        // feed) came before the position (`d`, `seq`).
        func firstRecord(_ billID: String, at seq: String) -> String {
            """
            NOT EXISTS (SELECT 1 FROM feed_records s JOIN day e ON e.feed_id = s.feed_id
                            WHERE s.bill_id = \(billID) AND s.outcome <> 'duplicate_in_feed' AND \(earlier(seq)))
              AND NOT EXISTS (SELECT 1 FROM feed_cancels s JOIN day e ON e.feed_id = s.feed_id WHERE s.bill_id = \(billID) AND \(earlier(seq)))
            """
        }
        return """
            WITH day AS (SELECT feed_id, ingested_at, first_bill, last_bill FROM feeds WHERE biller = ?1 AND business_date = ?2),
            items AS (
                SELECT d.ingested_at, d.feed_id, b.seq, 'bill' AS source, b.bill_id, NULL AS outcome, NULL AS reason_code, \(columns)
                FROM day d JOIN bills b ON \(feedsBills("d", "b"))
                UNION ALL
                SELECT d.ingested_at, d.feed_id, r.seq, 'record', r.bill_id, r.outcome, r.reason, \(columns)
                FROM day d JOIN feed_records r ON r.feed_id = d.feed_id \(billOf("r.bill_id", true))
                WHERE r.outcome <> 'duplicate_in_feed' AND NOT \(stagedToday("r.bill_id")) AND \(firstRecord("r.bill_id", at: "r.seq"))
                UNION ALL
                SELECT d.ingested_at, d.feed_id, c.seq, 'cancel', c.bill_id, c.outcome, NULL, \(columns)
                FROM day d JOIN feed_cancels c ON c.feed_id = d.feed_id \(billOf("c.bill_id", false))
                WHERE NOT \(stagedToday("c.bill_id")) AND \(firstRecord("c.bill_id", at: "c.seq"))
                UNION ALL
                SELECT 9223372036854775807, '', 0, 'other', b.bill_id, NULL, NULL, \(columns)
                FROM (SELECT id FROM bills WHERE biller = ?1 AND paid_business_date = ?2
                      UNION ALL SELECT id FROM bills WHERE biller = ?1 AND refunded_business_date = ?2 AND (paid_business_date IS NULL OR paid_business_date <> ?2)) o
                JOIN bills b ON b.id = o.id
                WHERE NOT EXISTS (SELECT 1 FROM day e WHERE e.feed_id = b.feed_id)
                  AND NOT EXISTS (SELECT 1 FROM feed_records s JOIN day e ON e.feed_id = s.feed_id WHERE s.bill_id = b.bill_id AND s.outcome <> 'duplicate_in_feed')
                  AND NOT EXISTS (SELECT 1 FROM feed_cancels s JOIN day e ON e.feed_id = s.feed_id WHERE s.bill_id = b.bill_id)
            )
            SELECT source, bill_id, outcome, reason_code, status, reason, paid_fen, paid_at, transaction_id, refund_transaction_id, paid_business_date, refunded_business_date
            FROM items ORDER BY ingested_at, feed_id, seq, id
            """
    }

    /// The record `s` of the feed `e` came before the position `seq` of the feed `d`: the
    /// feeds in the order they were ingested, then by feed id, then the records of a feed.
    static func earlier(_ seq: String) -> String { "(e.ingested_at, e.feed_id, s.seq) < (d.ingested_at, d.feed_id, \(seq))" }

    /// The bill a record or cancel names, found through the bills' key (`kept`: the record is
    /// listed without one; a cancel of an unknown bill is not). On PostgreSQL a lateral
    /// subquery that a LIMIT keeps apart (the key is unique: at most one row either way), run
    /// once a record: joined plainly and planned on statistics that put a biller's bills at a
    /// few rows, the biller's bills were read once, kept, and scanned whole for every item of
    /// the day (200,000 bills' reports: 64 s instead of 3.5 s).
    static func billOf(_ billID: String, kept: Bool) -> String { "\(kept ? "LEFT " : "")JOIN bills b ON b.biller = ?1 AND b.bill_id = \(billID)" }
    static func billOfPostgres(_ billID: String, kept: Bool) -> String {
        """
        \(kept ? "LEFT " : "")JOIN LATERAL (SELECT id, status, reason, paid_fen, paid_at, transaction_id, refund_transaction_id, paid_business_date, refunded_business_date
                           FROM bills WHERE biller = ?1 AND bill_id = \(billID) LIMIT 1) b ON true
        """
    }

    /// The report rows of a biller's day, read one at a time.
    func reportRows(biller: String, on date: ShanghaiCalendar.Date) throws -> AnyIterator<Result<ReportRow, any Error>> {
        let cursor = try sql.cursor(Self.itemsSQL(billOf: sql.dialect == .postgres ? { Self.billOfPostgres($0, kept: $1) } : { Self.billOf($0, kept: $1) }), [biller.sqlValue, date.iso.sqlValue])
        var failed = false
        return AnyIterator {
            guard !failed else { return nil }
            do {
                guard let row = try cursor.next() else { return nil }
                let status: String? = try row[4]
                return .success(ReportRow(source: try row[0], billID: try row[1], outcome: try row[2], reasonCode: try row[3], status: try status.map(Self.status), reason: try row[5], paidFen: try row[6],
                                          paidAt: try row[7], transactionID: try row[8], refundTransactionID: try row[9], paidBusinessDate: try row[10], refundedBusinessDate: try row[11]))
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
        try sql.oneRow("SELECT version, report_id, path, sha256, created_at, delivered_at, delivered_to, paid_sum_fen, refunded_sum_fen, ledger_head FROM payment_reports WHERE biller = ? AND business_date = ?", [biller, date.iso])
            .map { StoredReport(version: try $0[0], reportID: try $0[1], path: try $0[2], sha256: try $0[3], createdAt: try $0[4], deliveredAt: try $0[5], deliveredTo: try $0[6], paidSumFen: try $0[7], refundedSumFen: try $0[8], ledgerHead: try $0[9]) }
    }

    /// Where every payment report was written, by business day and biller.
    public func reportPaths() throws -> [String] {
        try sql.texts("SELECT path FROM payment_reports ORDER BY business_date, biller")
    }

    func undeliveredReports(on date: ShanghaiCalendar.Date) throws -> Int {
        try sql.int("SELECT count(*) FROM payment_reports WHERE business_date = ? AND delivered_at IS NULL", [date.iso]) ?? 0
    }

    /// Records the report as written (and delivered, when `deliveredTo` is set); every
    /// delivered version is kept in `payment_report_versions`, never replaced.
    func recordReport(_ header: ReportHeaderTotals, reportID: String, path: String, sha256: Data, items: Int, version: Int, deliveredTo: String?, deliveryError: String?, at now: TimestampMicros) throws {
        try sql.run("""
            INSERT INTO payment_reports (biller, business_date, report_id, path, sha256, items, paid_count, paid_sum_fen, refunded_count, refunded_sum_fen, created_at, delivered_to, delivered_at, delivery_error, version, ledger_head)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (biller, business_date) DO UPDATE SET report_id = excluded.report_id, path = excluded.path, sha256 = excluded.sha256, items = excluded.items,
                paid_count = excluded.paid_count, paid_sum_fen = excluded.paid_sum_fen, refunded_count = excluded.refunded_count, refunded_sum_fen = excluded.refunded_sum_fen,
                created_at = excluded.created_at, delivered_to = excluded.delivered_to, delivered_at = excluded.delivered_at, delivery_error = excluded.delivery_error,
                version = excluded.version, ledger_head = excluded.ledger_head
            """, [header.biller, header.businessDate, reportID, path, sha256, items, header.paidCount, header.paidSumFen,
                                     header.refundedCount, header.refundedSumFen, header.createdAt, deliveredTo, deliveredTo == nil ? nil : now, deliveryError, version,
                                     header.ledgerHead])
        if deliveredTo != nil {
            try sql.run("""
                INSERT INTO payment_report_versions (biller, business_date, version, report_id, path, sha256, paid_count, paid_sum_fen, refunded_count, refunded_sum_fen, delivered_to, delivered_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (biller, business_date, version) DO NOTHING
                """, [header.biller, header.businessDate, version, reportID, path, sha256, header.paidCount, header.paidSumFen,
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
