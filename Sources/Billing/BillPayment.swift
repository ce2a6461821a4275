import Campaigns
import Foundation
import Ledger
import Payments
import Wallet
import QDSQL

/// A bill ready for a payment decision, with its wallet and link.
struct BillCandidate {
    var rowID: Int64
    var key: PaymentKey
    var dueFen: Int64
    var dueDate: String
    var category: String
    var district: String
    var billAccountID: Int64?
    var autopay: Bool
    var autopayLimitFen: Int64
    var wallet: WalletRecord?

    var biller: String { key.biller }
    var billID: String { key.billID }
    /// The ledger idempotency key of its payment, named by its row (`PaymentKey.key(row:)`).
    var paymentKey: String { key.key(row: rowID) }

    /// The outbox id of one of the bill's messages, `KIND:ROW:BILLER:BILLID`, its bill's row id
    /// zero-padded as in its payment key, so that the ids' text order is the rows'. The night
    /// goes through its bills in row order, so each message's entry in the outbox's unique
    /// index goes beside the one before it, not at a random place (at a million bills that
    /// index outgrows every cache, and a random place costs a page read and a page written a
    /// message). Stable: a bill keeps its row, so a rerun names the same message.
    func messageID(_ kind: String) -> String { Self.messageID(kind, rowID: rowID, key: key) }

    static func messageID(_ kind: String, rowID: Int64, key: PaymentKey) -> String { PaymentKey.text(kind + ":", row: rowID, ":", key.biller, ":", key.billID) }
}

/// How a payment attempt ended.
enum PaymentDecision: Equatable {
    case pay
    case pending(PendingReason)
    case unmatched
}

/// The one payment path for bills: the nightly autopay and `pay-bill` decide and post
/// exactly the same way, inside the caller's transaction.
struct BillPayment {
    let wallets: WalletService
    let now: TimestampMicros
    /// Spending of each wallet inside this transaction, beyond what the database shows yet.
    var spentInBatch: [Int64: Int64] = [:]
    /// Available balance of each wallet account as this transaction has left it.
    var available: [AccountID: Int64] = [:]
    /// The payment pipeline: campaigns planned in the payment's transaction, the linked
    /// requests, the record (nil: no campaigns configured, a bill is a plain transfer).
    let pipeline: PaymentPipeline?
    /// What the campaigns gave each bill decided `.pay`, by bill row.
    var benefits: [Int64: (PaymentContext, CampaignResult)] = [:]
    /// Wallet and biller pairs paid in this transaction (for first-payment benefits).
    var paidPairs: Set<String> = []
    /// What autopay took from each wallet for the business day, the database's part read
    /// once per wallet and this transaction's added as it goes.
    var autopayUsed: [Int64: Int64] = [:]
    /// What each wallet's class limit counted when the transaction began, read once for a
    /// chunk's wallets (`prefetch`); a wallet not in it is read when first paid from.
    var classUsed: [Int64: Int64] = [:]
    /// The business day of a nightly run (its autopay is capped per wallet and day); nil for
    /// a payment made by hand.
    var businessDate: ShanghaiCalendar.Date?

    /// The instant campaigns are evaluated at: the clock for a payment made now (pay-bill),
    /// the business date for the nightly run's autopay (see `init`).
    let campaignAt: TimestampMicros

    /// `campaignAt` nil means now. The nightly run passes its business date's start, the
    /// payment's effective time: a run for 27 November applies the campaigns, caps and daily
    /// budget slices of 27 November, whenever it runs (a rerun a week later included).
    init(wallets: WalletService, now: TimestampMicros, campaignAt: TimestampMicros? = nil, pipeline: PaymentPipeline? = nil) {
        self.wallets = wallets
        self.now = now
        self.campaignAt = campaignAt ?? now
        self.pipeline = pipeline?.hasCampaigns == true ? pipeline : nil
    }

