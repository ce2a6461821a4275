import Campaigns
import Ledger
import QDSQL

/// The one payment pipeline of qdwallet: plan the payment with the campaigns, build its linked
/// ledger requests, record what the campaigns gave once the ledger committed. pay-bill and the
/// nightly autopay (Billing) and QR payments (`CampaignPlanner`, through the wallet's
/// `PaymentPlanner` seam) all go through it, inside the caller's transaction.
public final class PaymentPipeline {
    let book: CampaignBook
    let clock: any LedgerClock

    public init(db: any SQLConnection, campaigns: [Campaign], clock: any LedgerClock) {
        self.book = CampaignBook(db: db, campaigns: campaigns)
        self.clock = clock
    }

    /// Whether any campaign is configured: without one, a payment is a plain transfer and
    /// nothing is planned or recorded.
    public var hasCampaigns: Bool { !book.campaigns.isEmpty }

    /// Whether any campaign asks if this is the payer's first payment to the payee (the
    /// lookup is made only then).
    public var needsFirstPayment: Bool { book.needsFirstPayment }

    /// Plan: what the campaigns give this payment. Held in memory (caps and budgets count it)
    /// until `record` or `abandon`.
    public func plan(_ context: PaymentContext) throws -> CampaignResult {
        try book.evaluate(context)
    }

    /// Reads the caps of many wallets and bill accounts at once, before a chunk's plans (see
    /// `CampaignBook.prefetch`).
    public func prefetch(walletIDs: [Int64], billAccountIDs: [Int64], at: TimestampMicros) throws {
        try book.prefetch(walletIDs: walletIDs, billAccountIDs: billAccountIDs, at: at)
    }

    /// What the campaigns would give this payment now, in a read: nothing locked or held.
    public func preview(_ context: PaymentContext) throws -> CampaignResult {
        book.previewOnly = true
        defer { book.previewOnly = false }
        let result = try book.evaluate(context)
        book.abandon(context, result)
        return result
    }

    /// Gives back what `plan` held for a payment that will not be made.
    public func abandon(_ context: PaymentContext, _ result: CampaignResult) {
        book.abandon(context, result)
    }

    /// What a made payment was given, from its stored allocations: a retried request must be
    /// the same request again, whatever the campaigns are today.
    public func storedResult(paymentKey: String) throws -> CampaignResult {
        try book.storedResult(paymentKey: paymentKey)
    }

    /// Build: the payment's linked group. The payment comes first (its key is its identity;
    /// the payer pays the rest, each sponsor funds its discount, the payee gets the whole),
    /// then one pending-points hold a campaign that gives points, unless `points` is false
    /// (a retry, which the ledger answers from the payment's key alone).
    public func requests(key: String, amountFen: Int64, payer: AccountID, payee: AccountID, pointsAccount: AccountID, memo: String, effectiveAt: TimestampMicros? = nil,
                         result: CampaignResult, points withPoints: Bool = true, tx: any LedgerWriting) throws -> [PostingRequest] {
        var legs = [Leg.debit(payer, amountFen), .credit(payee, amountFen)]
        var points: [PostingRequest] = []
        if !result.allocations.isEmpty {
            legs = try book.legs(amountFen: amountFen, payer: payer, payee: payee, result: result, tx: tx, clock: clock)
            if withPoints {
                points = try book.pointsRequests(paymentKey: key, result: result, pointsAccount: pointsAccount, tx: tx)
            }
        }
        let payment = PostingRequest(key: key, action: .transfer(legs: legs), memo: memo, effectiveAt: effectiveAt, linked: !points.isEmpty)
        for index in points.indices where index < points.count - 1 { points[index].linked = true }
        return [payment] + points
    }

    /// The points holds of a committed group, by campaign (`followers`: the results after
    /// the payment's own).
    public static func pointsHolds(_ result: CampaignResult, followers: ArraySlice<PostingResult>) -> [String: TransactionID] {
        var holds: [String: TransactionID] = [:]
        for (allocation, posted) in zip(result.allocations.filter { $0.points > 0 }, followers) {
            holds[allocation.campaignID] = posted.transactionID
        }
        return holds
    }

    /// Record: the allocations, budget use and explanation of a committed payment; with
    /// `deferred`, written by `flush` with the others recorded meanwhile.
    public func record(paymentKey: String, transactionID: TransactionID, context: PaymentContext, result: CampaignResult, followers: ArraySlice<PostingResult>, paidAt: TimestampMicros? = nil, deferred: Bool = false) throws {
        try book.record(paymentKey: paymentKey, transactionID: transactionID, context: context, result: result,
                         pointsHolds: Self.pointsHolds(result, followers: followers), paidAt: paidAt, deferred: deferred)
    }

    /// Writes what was recorded with `deferred`.
    public func flush() throws {
        try book.flush()
    }
}
