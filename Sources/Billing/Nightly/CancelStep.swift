import Campaigns
import JobRunner
import Ledger
import Wallet
import QDSQL

/// Cancels of the staged feeds: an unpaid bill is no longer payable; a paid one is refunded
/// in full by a reversal of its payment.
struct CancelStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable { var lastID: Int64 }

    let config: NightlyBillingConfig
    let name = "cancels"
    let checkpointVersion = 1

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(lastID: 0) }

    func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        let now = context.clock.nowMicros()
        let store = BillStore(db)
        var cancels = try store.openCancels(of: try context.date("date"), after: checkpoint.lastID, limit: context.chunkSizeMax)
        var wallets = try WalletStore(db).wallets(ids: cancels.compactMap { $0.bill?.status == .paid ? $0.bill?.walletID : nil })
        if ledger.concurrentWriters {
            // Other writers at once (PostgreSQL): the paid bills' wallets and every bill of the
            // chunk are locked (as pay-bill takes them: wallet, then bill), and the chunk read
            // again under the locks, so a bill paid by hand meanwhile is refunded, not marked
            // cancelled over its payment.
            try config.wallets.lock(ledger, wallets: Array(wallets.values))
            try store.lock(rowIDs: cancels.compactMap { $0.bill?.rowID })
            cancels = try store.openCancels(of: try context.date("date"), after: checkpoint.lastID, limit: context.chunkSizeMax)
            wallets = try WalletStore(db).wallets(ids: cancels.compactMap { $0.bill?.status == .paid ? $0.bill?.walletID : nil })
            try config.wallets.lock(ledger, wallets: Array(wallets.values))
        }
        var counts = ChunkCounts(read: cancels.count, done: cancels.count < context.chunkSizeMax)
        for cancel in cancels {
            let day = ShanghaiCalendar.Date(iso: cancel.day) ?? ShanghaiCalendar.date(at: now)
            let outcome: String
            switch cancel.bill {
            case nil:
                outcome = "unknown_bill"
                try store.recordRejectedCancel(feedID: cancel.feedID, seq: cancel.seq, billID: cancel.key.billID, reason: "UNKNOWN_BILL")
                counts.skipped += 1
            case let bill? where bill.status.isOpen:
                try store.markCancelled(rowID: bill.rowID, on: day, at: now)
                outcome = "cancelled"
                counts.written += 1
            case let bill? where bill.status == .paid:
                guard let original = bill.transactionID, let walletID = bill.walletID, let wallet = wallets[walletID] else {
                    throw LedgerError(.storage, "a paid bill has no payment or wallet", context: cancel.key.reference)
                }
                let request = PostingRequest(key: cancel.key.refundKey, action: .reverse(transactionID: original), memo: "bill cancelled: refund", effectiveAt: day.startMicros)
                switch try Ledger.post([request], in: ledger, clock: context.clock)[0] {
                case .committed(let refundID, _):
                    // The wallet gets back what it paid; sponsors get back their discounts
                    // (the reversal's legs), and the campaigns release what they allocated,
                    // under the key the payment was made with (a payment made before the row
                    // led the key holds the earlier form).
                    guard let paid = try ledger.transaction(id: original) else {
                        throw LedgerError(.storage, "a paid bill's payment is not in the journal", context: cancel.key.reference)
                    }
                    try CampaignBook(db: db, campaigns: []).reverse(paymentKey: paid.key, reversalTransactionID: refundID, pointsAccount: wallet.pointsAccountID, tx: ledger, clock: context.clock, at: now)
                    try store.markRefunded(rowID: bill.rowID, refund: refundID, on: day, at: now)
                    try config.wallets.recordMovement(db, walletID: walletID, kind: "bill_refund", counterparty: cancel.billerName, category: cancel.category, amountFen: bill.paidFen - bill.discountFen,
                                                      balancePayment: true, transactionID: refundID, reference: cancel.key.reference)
                    outcome = "refunded"
                    counts.written += 1
                case .refused(let refusal, _):
                    outcome = "refund_refused"
                    try store.recordRejectedCancel(feedID: cancel.feedID, seq: cancel.seq, billID: cancel.key.billID, reason: "REFUND_" + refusal.rawValue.uppercased())
                    counts.failed += 1
                }
            case .some:
                outcome = "ignored"
                counts.skipped += 1
            }
            try store.setCancelOutcome(id: cancel.id, outcome: outcome)
        }
        return (Checkpoint(lastID: cancels.last?.id ?? checkpoint.lastID), counts)
    }
}