    /// What the wallet pays for a bill decided `.pay`: the amount due less its discounts.
    func netFen(_ bill: BillCandidate) -> Int64 {
        bill.dueFen - (benefits[bill.rowID]?.1.discountFen ?? 0)
    }

    /// The autopay rules of wallet.md, in their order; `manual` skips the autopay ones.
    mutating func decide(_ store: BillStore, _ tx: any LedgerWriting, _ bill: BillCandidate, manual: Bool) throws -> PaymentDecision {
        guard let wallet = bill.wallet else { return .unmatched }
        if !manual {
            guard bill.autopay else { return .pending(.autopayOff) }
            guard bill.dueFen <= bill.autopayLimitFen else { return .pending(.overAutopayLimit) }
        }
        guard !wallet.frozen else { return .pending(.accountFrozen) }
        if !manual {
            guard wallet.kycVerified else { return .pending(.kycRequired) }
        }
        var autopayDay: (cap: Int64, used: Int64)?
        if !manual, let businessDate {
            let used: Int64
            if let known = autopayUsed[wallet.id] {
                used = known
            } else {
                used = try store.autopayUsed(walletID: wallet.id, on: businessDate)
            }
            autopayDay = (wallet.autopayDailyLimitFen ?? wallets.policy.autopayDailyFenMaxDefault, used)
        }
        // Campaigns first: the resident pays (and is limited by) what is left after discounts.
        var net = bill.dueFen
        var evaluated: (PaymentContext, CampaignResult)?
        if let pipeline {
            let pair = "\(wallet.id)|\(bill.biller)"
            // Looked up only when a campaign asks (and stored with the explanation only then).
            let paidBefore = try !pipeline.needsFirstPayment || paidPairs.contains(pair) || store.hasPaid(walletID: wallet.id, biller: bill.biller)
            let context = PaymentContext(kind: .utilityBill, walletID: wallet.id, billAccountID: bill.billAccountID, biller: bill.biller, category: bill.category, district: bill.district, amountFen: bill.dueFen, at: campaignAt, kycClass: wallet.kycVerified ? wallet.kycClass : 1, firstPayment: !paidBefore)
            let result = try pipeline.plan(context)
            net -= result.discountFen
            evaluated = (context, result)
        }
        func giveUp(_ reason: PendingReason) -> PaymentDecision {
            if let (context, result) = evaluated { pipeline?.abandon(context, result) }
            return .pending(reason)
        }
        if let (cap, used) = autopayDay, used + net > cap {
            // Password-free payments are capped per day: the rest waits for the resident.
            autopayUsed[wallet.id] = used
            return giveUp(.overAutopayDailyLimit)
        }
        let classRefusal = if let used = classUsed[wallet.id] {
            wallets.checkClassLimit(wallet: wallet, usedFen: used, amountFen: net + (spentInBatch[wallet.id] ?? 0))
        } else {
            try wallets.checkClassLimit(store.db, wallet: wallet, amountFen: net + (spentInBatch[wallet.id] ?? 0))
        }
        if classRefusal != nil {
            // A higher verification class would lift the limit.
            return giveUp(.kycRequired)
        }
        let availableNow: Int64
        if let known = available[wallet.walletAccountID] {
            availableNow = known
        } else {
            availableNow = try tx.account(id: wallet.walletAccountID)?.available ?? 0
        }
        guard availableNow >= net else { return giveUp(.insufficientFunds) }
        available[wallet.walletAccountID] = availableNow - net
        spentInBatch[wallet.id, default: 0] += net
        if let (_, used) = autopayDay { autopayUsed[wallet.id] = used + net }
        if let evaluated { benefits[bill.rowID] = evaluated }
        paidPairs.insert("\(wallet.id)|\(bill.biller)")
        return .pay
    }

