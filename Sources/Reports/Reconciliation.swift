import Crypto
import Foundation
import GRDB
import Ledger
import Wallet

/// Finance's proof for one business day: per biller, the feed as received, the bills by
/// outcome, the payment report and the ledger, which must agree; the campaigns against their
/// sponsors and the points liability; the trial balance and the ledger check; and every
/// difference as a break that carries forward, aging, until it is resolved.
public struct Reconciliation: Codable, Sendable {
    public struct Count: Codable, Sendable, Hashable {
        public var count: Int
        public var fen: Int64
        public init(_ count: Int = 0, _ fen: Int64 = 0) {
            self.count = count
            self.fen = fen
        }
    }

    public struct BillerLine: Codable, Sendable {
        public var biller: String
        public var feeds: [String]
        public var feedBills: Int
        public var feedCtrlSumFen: Int64
        public var ingested: Count
        public var matched: Count
        public var paidAuto: Count
        public var paidManual: Count
        public var pendingByReason: [String: Count]
        public var unmatched: Count
        public var rejectedRecords: Int
        public var cancelled: Count
        public var refunded: Count
        public var reportPaidFen: Int64?
        public var reportRefundedFen: Int64?
        public var ledgerMovementFen: Int64
        public var paidNetFen: Int64
    }

    public struct SponsorLine: Codable, Sendable {
        public var sponsor: String
        public var discountsFen: Int64
        public var budgetUsedFen: Int64
        public var ledgerMovementFen: Int64
    }

    public struct Points: Codable, Sendable {
        public var issued: Int64
        public var vested: Int64
        public var expired: Int64
        public var reversed: Int64
        public var liabilityBalance: Int64
        public var walletPointsTotal: Int64
    }

    public struct Break: Codable, Sendable, Hashable {
        public var category: String
        public var subject: String
        public var detail: String
        public var firstSeen: String
        public var ageDays: Int
    }

    public struct TrendDay: Codable, Sendable {
        public var date: String
        public var paidFen: Int64
    }

    public var date: String
    public var billers: [BillerLine]
    public var sponsors: [SponsorLine]
    public var points: Points
    public var trialBalance: [TrialBalanceLine]
    public var ledgerOk: Bool
    public var ledgerViolations: [String]
    /// The ledger's chain head (`SEQ:HASH`) the reconciliation saw: an anchor for
    /// `ledger check --expect-head`.
    public var ledgerHead: String
    /// The day's operator actions from the audit trail, by command.
    public var operatorActions: [String: Int] = [:]
    public var breaks: [Break]
    public var trend: [TrendDay]

    /// How many days an unmatched bill may wait before it is a break.
    public static let unmatchedDaysMax = 3
    /// Days whose biller totals are checked again each night (so open breaks age or resolve).
    public static let recheckDays = 7
    /// Days of paid bills checked one by one against the ledger each night.
    public static let recheckBillDays = 30

