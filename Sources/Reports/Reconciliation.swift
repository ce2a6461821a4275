import Billing
import Campaigns
import Crypto
import Foundation
import Ledger
import Wallet
import QDSQL

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

    /// A difference the reconciliation's reads found, before it is recorded as a break.
    public struct Finding: Sendable, Hashable {
        public var key: String
        public var category: String
        public var subject: String
        public var detail: String
    }

    /// What the reads found: the day's figures (without the breaks) and the differences, on
    /// one snapshot. `record` turns them into the day's breaks.
    public struct Reading: Sendable {
        public var date: ShanghaiCalendar.Date
        public var findings: [Finding]
        /// The figures, whose `breaks` are left empty until recorded.
        public var figures: Reconciliation
    }

    /// Computes the day's reconciliation, and records the breaks (new, still open, resolved):
    /// `read` and `record` in the caller's transaction.
    public static func run(_ db: any SQLConnection, ledger: any LedgerReading, date: ShanghaiCalendar.Date, paymentsPage: Int = 5_000) throws -> Reconciliation {
        try record(try read(db, ledger: ledger, date: date, paymentsPage: paymentsPage), db)
    }

    /// The day's reconciliation on a store: the reads on one read snapshot, which holds no
    /// lock (payments go on however long the ledger's check takes), then the breaks recorded
    /// in a short write transaction.
    public static func run(_ store: SQLLedgerStore, date: ShanghaiCalendar.Date) throws -> Reconciliation {
        let reading = try store.snapshot { db, ledger in try read(db, ledger: ledger, date: date) }
        return try store.transaction { db, _ in try record(reading, db) }
    }

    /// Records what `read` found as the day's breaks: new ones open, open ones seen again
    /// stay, open ones not found are resolved. A short write: the reads ran before, on a
    /// snapshot that held no lock.
    public static func record(_ reading: Reading, _ db: any SQLConnection) throws -> Reconciliation {
        let store = ReconStore(db)
        let date = reading.date
        for item in reading.findings {
            try store.record(key: item.key, category: item.category, subject: item.subject, detail: item.detail, on: date)
        }
        try store.resolve(except: Set(reading.findings.map(\.key)), on: date)
        var reconciliation = reading.figures
        reconciliation.breaks = try store.open(asOf: date).map { open -> Break in
            let first = ShanghaiCalendar.Date(iso: open.firstSeen) ?? date
            return Break(category: open.category, subject: open.subject, detail: open.detail, firstSeen: first.iso, ageDays: Int(date.daysSinceEpoch - first.daysSinceEpoch))
        }
        return reconciliation
    }

    /// The day's figures and differences, read through billing's, campaigns' and the ledger's
    /// read APIs; nothing is written. Every read is on the caller's snapshot, so the ledger
    /// check and the figures see one state. `stopWhen` is asked before each biller, each page
    /// of paid bills and payments, and every few thousand rows of the ledger's check: when it
    /// answers true the reads end at once with `CheckStopped`.
    public static func read(_ db: any SQLConnection, ledger: any LedgerReading, date: ShanghaiCalendar.Date, paymentsPage: Int = 5_000, stopWhen: () -> Bool = { false }) throws -> Reading {
        var found: [Finding] = []
        func brk(_ category: String, _ subject: String, _ detail: String) {
            found.append(Finding(key: category + "|" + subject, category: category, subject: subject, detail: detail))
        }
        // The reads before the ledger's check look at the stop request between their
        // statements and pages, as the check does every few thousand rows.
        var rowsRead = 0
        func pace(_ rows: Int = 0) throws {
            rowsRead += rows
            if stopWhen() { throw CheckStopped(rowsRead: rowsRead) }
        }
        try pace()
        let bills = BillStore(db)
        let from = date.startMicros, to = date.adding(days: 1).startMicros
        let allBillers = try bills.billers()
        // What each biller's account moved on the day and the days rechecked: a read of each
        // day's transactions for every biller at once, never of a biller's whole history.
        var movedOn: [ShanghaiCalendar.Date: [AccountID: Int64]] = [:]
        for back in 0..<Self.recheckDays {
            let day = date.adding(days: -back)
            movedOn[day] = try ledger.movements(accountIDs: allBillers.map(\.accountID), effectiveFrom: day.startMicros, to: day.adding(days: 1).startMicros)
        }
        func moved(_ account: AccountID, on day: ShanghaiCalendar.Date) -> Int64 {
            movedOn[day]?[account] ?? 0
        }
        var billers: [BillerLine] = []
        for biller in allBillers {
            try pace()
            let code = biller.code
            let feeds = try bills.feeds(biller: code, on: date)
            let feedIDs = feeds.map(\.feedID)
            let day = try bills.feedDay(biller: code, on: date)
            let totals = try bills.dayTotals(biller: code, on: date)
            var pending: [String: Count] = [:]
            var unmatched = Count()
            for group in day.byStatus {
                switch group.status {
                case .payable, .new:
                    pending[group.reason ?? "PROCESSING", default: Count()].count += group.count
                    pending[group.reason ?? "PROCESSING", default: Count()].fen += group.dueFen
                case .unmatched:
                    unmatched.count += group.count
                    unmatched.fen += group.dueFen
                case .paid, .cancelled, .refunded:
                    break
                }
            }
            let report = try bills.report(biller: code, on: date)
            let movement = moved(biller.accountID, on: date)
            let paidAuto = Count(totals.autopayCount, totals.autopayFen)
            let paidManual = Count(totals.manualCount, totals.manualFen)
            let refunded = Count(totals.refundedCount, totals.refundedFen)
            let line = BillerLine(
                biller: code, feeds: feedIDs,
                feedBills: feeds.reduce(0) { $0 + $1.bills }, feedCtrlSumFen: feeds.reduce(0) { $0 + $1.controlSumFen },
                ingested: Count(day.staged.count, day.staged.dueFen),
                matched: Count(day.matched.count, day.matched.dueFen),
                paidAuto: paidAuto, paidManual: paidManual, pendingByReason: pending,
                unmatched: unmatched,
                rejectedRecords: day.rejectedRecords,
                cancelled: Count(totals.cancelledUnpaidCount, totals.cancelledUnpaidFen),
                refunded: refunded,
                reportPaidFen: report?.paidSumFen, reportRefundedFen: report?.refundedSumFen,
                ledgerMovementFen: movement, paidNetFen: paidAuto.fen + paidManual.fen - refunded.fen)
            billers.append(line)

            // The three views of the day must agree (and of the days before, so that an open
            // break is re-checked, not forgotten).
            for back in 1..<Self.recheckDays {
                let earlier = date.adding(days: -back)
                let earlierTotals = try bills.dayTotals(biller: code, on: earlier)
                let paidNet = earlierTotals.paidFen - earlierTotals.refundedFen
                let movedThen = moved(biller.accountID, on: earlier)
                if paidNet != movedThen {
                    brk("amount_mismatch", "\(code) \(earlier.iso)", "bills paid less refunded \(Money(fen: paidNet).yuanString), ledger movement \(Money(fen: movedThen).yuanString)")
                }
                if let old = try bills.report(biller: code, on: earlier) {
                    if old.paidSumFen - old.refundedSumFen != movedThen {
                        brk("report_ledger_mismatch", "\(code) \(earlier.iso)", "report says \(Money(fen: old.paidSumFen - old.refundedSumFen).yuanString), ledger moved \(Money(fen: movedThen).yuanString)")
                    }
                    if let problem = reportAltered(path: old.path, expected: old.sha256) {
                        brk("report_altered", "\(code) \(earlier.iso)", problem)
                    }
                } else if try bills.feedCount(biller: code, on: earlier) > 0 {
                    brk("missing_report", "\(code) \(earlier.iso)", "no payment report was written for the day")
                }
            }
            if line.paidNetFen != movement {
                brk("amount_mismatch", "\(code) \(date.iso)", "bills paid less refunded \(Money(fen: line.paidNetFen).yuanString), ledger movement \(Money(fen: movement).yuanString)")
            }
            if let paid = line.reportPaidFen, let refundedSum = line.reportRefundedFen, paid - refundedSum != movement {
                brk("report_ledger_mismatch", "\(code) \(date.iso)", "report says \(Money(fen: paid - refundedSum).yuanString), ledger moved \(Money(fen: movement).yuanString)")
            }
            if let report, let problem = reportAltered(path: report.path, expected: report.sha256) {
                brk("report_altered", "\(code) \(date.iso)", problem)
            }
            if report == nil && !feedIDs.isEmpty {
                brk("missing_report", "\(code) \(date.iso)", "no payment report was written for the day")
            }
            // A day without the biller's feed is a break: refused at feed level, or never processed.
            if feedIDs.isEmpty {
                if let last = try bills.lastRun(biller: code, on: date), last.status == "rejected" {
                    let error = last.error ?? ""
                    brk("feed_rejected", "\(code) \(date.iso)", "the day's feed was refused (\(last.errorCode ?? "rejected")): \(error.components(separatedBy: " [").first ?? error)")
                } else {
                    brk("missing_feed", "\(code) \(date.iso)", "no feed of the day was processed: the nightly run did not run for this date, or the biller sent none")
                }
            }
        }

        // Bill by bill: every paid bill has its posting; no posting is shared or orphaned.
        try bills.forEachPaidBillPage(after: date.adding(days: -Self.recheckBillDays), through: date) { paid in
            try pace(paid.count)
            let posted = try ledger.credits(ofTransactions: paid.compactMap(\.transactionID))
            for bill in paid {
                let subject = bill.key.reference
                if let credits = bill.transactionID.flatMap({ posted[$0] }) {
                    let credited = credits[bill.billerAccountID] ?? 0
                    if credited != bill.paidFen {
                        brk("amount_mismatch", subject, "bill paid \(Money(fen: bill.paidFen).yuanString), ledger credited the biller \(Money(fen: credited).yuanString)")
                    }
                } else {
                    brk("missing_in_ledger", subject, "the bill is paid but its transaction \(bill.transactionID ?? 0) is not in the ledger")
                }
            }
        }
        // No payment is claimed by two bills: the bills' unique index of their payments refuses
        // the second (`billing-v12-one-bill-a-payment`), so there is nothing to look for here.
        // The day's transactions a page at a time (memory does not grow with the day), and of
        // them the payments, by their keys.
        var position: JournalPosition?
        while true {
            let page = try ledger.transactions(effectiveFrom: from, to: to, after: position, limit: paymentsPage)
            try pace(page.count)
            let payments = page.filter { $0.key.hasPrefix(PaymentKey.prefix) }
            let recorded = try bills.recordedPayments(among: payments.map(\.id))
            for payment in payments where !recorded.contains(payment.id) {
                brk("missing_in_report", "transaction \(payment.id)", "the ledger holds \(payment.key) but no bill records it")
            }
            guard page.count == paymentsPage, let last = page.last else { break }
            position = JournalPosition(effectiveAt: last.effectiveAt, id: last.id)
        }
        for bill in try bills.unmatched(stagedOnOrBefore: date.adding(days: -unmatchedDaysMax), limit: 1000) {
            brk("unmatched_over_\(unmatchedDaysMax)_days", bill.key.reference, "unmatched since \(bill.businessDate)")
        }

        // Campaigns: sponsors' discounts against budgets and the sponsor accounts.
        let campaigns = CampaignStore(db)
        var sponsors: [SponsorLine] = []
        for sponsor in try campaigns.sponsors() {
            let live = try campaigns.liveDiscountFen(sponsor: sponsor)
            let budget = try campaigns.budgetUsedFen(sponsor: sponsor)
            let account = try ledger.account(code: SystemAccounts.sponsor(sponsor))
            let movement = account.map { $0.debitsPosted - $0.creditsPosted } ?? 0
            sponsors.append(SponsorLine(sponsor: sponsor, discountsFen: live, budgetUsedFen: budget, ledgerMovementFen: movement))
            if live != movement || live != budget {
                brk("campaign_mismatch", sponsor, "discounts \(Money(fen: live).yuanString), budgets used \(Money(fen: budget).yuanString), sponsor account \(Money(fen: movement).yuanString)")
            }
        }
        let given = try campaigns.pointsTotals()
        let liability = try ledger.account(code: SystemAccounts.pointsLiability)
        let points = Points(issued: given.issued, vested: given.vested, expired: given.expired, reversed: given.reversed,
                            liabilityBalance: liability?.balance ?? 0, walletPointsTotal: try ledger.netCredits(kind: .userPoints))
        if points.walletPointsTotal != -(points.liabilityBalance) {
            brk("points_mismatch", "points", "wallets hold \(points.walletPointsTotal) points, the liability account \(-(points.liabilityBalance))")
        }

        let check = try Ledger.check(ledger, stopWhen: stopWhen)
        for violation in check.violations.prefix(50) {
            brk("ledger_check", violation.code + (violation.transactionID.map { " transaction \($0)" } ?? "") + (violation.accountID.map { " account \($0)" } ?? ""), violation.message)
        }

        let trend = try (0..<30).reversed().map { offset -> TrendDay in
            let day = date.adding(days: -offset)
            return TrendDay(date: day.iso, paidFen: try bills.paidFen(on: day))
        }
        // Carry forward (`record`): new breaks open today, old ones age, absent ones are resolved.
        let figures = Reconciliation(date: date.iso, billers: billers, sponsors: sponsors, points: points, trialBalance: check.trialBalance,
                                     ledgerOk: check.ok, ledgerViolations: check.violations.prefix(20).map(\.description), ledgerHead: check.head,
                                     operatorActions: try AuditStore.countsByCommand(db, from: from, to: to), breaks: [], trend: trend)
        return Reading(date: date, findings: found, figures: figures)
    }

    /// Whether a delivered report still has the bytes that were recorded.
    public static func reportAltered(path: String, expected: Data) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return "the report file is missing: \(path)" }
        return Data(SHA256.hash(data: data)) == expected ? nil : "the report file differs from what was written and recorded"
    }
}
