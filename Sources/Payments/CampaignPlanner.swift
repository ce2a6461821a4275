import Campaigns
import Ledger
import Wallet
import QDSQL

/// QR payments through the payment pipeline: the wallet checks the payer and the merchant,
/// the pipeline plans the campaigns, builds the linked requests and records what they gave.
public struct CampaignPlanner: PaymentPlanner {
    public let campaigns: [Campaign]
    let clock: any LedgerClock

    public init(campaigns: [Campaign], clock: any LedgerClock) {
        // Only the campaigns a QR payment can meet: with none, a QR payment is a plain
        // transfer and nothing is read or recorded for the campaigns.
        self.campaigns = campaigns.filter { $0.paymentKinds.isEmpty || $0.paymentKinds.contains(.qrPayment) }
        self.clock = clock
    }

    public func planQR(_ db: any SQLConnection, _ tx: any LedgerWriting, _ payment: QRPaymentFacts) throws -> PaymentPlan {
        let pipeline = PaymentPipeline(db: db, campaigns: campaigns, clock: clock)
        let wallet = payment.wallet
        let merchant = payment.merchant
        func requests(_ result: CampaignResult, points: Bool) throws -> [PostingRequest] {
            try pipeline.requests(key: payment.paymentKey, amountFen: payment.amountFen, payer: wallet.walletAccountID, payee: merchant.accountId,
                                  pointsAccount: wallet.pointsAccountID, memo: payment.memo, result: result, points: points, tx: tx)
        }
        if payment.isRetry {
            // A retry: the same request as the first time, campaigns as they were applied.
            let result = try pipeline.storedResult(paymentKey: payment.paymentKey)
            return PaymentPlan(requests: try requests(result, points: false), discountFen: result.discountFen, points: result.points) { _, _ in }
        }
        guard pipeline.hasCampaigns else {
            return PaymentPlan(requests: try requests(.none, points: false), discountFen: 0, points: 0) { _, _ in }
        }
        let context = try Self.context(db, wallet: wallet, merchant: merchant, amountFen: payment.amountFen, at: payment.at, lookUpFirst: pipeline.needsFirstPayment)
        let result = try pipeline.plan(context)
        return PaymentPlan(requests: try requests(result, points: true), discountFen: result.discountFen, points: result.points) { transactionID, followers in
            try pipeline.record(paymentKey: payment.paymentKey, transactionID: transactionID, context: context, result: result, followers: followers)
        }
    }

    public func previewQR(_ db: any SQLConnection, wallet: WalletRecord, merchant: WalletService.Merchant, amountFen: Int64, at: TimestampMicros) throws -> [PlannedBenefit] {
        let pipeline = PaymentPipeline(db: db, campaigns: campaigns, clock: clock)
        guard pipeline.hasCampaigns else { return [] }
        let result = try pipeline.preview(try Self.context(db, wallet: wallet, merchant: merchant, amountFen: amountFen, at: at, lookUpFirst: pipeline.needsFirstPayment))
        return result.allocations.map { PlannedBenefit(campaignID: $0.campaignID, discountFen: $0.discountFen, points: $0.points) }
    }

    /// A QR payment as the campaigns see it; whether it is the wallet's first to the merchant
    /// is looked up only when a campaign asks (`lookUpFirst`).
    static func context(_ db: any SQLConnection, wallet: WalletRecord, merchant: WalletService.Merchant, amountFen: Int64, at: TimestampMicros, lookUpFirst: Bool) throws -> PaymentContext {
        let first = try lookUpFirst && !MovementStore(db).hasPaidMerchant(walletID: wallet.id, merchantID: merchant.id)
        return PaymentContext(kind: .qrPayment, walletID: wallet.id, billAccountID: nil, biller: nil, category: merchant.category, district: nil,
                              amountFen: amountFen, at: at, kycClass: wallet.kycVerified ? wallet.kycClass : 1, firstPayment: first)
    }
}
