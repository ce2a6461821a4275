import Foundation
import GRDB
import Ledger
import Wallet

/// A bill ready for a payment decision, with its wallet and link.
struct BillCandidate {
    var rowID: Int64
    var biller: String
    var billID: String
    var dueFen: Int64
    var dueDate: String
    var billAccountID: Int64?
    var autopay: Bool
    var autopayLimitFen: Int64
    var wallet: WalletRecord?
}

/// How a payment attempt ended.
enum PaymentDecision: Equatable {
    case pay
    case pending(String)
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

    init(wallets: WalletService, now: TimestampMicros) {
        self.wallets = wallets
        self.now = now
    }

    /// The autopay rules of wallet.md, in their order; `manual` skips the autopay ones.
    mutating func decide(_ db: Database, _ tx: any LedgerWriting, _ bill: BillCandidate, manual: Bool) throws -> PaymentDecision {
        guard let wallet = bill.wallet else { return .unmatched }
        if !manual {
            guard bill.autopay else { return .pending("AUTOPAY_OFF") }
            guard bill.dueFen <= bill.autopayLimitFen else { return .pending("OVER_AUTOPAY_LIMIT") }
        }
        guard !wallet.frozen else { return .pending("ACCOUNT_FROZEN") }
        if !manual {
            guard wallet.kycVerified else { return .pending("KYC_REQUIRED") }
        }
        var limitWallet = wallet
        limitWallet.id = wallet.id
        if try wallets.checkClassLimit(db, wallet: wallet, amountFen: bill.dueFen + (spentInBatch[wallet.id] ?? 0)) != nil {
            // A higher verification class would lift the limit.
            return .pending("KYC_REQUIRED")
        }
        let availableNow: Int64
        if let known = available[wallet.walletAccountID] {
            availableNow = known
        } else {
            availableNow = try tx.account(id: wallet.walletAccountID)?.available ?? 0
        }
        guard availableNow >= bill.dueFen else { return .pending("INSUFFICIENT_FUNDS") }
        available[wallet.walletAccountID] = availableNow - bill.dueFen
        spentInBatch[wallet.id, default: 0] += bill.dueFen
        return .pay
    }

    /// The posting for a bill decided `.pay`: the bill's identity is the idempotency key.
    static func request(_ bill: BillCandidate, billerAccountID: AccountID, businessDate: ShanghaiCalendar.Date) -> PostingRequest {
        PostingRequest(
            key: "bill:\(bill.biller):\(bill.billID)",
            action: .transfer(legs: [.debit(bill.wallet!.walletAccountID, bill.dueFen), .credit(billerAccountID, bill.dueFen)]),
            memo: "bill \(bill.biller) \(bill.billID)",
            effectiveAt: businessDate.startMicros)
    }

    /// Records a committed payment: the bill, the wallet's history, the receipt.
    func recordPaid(_ db: Database, _ bill: BillCandidate, transactionID: TransactionID, via: String, businessDate: ShanghaiCalendar.Date, billerName: String, category: String) throws {
        try db.execute(sql: """
            UPDATE bills SET status = 'paid', reason = NULL, wallet_id = ?, bill_account_id = ?, transaction_id = ?, paid_fen = ?,
                paid_at = ?, paid_via = ?, paid_business_date = ?, updated_at = ? WHERE id = ?
            """, arguments: [bill.wallet!.id, bill.billAccountID, transactionID, bill.dueFen, now, via, businessDate.iso, now, bill.rowID])
        try wallets.recordMovement(db, walletID: bill.wallet!.id, kind: "bill", counterparty: billerName, category: category, amountFen: -bill.dueFen, balancePayment: true, transactionID: transactionID, reference: "\(bill.biller):\(bill.billID)")
        if via == "autopay" {
            try Outbox.enqueue(db, walletID: bill.wallet!.id, kind: .autopayReceipt, payload: [
                "biller": bill.biller, "bill_id": bill.billID, "amount": Money(fen: bill.dueFen).yuanString,
                "phone": Mask.phone(bill.wallet!.phone),
            ], now: now, messageID: "autopay:\(bill.biller):\(bill.billID)")
        }
    }

    /// Records a bill left payable (with the reason the resident is told) or unmatched.
    func recordNotPaid(_ db: Database, _ bill: BillCandidate, decision: PaymentDecision) throws {
        switch decision {
        case .unmatched:
            try db.execute(sql: "UPDATE bills SET status = 'unmatched', reason = 'UNKNOWN_CUSTOMER', updated_at = ? WHERE id = ?", arguments: [now, bill.rowID])
        case .pending(let reason):
            try db.execute(sql: "UPDATE bills SET status = 'payable', reason = ?, wallet_id = ?, bill_account_id = ?, updated_at = ? WHERE id = ?",
                           arguments: [reason, bill.wallet?.id, bill.billAccountID, now, bill.rowID])
            if let wallet = bill.wallet {
                try Outbox.enqueue(db, walletID: wallet.id, kind: .billNotice, payload: [
                    "biller": bill.biller, "bill_id": bill.billID, "amount": Money(fen: bill.dueFen).yuanString,
                    "due_date": bill.dueDate, "reason": reason, "phone": Mask.phone(wallet.phone),
                ], now: now, messageID: "notice:\(bill.biller):\(bill.billID)")
            }
        case .pay:
            break
        }
    }
}
