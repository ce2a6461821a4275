import Ledger
import QDSQL

/// A QR payment as the wallet has checked it, handed to the planner inside the payment's
/// transaction.
public struct QRPaymentFacts {
    /// The ledger key of the payment (the caller's key scoped by the wallet).
    public var paymentKey: String
    public var wallet: WalletRecord
    public var merchant: WalletService.Merchant
    public var amountFen: Int64
    public var memo: String
    public var at: TimestampMicros
    /// The ledger already holds the payment: the plan must be the same request again.
    public var isRetry: Bool
}

/// What a payment moves, and what to record once the ledger committed it.
public struct PaymentPlan {
    /// The linked group: the payment first, then what follows it (pending points).
    public var requests: [PostingRequest]
    public var discountFen: Int64
    public var points: Int64
    /// Called with the payment's transaction and its followers' results, in the transaction.
    public var record: (TransactionID, ArraySlice<PostingResult>) throws -> Void

    public init(requests: [PostingRequest], discountFen: Int64, points: Int64, record: @escaping (TransactionID, ArraySlice<PostingResult>) throws -> Void) {
        self.requests = requests
        self.discountFen = discountFen
        self.points = points
        self.record = record
    }

    /// A plain transfer from the wallet to the merchant, nothing to record.
    static func plain(_ facts: QRPaymentFacts) -> PaymentPlan {
        let legs = [Leg.debit(facts.wallet.walletAccountID, facts.amountFen), .credit(facts.merchant.accountId, facts.amountFen)]
        return PaymentPlan(requests: [PostingRequest(key: facts.paymentKey, action: .transfer(legs: legs), memo: facts.memo)], discountFen: 0, points: 0) { _, _ in }
    }
}

/// The seam through which QR payments reach the payment pipeline (campaigns) without the
/// wallet knowing of campaigns. `Payments.CampaignPlanner` is the one implementation.
public protocol PaymentPlanner: Sendable {
    func planQR(_ db: any SQLConnection, _ tx: any LedgerWriting, _ payment: QRPaymentFacts) throws -> PaymentPlan
    /// What the campaigns would give a QR payment of `amountFen` now, read without holding
    /// anything (the payment itself plans again in its transaction: caps and budgets may
    /// have moved by then).
    func previewQR(_ db: any SQLConnection, wallet: WalletRecord, merchant: WalletService.Merchant, amountFen: Int64, at: TimestampMicros) throws -> [PlannedBenefit]
}

/// One campaign's part in a planned payment.
public struct PlannedBenefit: Sendable, Hashable {
    public var campaignID: String
    public var discountFen: Int64
    public var points: Int64

    public init(campaignID: String, discountFen: Int64, points: Int64) {
        self.campaignID = campaignID
        self.discountFen = discountFen
        self.points = points
    }
}
