import Foundation
import Ledger
import QDSQL

/// Campaign bookkeeping inside one database transaction: usage (budgets and caps) as the
/// transaction has left it, allocations, explanations, points lots and reversals. Its
/// statements are `CampaignStore`'s.
public final class CampaignBook {
    let db: any SQLConnection
    public let campaigns: [Campaign]
    /// Allocations decided in this transaction and not yet written (a ledger batch in flight),
    /// summed by what budgets and caps count, so a lookup costs the same however many there are.
    private var inFlightBudget: [String: Int64] = [:]
    private var inFlightCaps: [CapKey: (count: Int, fen: Int64)] = [:]
    /// Budget spending as written in this transaction (total by campaign id, daily by
    /// "id|day"): read once, then kept up to date by `record`, so a chunk of payments reads
    /// each budget once. Nothing else changes them meanwhile: with one writer at a time the
    /// transaction has the database to itself, with many a limited budget's rows are locked
    /// when first read.
    private var writtenBudget: [String: Int64] = [:]
    /// Cap counters as written in this transaction, by cap key, for the scopes `prefetch`
    /// read (kept up to date by `flush`); other scopes are read when first asked.
    private var writtenCaps: [CapKey: (count: Int, fen: Int64)] = [:]
    /// Ledger accounts looked up by code in this transaction (sponsors, points liability):
    /// an account, once opened, keeps its id.
    private var accountIDs: [String: AccountID] = [:]
    /// Recorded payments not yet written (`record` with `deferred`, until `flush`).
    private var pendingAllocations: [CampaignStore.NewAllocation] = []
    private var pendingExplanations: [CampaignStore.NewExplanation] = []
    private var pendingResults: [(PaymentContext, CampaignResult)] = []
    /// The period keys of the last Shanghai day asked for, by its day number: a chunk's
    /// payments fall on one day, and each asks for its keys several times.
    private var lastPeriodKeys: (day: Int64, keys: (day: String, week: String, month: String))?
    /// Whether any campaign looks at the payment being the wallet's first to its payee.
    public let needsFirstPayment: Bool
    /// A book that only shows what a payment would get (in a read): it locks no budget and
    /// must record nothing.
    public var previewOnly = false

    public init(db: any SQLConnection, campaigns: [Campaign]) {
        self.db = db
        self.campaigns = campaigns
        needsFirstPayment = campaigns.contains { campaign in
            campaign.firstPaymentOnly || campaign.benefits.contains { if case .firstPayment = $0 { true } else { false } }
        }
    }

    private func budgetWritten(_ campaignID: String, day: String?, limited: Bool) throws -> Int64 {
        let key = day.map { campaignID + "|" + $0 } ?? campaignID
        if let known = writtenBudget[key] { return known }
        let spent = try CampaignStore(db).budgetSpent(campaignID: campaignID, day: day, locking: limited && !previewOnly)
        writtenBudget[key] = spent
        return spent
    }