    /// Reads what a chunk's decisions need of its wallets in a few statements instead of a
    /// few a bill: the campaigns' caps, the autopay of the business day, the class-limit counters and (when given,
    /// as the wallets' locks returned them) the available balances. The wallets must be
    /// locked, or the writer alone, until the chunk commits.
    mutating func prefetch(_ store: BillStore, wallets records: [WalletRecord], billAccountIDs: [Int64], accounts: [Account]) throws {
        try pipeline?.prefetch(walletIDs: records.map(\.id), billAccountIDs: billAccountIDs, at: campaignAt)
        if let businessDate {
            autopayUsed = try store.autopayUsed(walletIDs: records.map(\.id), on: businessDate)
        }
        classUsed = try wallets.classLimitUsage(store.db, wallets: records)
        for account in accounts { available[account.id] = account.available }
    }

    /// The postings for a bill decided `.pay`, as one linked group: the payment (the bill's
    /// identity is its idempotency key; sponsors fund the discounts) and any pending points.
    func requests(_ bill: BillCandidate, billerAccountID: AccountID, businessDate: ShanghaiCalendar.Date, tx: any LedgerWriting) throws -> [PostingRequest] {
        let wallet = bill.wallet!
        let memo = "bill \(bill.biller) \(bill.billID)"
        guard let pipeline, let (_, result) = benefits[bill.rowID] else {
            return [PostingRequest(key: bill.paymentKey, action: .transfer(legs: [.debit(wallet.walletAccountID, bill.dueFen), .credit(billerAccountID, bill.dueFen)]), memo: memo, effectiveAt: businessDate.startMicros)]
        }
        return try pipeline.requests(key: bill.paymentKey, amountFen: bill.dueFen, payer: wallet.walletAccountID, payee: billerAccountID, pointsAccount: wallet.pointsAccountID,
                                     memo: memo, effectiveAt: businessDate.startMicros, result: result, tx: tx)
    }

    /// Records a committed payment into `writes`: the bill, the wallet's history, the
    /// receipt (the campaigns' allocations are written at once).
    func recordPaid(into writes: inout BillWrites, _ db: any SQLConnection, _ bill: BillCandidate, transactionID: TransactionID, followers: ArraySlice<PostingResult> = [], via: PaidVia, businessDate: ShanghaiCalendar.Date, billerName: String, category: String) throws {
        let result = benefits[bill.rowID]?.1 ?? .none
        writes.paid.append((bill.rowID, BillStore.Paid(walletID: bill.wallet!.id, billAccountID: bill.billAccountID, transactionID: transactionID, paidFen: bill.dueFen,
                                                       discountFen: result.discountFen, points: result.points, via: via, businessDate: businessDate)))
        if let pipeline, let (context, result) = benefits[bill.rowID] {
            try pipeline.record(paymentKey: bill.paymentKey, transactionID: transactionID, context: context, result: result, followers: followers, paidAt: now, deferred: true)
        }
        wallets.recordMovement(into: &writes.wallet, walletID: bill.wallet!.id, kind: "bill", counterparty: billerName, category: category, amountFen: -netFen(bill), discountFen: result.discountFen, points: result.points, balancePayment: true, transactionID: transactionID, reference: bill.key.reference)
        if via == .autopay {
            // Autopay is password-free: it is watched like any payment, one alert per kind a night.
            wallets.monitorPayment(into: &writes.wallet, wallet: bill.wallet!, amountFen: netFen(bill), via: "autopay", paymentKey: bill.paymentKey, dayKey: businessDate.iso)
            Outbox.enqueue(into: &writes.wallet, walletID: bill.wallet!.id, kind: .autopayReceipt, payload: [
                "biller": bill.biller, "bill_id": bill.billID, "amount": Money(fen: bill.dueFen).yuanString,
                "paid": Money(fen: netFen(bill)).yuanString, "discount": Money(fen: result.discountFen).yuanString, "points": String(result.points),
                "phone": Mask.phone(bill.wallet!.phone),
            ], now: now, messageID: bill.messageID("autopay"))
        }
    }