    /// Computes the day's reconciliation, and records the breaks (new, still open, resolved).
    public static func run(_ db: Database, ledger: any LedgerReading, date: ShanghaiCalendar.Date) throws -> Reconciliation {
        var found: [(key: String, category: String, subject: String, detail: String)] = []
        func brk(_ category: String, _ subject: String, _ detail: String) {
            found.append((category + "|" + subject, category, subject, detail))
        }
        let from = date.startMicros, to = date.adding(days: 1).startMicros
        var billers: [BillerLine] = []
        for biller in try Row.fetchAll(db, sql: "SELECT code, account_id FROM billers ORDER BY code") {
            let code: String = biller["code"]
            // Feeds are keyed BILLER/FEEDID; the biller's FeedId is what is shown.
            let feeds = try Row.fetchAll(db, sql: "SELECT substr(feed_id, instr(feed_id, '/') + 1) AS feed_id, bills, ctrl_sum_fen FROM feeds WHERE biller = ? AND business_date = ? ORDER BY feed_id", arguments: [code, date.iso])
            let feedIDs = feeds.map { $0["feed_id"] as String }
            func count(_ sql: String, _ arguments: StatementArguments) throws -> Count {
                let row = try Row.fetchOne(db, sql: sql, arguments: arguments)
                return Count(row?[0] ?? 0, row?[1] ?? 0)
            }
            let inFeeds = "feed_id IN (SELECT feed_id FROM feeds WHERE biller = ? AND business_date = ?)"
            var pending: [String: Count] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT coalesce(reason, 'PROCESSING') AS reason, count(*) AS n, coalesce(sum(due_fen), 0) AS fen FROM bills WHERE \(inFeeds) AND status IN ('payable', 'new') GROUP BY reason", arguments: [code, date.iso]) {
                pending[row["reason"]] = Count(row["n"], row["fen"])
            }
            let report = try Row.fetchOne(db, sql: "SELECT * FROM payment_reports WHERE biller = ? AND business_date = ?", arguments: [code, date.iso])
            let movement = try Int64.fetchOne(db, sql: """
                SELECT coalesce(sum(CASE e.side WHEN 1 THEN e.amount ELSE -e.amount END), 0) FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
                WHERE e.account_id = ? AND t.effective_at >= ? AND t.effective_at < ?
                """, arguments: [biller["account_id"] as Int64, from, to]) ?? 0
            let paidAuto = try count("SELECT count(*), coalesce(sum(paid_fen), 0) FROM bills WHERE biller = ? AND paid_business_date = ? AND paid_via = 'autopay'", [code, date.iso])
            let paidManual = try count("SELECT count(*), coalesce(sum(paid_fen), 0) FROM bills WHERE biller = ? AND paid_business_date = ? AND paid_via = 'manual'", [code, date.iso])
            let refunded = try count("SELECT count(*), coalesce(sum(paid_fen), 0) FROM bills WHERE biller = ? AND refunded_business_date = ?", [code, date.iso])
            let line = BillerLine(
                biller: code, feeds: feedIDs,
                feedBills: feeds.reduce(0) { $0 + ($1["bills"] as Int) }, feedCtrlSumFen: feeds.reduce(0) { $0 + ($1["ctrl_sum_fen"] as Int64) },
                ingested: try count("SELECT count(*), coalesce(sum(due_fen), 0) FROM bills WHERE \(inFeeds)", [code, date.iso]),
                matched: try count("SELECT count(*), coalesce(sum(due_fen), 0) FROM bills WHERE \(inFeeds) AND wallet_id IS NOT NULL", [code, date.iso]),
                paidAuto: paidAuto, paidManual: paidManual, pendingByReason: pending,
                unmatched: try count("SELECT count(*), coalesce(sum(due_fen), 0) FROM bills WHERE \(inFeeds) AND status = 'unmatched'", [code, date.iso]),
                rejectedRecords: try Int.fetchOne(db, sql: "SELECT count(*) FROM feed_records WHERE \(inFeeds) AND outcome IN ('rejected', 'duplicate_in_feed')", arguments: [code, date.iso]) ?? 0,
                cancelled: try count("SELECT count(*), coalesce(sum(due_fen), 0) FROM bills WHERE biller = ? AND cancelled_business_date = ? AND status = 'cancelled'", [code, date.iso]),
                refunded: refunded,
                reportPaidFen: report?["paid_sum_fen"], reportRefundedFen: report?["refunded_sum_fen"],
                ledgerMovementFen: movement, paidNetFen: paidAuto.fen + paidManual.fen - refunded.fen)
            billers.append(line)

            // The three views of the day must agree (and of the days before, so that an open
            // break is re-checked, not forgotten).
            for back in 1..<Self.recheckDays {
                let earlier = date.adding(days: -back)
                let earlierFeeds = try Int.fetchOne(db, sql: "SELECT count(*) FROM feeds WHERE biller = ? AND business_date = ?", arguments: [code, earlier.iso]) ?? 0
                let paidNet = try Int64.fetchOne(db, sql: "SELECT coalesce(sum(CASE WHEN paid_business_date = ?1 THEN paid_fen ELSE 0 END), 0) - coalesce(sum(CASE WHEN refunded_business_date = ?1 THEN paid_fen ELSE 0 END), 0) FROM bills WHERE biller = ?2 AND (paid_business_date = ?1 OR refunded_business_date = ?1)", arguments: [earlier.iso, code]) ?? 0
                let moved = try Int64.fetchOne(db, sql: """
                    SELECT coalesce(sum(CASE e.side WHEN 1 THEN e.amount ELSE -e.amount END), 0) FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
                    WHERE e.account_id = ? AND t.effective_at >= ? AND t.effective_at < ?
                    """, arguments: [biller["account_id"] as Int64, earlier.startMicros, earlier.adding(days: 1).startMicros]) ?? 0
                if paidNet != moved {
                    brk("amount_mismatch", "\(code) \(earlier.iso)", "bills paid less refunded \(Money(fen: paidNet).yuanString), ledger movement \(Money(fen: moved).yuanString)")
                }
                if let old = try Row.fetchOne(db, sql: "SELECT * FROM payment_reports WHERE biller = ? AND business_date = ?", arguments: [code, earlier.iso]) {
                    if (old["paid_sum_fen"] as Int64) - (old["refunded_sum_fen"] as Int64) != moved {
                        brk("report_ledger_mismatch", "\(code) \(earlier.iso)", "report says \(Money(fen: (old["paid_sum_fen"] as Int64) - (old["refunded_sum_fen"] as Int64)).yuanString), ledger moved \(Money(fen: moved).yuanString)")
                    }
                    if let problem = reportAltered(path: old["path"], expected: old["sha256"]) {
                        brk("report_altered", "\(code) \(earlier.iso)", problem)
                    }
                } else if earlierFeeds > 0 {
                    brk("missing_report", "\(code) \(earlier.iso)", "no payment report was written for the day")
                }
            }
            if line.paidNetFen != movement {
                brk("amount_mismatch", "\(code) \(date.iso)", "bills paid less refunded \(Money(fen: line.paidNetFen).yuanString), ledger movement \(Money(fen: movement).yuanString)")
            }
            if let paid = line.reportPaidFen, let refundedSum = line.reportRefundedFen, paid - refundedSum != movement {
                brk("report_ledger_mismatch", "\(code) \(date.iso)", "report says \(Money(fen: paid - refundedSum).yuanString), ledger moved \(Money(fen: movement).yuanString)")
            }
            if let report, let problem = reportAltered(path: report["path"], expected: report["sha256"]) {
                brk("report_altered", "\(code) \(date.iso)", problem)
            }
            if report == nil && !feedIDs.isEmpty {
                brk("missing_report", "\(code) \(date.iso)", "no payment report was written for the day")
            }
            // A day without the biller's feed is a break: refused at feed level, or never processed.
            if feedIDs.isEmpty {
                let last = try Row.fetchOne(db, sql: "SELECT status, error_code, error FROM billing_runs WHERE biller = ? AND business_date = ? ORDER BY at DESC, execution_id DESC LIMIT 1", arguments: [code, date.iso])
                if let last, (last[0] as String) == "rejected" {
                    let error: String = last[2] ?? ""
                    brk("feed_rejected", "\(code) \(date.iso)", "the day's feed was refused (\(last[1] as String? ?? "rejected")): \(error.components(separatedBy: " [").first ?? error)")
                } else {
                    brk("missing_feed", "\(code) \(date.iso)", "no feed of the day was processed: the nightly run did not run for this date, or the biller sent none")
                }
            }
        }

        // Bill by bill: every paid bill has its posting; no posting is shared or orphaned.
        for row in try Row.fetchAll(db, sql: """
            SELECT b.biller, b.bill_id, b.paid_fen, b.transaction_id, t.id AS posted,
                (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN billers r ON r.account_id = e.account_id AND r.code = b.biller WHERE e.transaction_id = b.transaction_id AND e.side = 1) AS credited
            FROM bills b LEFT JOIN ledger_transactions t ON t.id = b.transaction_id
            WHERE b.paid_business_date > ? AND b.paid_business_date <= ? AND b.status IN ('paid', 'refunded')
            """, arguments: [date.adding(days: -Self.recheckBillDays).iso, date.iso]) {
            let subject = "\(row["biller"] as String):\(row["bill_id"] as String)"
            if (row["posted"] as Int64?) == nil {
                brk("missing_in_ledger", subject, "the bill is paid but its transaction \(row["transaction_id"] as Int64? ?? 0) is not in the ledger")
            } else if (row["credited"] as Int64) != (row["paid_fen"] as Int64) {
                brk("amount_mismatch", subject, "bill paid \(Money(fen: row["paid_fen"]).yuanString), ledger credited the biller \(Money(fen: row["credited"]).yuanString)")
            }
        }
        for row in try Row.fetchAll(db, sql: "SELECT transaction_id, count(*) AS n, group_concat(biller || ':' || bill_id) AS bills FROM bills WHERE transaction_id IS NOT NULL GROUP BY transaction_id HAVING count(*) > 1") {
            brk("duplicate", "transaction \(row["transaction_id"] as Int64)", "one payment is claimed by \(row["n"] as Int) bills: \(row["bills"] as String)")
        }
        for row in try Row.fetchAll(db, sql: """
            SELECT t.id, t.idempotency_key FROM ledger_transactions t
            WHERE t.idempotency_key LIKE 'bill:%' AND t.effective_at >= ? AND t.effective_at < ?
              AND NOT EXISTS (SELECT 1 FROM bills b WHERE b.transaction_id = t.id)
            """, arguments: [from, to]) {
            brk("missing_in_report", "transaction \(row["id"] as Int64)", "the ledger holds \(row["idempotency_key"] as String) but no bill records it")
        }
        let staleDate = date.adding(days: -unmatchedDaysMax).iso
        for row in try Row.fetchAll(db, sql: "SELECT biller, bill_id, business_date FROM bills WHERE status = 'unmatched' AND business_date <= ? ORDER BY id LIMIT 1000", arguments: [staleDate]) {
            brk("unmatched_over_\(unmatchedDaysMax)_days", "\(row["biller"] as String):\(row["bill_id"] as String)", "unmatched since \(row["business_date"] as String)")
        }

        // Campaigns: sponsors' discounts against budgets and the sponsor accounts.
        var sponsors: [SponsorLine] = []
        for sponsor in try String.fetchAll(db, sql: "SELECT DISTINCT sponsor FROM campaign_allocations ORDER BY sponsor") {
            let live = try Int64.fetchOne(db, sql: "SELECT coalesce(sum(discount_fen), 0) FROM campaign_allocations WHERE sponsor = ? AND reversed_at IS NULL", arguments: [sponsor]) ?? 0
            let budget = try Int64.fetchOne(db, sql: "SELECT coalesce(sum(spent_fen), 0) FROM campaign_budgets WHERE campaign_id IN (SELECT DISTINCT campaign_id FROM campaign_allocations WHERE sponsor = ?)", arguments: [sponsor]) ?? 0
            let account = try ledger.account(code: SystemAccounts.sponsor(sponsor))
            let movement = account.map { $0.debitsPosted - $0.creditsPosted } ?? 0
            sponsors.append(SponsorLine(sponsor: sponsor, discountsFen: live, budgetUsedFen: budget, ledgerMovementFen: movement))
            if live != movement || live != budget {
                brk("campaign_mismatch", sponsor, "discounts \(Money(fen: live).yuanString), budgets used \(Money(fen: budget).yuanString), sponsor account \(Money(fen: movement).yuanString)")
            }
        }
        let pointsRow = try Row.fetchOne(db, sql: """
            SELECT coalesce(sum(points), 0) AS issued,
                coalesce(sum(CASE WHEN points_status IN ('vested', 'expired') THEN points ELSE 0 END), 0) AS vested,
                coalesce(sum(CASE WHEN points_status = 'expired' THEN points ELSE 0 END), 0) AS expired,
                coalesce(sum(CASE WHEN points_status = 'reversed' THEN points ELSE 0 END), 0) AS reversed
            FROM campaign_allocations
            """)
        let liability = try ledger.account(code: SystemAccounts.pointsLiability)
        let walletPoints = try Int64.fetchOne(db, sql: "SELECT coalesce(sum(credits_posted - debits_posted), 0) FROM ledger_accounts WHERE kind = 'user_points'") ?? 0
        let points = Points(issued: pointsRow?["issued"] ?? 0, vested: pointsRow?["vested"] ?? 0, expired: pointsRow?["expired"] ?? 0, reversed: pointsRow?["reversed"] ?? 0,
                            liabilityBalance: liability?.balance ?? 0, walletPointsTotal: walletPoints)
        if points.walletPointsTotal != -(points.liabilityBalance) {
            brk("points_mismatch", "points", "wallets hold \(points.walletPointsTotal) points, the liability account \(-(points.liabilityBalance))")
        }

        let check = try Ledger.check(ledger)
        for violation in check.violations.prefix(50) {
            brk("ledger_check", violation.code + (violation.transactionID.map { " transaction \($0)" } ?? "") + (violation.accountID.map { " account \($0)" } ?? ""), violation.message)
        }

        // Carry forward: new breaks open today, old ones age, absent ones are resolved.
        for item in found {
            try db.execute(sql: """
                INSERT INTO recon_breaks (break_key, category, subject, detail, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (break_key) DO UPDATE SET detail = excluded.detail, last_seen = max(last_seen, excluded.last_seen), resolved = NULL
                """, arguments: [item.key, item.category, item.subject, item.detail, date.iso, date.iso])
        }
        let keys = Set(found.map(\.key))
        for row in try Row.fetchAll(db, sql: "SELECT id, break_key FROM recon_breaks WHERE resolved IS NULL AND first_seen <= ?", arguments: [date.iso]) where !keys.contains(row["break_key"]) {
            try db.execute(sql: "UPDATE recon_breaks SET resolved = ? WHERE id = ?", arguments: [date.iso, row["id"] as Int64])
        }
        let breaks = try Row.fetchAll(db, sql: "SELECT * FROM recon_breaks WHERE resolved IS NULL AND first_seen <= ? ORDER BY first_seen, category, subject", arguments: [date.iso]).map { row -> Break in
            let first = ShanghaiCalendar.Date(iso: row["first_seen"]) ?? date
            return Break(category: row["category"], subject: row["subject"], detail: row["detail"], firstSeen: first.iso, ageDays: Int(date.daysSinceEpoch - first.daysSinceEpoch))
        }

        let trend = try (0..<30).reversed().map { offset -> TrendDay in
            let day = date.adding(days: -offset)
            let paid = try Int64.fetchOne(db, sql: "SELECT coalesce(sum(paid_fen), 0) FROM bills WHERE paid_business_date = ?", arguments: [day.iso]) ?? 0
            return TrendDay(date: day.iso, paidFen: paid)
        }
        return Reconciliation(date: date.iso, billers: billers, sponsors: sponsors, points: points, trialBalance: check.trialBalance,
                              ledgerOk: check.ok, ledgerViolations: check.violations.prefix(20).map(\.description), ledgerHead: check.head,
                              operatorActions: try AuditStore.countsByCommand(db, from: from, to: to), breaks: breaks, trend: trend)
    }

    /// Whether a delivered report still has the bytes that were recorded.
    public static func reportAltered(path: String, expected: Data) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return "the report file is missing: \(path)" }
        return Data(SHA256.hash(data: data)) == expected ? nil : "the report file differs from what was written and recorded"
    }
}