    /// Records each campaign version (a changed file under an old version number is refused),
    /// and starts counting the (scope, period) pairs its caps name.
    public static func register(_ campaigns: [Campaign], db: any SQLConnection, now: TimestampMicros) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let store = CampaignStore(db)
        for campaign in campaigns {
            if let stored = try store.versionHash(campaignID: campaign.id, version: campaign.version) {
                guard stored == campaign.contentHash else {
                    throw CampaignError.versionChanged(file: campaign.file, id: campaign.id, version: campaign.version)
                }
                continue
            }
            try store.insertVersion(campaignID: campaign.id, version: campaign.version, contentHash: campaign.contentHash, definition: String(decoding: try encoder.encode(campaign), as: UTF8.self), at: now)
        }
        var pairs: [String: Int64] = [:]
        for campaign in campaigns {
            pairs[campaign.id, default: 0] |= campaign.caps.reduce(0) { $0 | CampaignStore.pairBit(scope: $1.scope.rawValue, period: counterPeriod($1.period)) }
        }
        for (campaignID, wanted) in pairs.sorted(by: { $0.key < $1.key }) {
            try store.startCounting(campaignID: campaignID, pairs: wanted)
        }
    }

    static func periodKeys(_ at: TimestampMicros) -> (day: String, week: String, month: String) {
        let date = ShanghaiCalendar.date(at: at)
        let monday = date.adding(days: 1 - date.isoWeekday)
        return (date.iso, monday.iso, date.monthKey)
    }

    /// `periodKeys(at)`, made once a day.
    private func periodKeys(_ at: TimestampMicros) -> (day: String, week: String, month: String) {
        let shifted = at + ShanghaiCalendar.offsetMicros
        let day = shifted >= 0 ? shifted / ShanghaiCalendar.dayMicros : (shifted + 1) / ShanghaiCalendar.dayMicros - 1
        if let last = lastPeriodKeys, last.day == day { return last.keys }
        let keys = Self.periodKeys(at)
        lastPeriodKeys = (day, keys)
        return keys
    }

    /// Reads the cap counters of many wallets and bill accounts at the instant `at` (every
    /// cap of every campaign, a few statements each) instead of one a payment. The wallets
    /// must stay locked, or the writer alone, until the transaction ends.
    public func prefetch(walletIDs: [Int64], billAccountIDs: [Int64], at: TimestampMicros) throws {
        let keys = periodKeys(at)
        let store = CampaignStore(db)
        for campaign in campaigns {
            for cap in campaign.caps {
                let ids = cap.scope == .wallet ? walletIDs : billAccountIDs
                let periodKey = Self.periodKey(cap, keys)
                for id in ids { writtenCaps[Self.capKey(campaign.id, cap, id, keys)] = (0, 0) }
                for (id, use) in try store.capUses(campaignID: campaign.id, scope: cap.scope, scopeIDs: ids, period: Self.counterPeriod(cap.period), periodKey: periodKey) {
                    writtenCaps[Self.capKey(campaign.id, cap, id, keys)] = use
                }
            }
        }
    }

    /// Budgets and caps as this transaction sees them, in-flight allocations included.
    public func usage(_ campaign: Campaign, context: PaymentContext) throws -> CampaignUsage {
        let keys = periodKeys(context.at)
        var usage = CampaignUsage()
        usage.budgetSpentFen = try budgetWritten(campaign.id, day: nil, limited: campaign.budgetTotalFen != nil)
        usage.budgetSpentTodayFen = try budgetWritten(campaign.id, day: keys.day, limited: campaign.budgetDailyFen != nil)
        usage.budgetSpentFen += inFlightBudget[campaign.id] ?? 0
        usage.budgetSpentTodayFen += inFlightBudget[campaign.id + "|" + keys.day] ?? 0
        for cap in campaign.caps {
            let scopeValue: Int64? = cap.scope == .wallet ? context.walletID : context.billAccountID
            let period: (column: CampaignStore.PeriodColumn, key: String)? = switch cap.period {
            case .day: (.day, keys.day)
            case .naturalWeek: (.week, keys.week)
            case .calendarMonth: (.month, keys.month)
            case .campaign: nil
            }
            var count = 0
            var fen: Int64 = 0
            if let scopeValue {
                if let known = writtenCaps[Self.capKey(campaign.id, cap, scopeValue, keys)] {
                    (count, fen) = known
                } else {
                    (count, fen) = try CampaignStore(db).capUse(campaignID: campaign.id, scope: cap.scope, scopeValue: scopeValue, period: period)
                }
            }
            if let scopeValue, let flying = inFlightCaps[Self.capKey(campaign.id, cap, scopeValue, keys)] {
                count += flying.count
                fen += flying.fen
            }
            usage.capCounts.append(count)
            usage.capFen.append(fen)
        }
        return usage
    }

    /// A cap period's name in the counters (CampaignStore.PeriodColumn's, and "campaign").
    static func counterPeriod(_ period: Campaign.CapPeriod) -> String {
        switch period {
        case .day: "day"
        case .naturalWeek: "week"
        case .calendarMonth: "month"
        case .campaign: "campaign"
        }
    }

    /// The key of a cap's period at an instant ("*" for the whole campaign).
    static func periodKey(_ cap: Campaign.Cap, _ keys: (day: String, week: String, month: String)) -> String {
        switch cap.period {
        case .day: keys.day
        case .naturalWeek: keys.week
        case .calendarMonth: keys.month
        case .campaign: "*"
        }
    }

    /// A cap counter's identity: the campaign, whose counter (the wallet's or the bill
    /// account's) and which period of it.
    struct CapKey: Hashable {
        var campaign: String
        var scope: Campaign.CapScope
        var scopeValue: Int64
        var period: Campaign.CapPeriod
        var periodKey: String
    }

    static func capKey(_ campaign: String, _ cap: Campaign.Cap, _ scopeValue: Int64, _ keys: (day: String, week: String, month: String)) -> CapKey {
        CapKey(campaign: campaign, scope: cap.scope, scopeValue: scopeValue, period: cap.period, periodKey: periodKey(cap, keys))
    }

    /// The cap keys a payment's allocation counts under, with its discount.
    private func capKeys(_ context: PaymentContext, _ allocation: Allocation, _ keys: (day: String, week: String, month: String)) -> [CapKey] {
        guard let campaign = campaigns.first(where: { $0.id == allocation.campaignID }) else { return [] }
        return campaign.caps.compactMap { cap in
            (cap.scope == .wallet ? context.walletID : context.billAccountID).map { Self.capKey(campaign.id, cap, $0, keys) }
        }
    }

    /// Adds (or, with `sign` -1, removes) a payment's allocations to the in-flight sums.
    private func track(_ context: PaymentContext, _ result: CampaignResult, sign: Int) {
        guard !result.allocations.isEmpty else { return }
        let keys = periodKeys(context.at)
        for allocation in result.allocations {
            let fen = Int64(sign) * allocation.discountFen
            inFlightBudget[allocation.campaignID, default: 0] += fen
            inFlightBudget[allocation.campaignID + "|" + keys.day, default: 0] += fen
            for key in capKeys(context, allocation, keys) {
                var current = inFlightCaps[key] ?? (0, 0)
                current.count += sign
                current.fen += fen
                inFlightCaps[key] = current
            }
        }
    }

    /// The id of a ledger account by code, looked up once in this transaction.
    private func accountID(_ code: String, _ lookUp: () throws -> Account) rethrows -> AccountID {
        if let known = accountIDs[code] { return known }
        let id = try lookUp().id
        accountIDs[code] = id
        return id
    }

    /// Evaluates the campaigns for a payment and holds its allocations in flight.
    public func evaluate(_ context: PaymentContext) throws -> CampaignResult {
        let result = try CampaignEngine.evaluate(campaigns, context: context) { campaign in try usage(campaign, context: context) }
        track(context, result, sign: 1)
        return result
    }

    /// Drops the in-flight allocations of a payment that was not made.
    public func abandon(_ context: PaymentContext, _ result: CampaignResult) {
        track(context, result, sign: -1)
    }

    /// The legs and the points holds for a payment of `amountFen` with `result` applied:
    /// the wallet pays the rest, each sponsor funds its discount, the payee gets the whole.
    public func legs(amountFen: Int64, payer: AccountID, payee: AccountID, result: CampaignResult, tx: any LedgerWriting, clock: any LedgerClock) throws -> [Leg] {
        var legs = [Leg.debit(payer, amountFen - result.discountFen)]
        for allocation in result.allocations where allocation.discountFen > 0 {
            let code = SystemAccounts.sponsor(allocation.sponsor)
            let sponsor = try accountID(code) {
                try Ledger.openAccount(AccountSpec(code: code, asset: .cny, kind: .campaignSponsor, rules: .unrestricted), in: tx, clock: clock)
            }
            legs.append(.debit(sponsor, allocation.discountFen))
        }
        legs.append(.credit(payee, amountFen))
        return legs
    }

    /// The points holds (pending points) of a payment, liability to the user's points account.
    public func pointsRequests(paymentKey: String, result: CampaignResult, pointsAccount: AccountID, tx: any LedgerWriting) throws -> [PostingRequest] {
        let liability = try accountID(SystemAccounts.pointsLiability) {
            guard let account = try tx.account(code: SystemAccounts.pointsLiability) else {
                throw LedgerError(.accountNotFound, "the points liability account is missing: run `qdwallet init`", context: SystemAccounts.pointsLiability)
            }
            return account
        }
        return result.allocations.filter { $0.points > 0 }.map { allocation in
            PostingRequest(key: "points:\(paymentKey):\(allocation.campaignID)", action: .hold(debit: liability, credit: pointsAccount, asset: .pts, amount: allocation.points, expiresAt: nil), memo: "points \(allocation.campaignID)")
        }
    }

    /// What a payment was given, from its stored allocations (for a retried request, which
    /// must be the same request again, and for refunds, which are never recomputed).
    public func storedResult(paymentKey: String) throws -> CampaignResult {
        let allocations = try CampaignStore(db).allocations(paymentKey: paymentKey, standingOnly: false).map { row in
            Allocation(campaignID: row.campaignID, version: row.version, sponsor: row.sponsor, discountFen: row.discountFen, points: row.points, pendingDays: 0, expiryMonths: 0)
        }
        return CampaignResult(allocations: allocations, explanations: [])
    }

    /// Writes a made payment's allocations, budget use and explanation. Points stay pending
    /// for the campaign's days from `paidAt` (the moment the money moved: the refund window),
    /// which is the campaign clock `context.at` unless given. With `deferred`, they wait for
    /// `flush` (a chunk's payments write theirs together); until then they stay in flight,
    /// counted by budgets and caps as before.
    public func record(paymentKey: String, transactionID: TransactionID, context: PaymentContext, result: CampaignResult, pointsHolds: [String: TransactionID], paidAt: TimestampMicros? = nil, deferred: Bool = false) throws {
        let keys = periodKeys(context.at)
        for allocation in result.allocations {
            let vestAt = (paidAt ?? context.at) + Int64(allocation.pendingDays) * ShanghaiCalendar.dayMicros
            pendingAllocations.append(CampaignStore.NewAllocation(
                paymentKey: paymentKey, transactionID: transactionID, campaignID: allocation.campaignID, version: allocation.version, sponsor: allocation.sponsor,
                walletID: context.walletID, billAccountID: context.billAccountID, discountFen: allocation.discountFen, points: allocation.points,
                pointsHoldID: pointsHolds[allocation.campaignID], vestAt: allocation.points > 0 ? vestAt : nil,
                expiresAt: allocation.points > 0 ? Self.addMonths(vestAt, allocation.expiryMonths) : nil, at: context.at, day: keys.day, week: keys.week, month: keys.month))
        }
        pendingExplanations.append(CampaignStore.NewExplanation(paymentKey: paymentKey, transactionID: transactionID, context: Self.json(context, firstPaymentConsulted: needsFirstPayment),
                                                                explanation: "[" + result.explanations.map(Self.json).joined(separator: ",") + "]", at: context.at))
        pendingResults.append((context, result))
        if !deferred { try flush() }
    }

    /// Writes the recorded payments' allocations, cap counters, budget use and explanations
    /// in a few multi-row statements; from then on the database counts them.
    public func flush() throws {
        guard !pendingExplanations.isEmpty else { return }
        let store = CampaignStore(db)
        try store.insert(pendingAllocations)
        try store.saveExplanations(pendingExplanations)
        for allocation in pendingAllocations where allocation.discountFen > 0 {
            writtenBudget[allocation.campaignID]? += allocation.discountFen
            writtenBudget[allocation.campaignID + "|" + allocation.day]? += allocation.discountFen
        }
        for (context, result) in pendingResults {
            // Now counted by the database: by the caps read before, and no longer in flight.
            let keys = periodKeys(context.at)
            for allocation in result.allocations {
                for key in capKeys(context, allocation, keys) {
                    writtenCaps[key]?.count += 1
                    writtenCaps[key]?.fen += allocation.discountFen
                }
            }
            track(context, result, sign: -1)
        }
        pendingAllocations = []
        pendingExplanations = []
        pendingResults = []
    }

    /// The payment's context as stored for `campaign explain` (snake_case keys, sorted);
    /// `first_payment` only when a campaign asked for it.
    static func json(_ context: PaymentContext, firstPaymentConsulted: Bool) -> String {
        var json = JSONText()
        json.field("amount_fen", context.amountFen)
        json.field("at", context.at)
        json.field("bill_account_id", context.billAccountID)
        json.field("biller", context.biller)
        json.field("category", context.category)
        json.field("district", context.district)
        if firstPaymentConsulted { json.field("first_payment", context.firstPayment) }
        json.field("kind", context.kind.rawValue)
        json.field("kyc_class", Int64(context.kycClass))
        json.field("wallet_id", context.walletID)
        return json.finish()
    }

    /// One campaign's line of an explanation (snake_case keys, sorted).
    static func json(_ explanation: Explanation) -> String {
        var json = JSONText()
        json.field("applied", explanation.applied)
        json.field("budget_after_fen", explanation.budgetAfterFen)
        json.field("budget_before_fen", explanation.budgetBeforeFen)
        json.field("campaign_id", explanation.campaignId)
        json.field("caps", strings: explanation.caps)
        json.field("discount_fen", explanation.discountFen)
        json.field("points", explanation.points)
        json.field("reason", explanation.reason)
        json.field("rounding", explanation.rounding)
        json.field("version", Int64(explanation.version))
        return json.finish()
    }

    /// Reverses exactly what was applied to a payment, from its stored allocations: budgets and
    /// caps released, pending points voided, vested points taken back (the balance may go
    /// negative). The CNY legs are reversed by the caller's reversal of the payment.
    public func reverse(paymentKey: String, reversalTransactionID: TransactionID, pointsAccount: AccountID, tx: any LedgerWriting, clock: any LedgerClock, at: TimestampMicros) throws {
        let store = CampaignStore(db)
        let rows = try store.allocations(paymentKey: paymentKey, standingOnly: true)
        writtenBudget.removeAll()
        writtenCaps.removeAll()
        for row in rows {
            let id = row.id
            if row.discountFen > 0 {
                try store.releaseBudget(campaignID: row.campaignID, day: row.day, fen: row.discountFen)
            }
            let status = row.pointsStatus
            let remaining = row.pointsRemaining
            if status == "pending", let hold = row.pointsHoldID {
                let result = try Ledger.post([PostingRequest(key: "points-void:\(id)", action: .voidHold(holdID: hold), memo: "points taken back")], in: tx, clock: clock)[0]
                guard result.transactionID != nil else { throw LedgerError(.corrupt, "a pending points hold could not be voided: \(result)", context: "allocation \(id)") }
            } else if status == "vested", remaining > 0 {
                guard let liability = try tx.account(code: SystemAccounts.pointsLiability) else { throw LedgerError(.accountNotFound, "the points liability account is missing") }
                let result = try Ledger.post([.transfer(key: "points-back:\(id)", from: pointsAccount, to: liability.id, amount: remaining, asset: .pts, memo: "points taken back")], in: tx, clock: clock)[0]
                guard result.transactionID != nil else { throw LedgerError(.corrupt, "vested points could not be taken back: \(result)", context: "allocation \(id)") }
            }
            try store.markReversed(allocationID: id, reversal: reversalTransactionID, at: at)
        }
    }

    /// The same instant `months` calendar months later (the day clamped to the month's end).
    static func addMonths(_ at: TimestampMicros, _ months: Int) -> TimestampMicros {
        let date = ShanghaiCalendar.date(at: at)
        let offset = at - date.startMicros
        let total = date.year * 12 + (date.month - 1) + months
        let year = total / 12, month = total % 12 + 1
        let day = min(date.day, ShanghaiCalendar.daysIn(year: year, month: month))
        return ShanghaiCalendar.Date(year: year, month: month, day: day).startMicros + offset
    }
}

/// Faults of campaign configuration.
public enum CampaignError: Error, Sendable, CustomStringConvertible {
    case versionChanged(file: String, id: String, version: Int)

    public var description: String {
        switch self {
        case .versionChanged(let file, let id, let version):
            "\(file): version: campaign \(id) version \(version) was loaded before with other content; a changed campaign needs a new version number"
        }
    }
}