    /// Releases what the campaigns held for a bill whose payment the ledger refused.
    mutating func forget(_ bill: BillCandidate) {
        if let (context, result) = benefits.removeValue(forKey: bill.rowID) { pipeline?.abandon(context, result) }
    }

    /// Records a bill left payable (with the reason the resident is told) or unmatched, into
    /// `writes`.
    func recordNotPaid(into writes: inout BillWrites, _ bill: BillCandidate, decision: PaymentDecision) {
        switch decision {
        case .unmatched:
            writes.unmatched.append(bill.rowID)
        case .pending(let reason):
            writes.payable.append((bill.rowID, reason, bill.wallet?.id, bill.billAccountID))
            if let wallet = bill.wallet {
                Self.queueNotice(into: &writes.wallet, wallet: wallet, rowID: bill.rowID, key: bill.key, dueFen: bill.dueFen, dueDate: bill.dueDate, reason: reason.code, now: now)
            }
        case .pay:
            break
        }
    }
}

extension BillPayment {
    /// Queues the notice of a bill left payable for a wallet into `writes`: the processing's,
    /// and the ingest's for the bills whose link decided them at the feed's move.
    static func queueNotice(into writes: inout PaymentWrites, wallet: WalletRecord, rowID: Int64, key: PaymentKey, dueFen: Int64, dueDate: String, reason: String, now: TimestampMicros) {
        Outbox.enqueue(into: &writes, walletID: wallet.id, kind: .billNotice, payload: [
            "biller": key.biller, "bill_id": key.billID, "amount": Money(fen: dueFen).yuanString,
            "due_date": dueDate, "reason": reason, "phone": Mask.phone(wallet.phone),
        ], now: now, messageID: BillCandidate.messageID("notice", rowID: rowID, key: key))
    }

    /// The notices of the bills a feed's move left payable (their link decided them), queued
    /// in the feed's transaction, a page at a time: each bill's wallet read with its page, as
    /// the processing reads a chunk's.
    static func queueNoticesDecidedAtMove(_ db: any SQLConnection, feedKey: String, wallets service: WalletService, now: TimestampMicros, page: Int = 2_000) throws {
        try BillStore(db).forEachDecidedAtMove(feedKey: feedKey, page: page) { bills in
            let wallets = try WalletStore(db).wallets(ids: bills.map(\.walletID))
            var writes = PaymentWrites()
            for bill in bills {
                // The link's wallet: a foreign key, and wallets are never deleted.
                guard let wallet = wallets[bill.walletID] else {
                    throw LedgerError(.corrupt, "a bill's link names a wallet that does not exist", context: "bill row \(bill.rowID)")
                }
                queueNotice(into: &writes, wallet: wallet, rowID: bill.rowID, key: bill.key, dueFen: bill.dueFen, dueDate: bill.dueDate, reason: bill.reason, now: now)
            }
            try service.flush(db, &writes)
        }
    }
}

/// What a chunk of bill decisions leaves besides the ledger: the bills' new states and the
/// wallets' writes (and, through the pipeline, the campaigns' rows), gathered so that they go in a few multi-row
/// statements when flushed, in the chunk's transaction.
struct BillWrites {
    var paid: [(rowID: Int64, paid: BillStore.Paid)] = []
    var unmatched: [Int64] = []
    var payable: [(rowID: Int64, reason: PendingReason, walletID: Int64?, billAccountID: Int64?)] = []
    var wallet = PaymentWrites()

    mutating func flush(_ db: any SQLConnection, wallets: WalletService, campaigns: PaymentPipeline?, at now: TimestampMicros) throws {
        try campaigns?.flush()
        let store = BillStore(db)
        try store.markPaid(paid, at: now)
        try store.markNotPaid(unmatched: unmatched, payable: payable, at: now)
        try wallets.flush(db, &wallet)
        self = BillWrites()
    }
}
