import Campaigns
import Foundation
import Ledger
import Payments
import QDSQL
import Wallet

/// Bill accounts (户号), bills and manual payment, for the CLI and the app.
public struct BillingService: Sendable {
    public let wallets: WalletService
    /// The campaigns applied to manual payments (the same as the nightly run's).
    public let campaigns: [Campaign]

    public init(wallets: WalletService, campaigns: [Campaign] = []) {
        self.wallets = wallets
        self.campaigns = campaigns
    }

    var store: SQLLedgerStore { wallets.store }
    var now: TimestampMicros { wallets.ledger.clock.nowMicros() }

    public struct BillAccount: Sendable, Hashable, Codable {
        public var id: Int64
        public var biller: String
        public var customerNo: String
        public var autopay: Bool
        public var autopayLimitFen: Int64
        public var status: String
    }

    /// Links a biller's customer number to a wallet, with autopay on or off and a limit.
    /// `confirm`, when given, is asked in the transaction whenever the change lets autopay
    /// take more than it could (a number linked with autopay on, autopay turned on, a higher
    /// per-bill limit): an error it returns refuses the change after what it wrote commits
    /// (the app's payment password, its failures counted as a payment's).
    public func link(phone: String, biller: String, customerNo: String, autopay: Bool, autopayLimitFen: Int64?,
                     confirm: ((any SQLConnection, WalletRecord) throws -> (any Error)?)? = nil) throws -> BillAccount {
        let phone = try Validation.phone(phone)
        let limit = autopayLimitFen ?? (autopay ? 50_000 : 0)
        if autopay && limit < 1 { throw BillingRefusal.invalidLimit }
        let outcome: Result<BillAccount, any Error> = try store.transaction { db, tx in
            let wallet = try wallets.lockedWallet(db, tx, phone: phone)
            let bills = BillStore(db)
            guard try bills.billerExists(biller) else { throw BillingRefusal.unknownBiller }
            guard customerNo.utf8.count >= 6, customerNo.utf8.count <= 20, customerNo.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { throw BillingRefusal.invalidCustomerNo }
            let existing = try bills.link(biller: biller, customerNo: customerNo)
            if let existing, existing.walletID != wallet.id { throw BillingRefusal.accountAlreadyLinked }
            let raises = autopay && (existing.map { !$0.autopay || limit > $0.autopayLimitFen } ?? true)
            if raises, let confirm, let refusal = try confirm(db, wallet) { return .failure(refusal) }
            if let existing {
                try bills.setAutopay(linkID: existing.id, autopay: autopay, limitFen: limit)
                return .success(BillAccount(id: existing.id, biller: biller, customerNo: customerNo, autopay: autopay, autopayLimitFen: limit, status: "linked"))
            }
            let id = try bills.insertLink(walletID: wallet.id, biller: biller, customerNo: customerNo, autopay: autopay, limitFen: limit, at: now)
            return .success(BillAccount(id: id, biller: biller, customerNo: customerNo, autopay: autopay, autopayLimitFen: limit, status: "linked"))
        }
        return try outcome.get()
    }

    /// Unlinks a bill account from the wallet.
    public func unlink(phone: String, biller: String, customerNo: String) throws -> BillAccount {
        try store.transaction { db, _ in
            let wallet = try wallets.wallet(phone: phone)
            let bills = BillStore(db)
            guard let link = try bills.link(biller: biller, customerNo: customerNo), link.walletID == wallet.id else {
                throw BillingRefusal.accountNotLinked
            }
            try bills.unlink(linkID: link.id, at: now)
            return BillAccount(id: link.id, biller: biller, customerNo: customerNo, autopay: link.autopay, autopayLimitFen: link.autopayLimitFen, status: "unlinked")
        }
    }

    /// The wallet's linked bill accounts, oldest first.
    public func accounts(phone: String) throws -> [BillAccount] {
        let wallet = try wallets.wallet(phone: phone)
        return try store.database.read { db in try BillStore(db).links(walletID: wallet.id) }
    }

    /// Unlinks a bill account of the wallet by its id; another wallet's is not linked to it.
    public func unlink(phone: String, accountID: Int64) throws -> BillAccount {
        try store.transaction { db, _ in
            let wallet = try wallets.wallet(db, phone: phone)
            let bills = BillStore(db)
            guard var account = try bills.link(id: accountID, walletID: wallet.id) else { throw BillingRefusal.accountNotLinked }
            try bills.unlink(linkID: account.id, at: now)
            account.status = "unlinked"
            return account
        }
    }

    public struct Bill: Sendable, Hashable, Codable {
        public var biller: String
        public var billId: String
        public var customerNo: String
        public var period: String
        public var amountFen: Int64
        public var lateFeeFen: Int64
        public var dueFen: Int64
        public var dueDate: String
        public var status: String
        public var reason: String?
        public var transactionId: Int64?
        public var paidVia: String?
        public var discountFen: Int64
        public var points: Int64
    }

    /// The wallet's bills, newest first, optionally of one status.
    public func bills(phone: String, status: BillStatus?) throws -> [Bill] {
        let wallet = try wallets.wallet(phone: phone)
        return try store.database.read { db in
            try BillStore(db).bills(walletID: wallet.id, status: status, limit: 500)
        }
    }

    /// What a bill of the wallet asks to be paid, or nil when the wallet has no such bill
    /// (another wallet's is not told apart from none): for a caller's rule that depends on
    /// the amount before it pays (the app's second factor for large payments). The payment
    /// itself reads the bill again in its transaction.
    public func dueFen(phone: String, reference: String) throws -> Int64? {
        guard let key = PaymentKey(reference: reference) else { throw BillingRefusal.invalidBillReference }
        return try store.database.read { db in
            let wallet = try wallets.wallet(db, phone: phone)
            let bills = BillStore(db)
            guard let found = try bills.bill(key) else { return nil }
            if found.walletID == wallet.id { return found.dueFen }
            let linked = try bills.link(biller: key.biller, customerNo: found.customerNo)
            return linked?.walletID == wallet.id ? found.dueFen : nil
        }
    }

    /// Pays one payable bill by hand, through the same path as autopay (password required).
    /// Racing the nightly run is safe: the bill's status is checked and changed in the
    /// payment's own transaction, and its identity is the ledger's idempotency key.
    public func payBill(phone: String, reference: String, password: String) throws -> WalletService.Receipt {
        try payBill(phone: phone, reference: reference, confirmation: .password(password))
    }

    /// `payBill`, confirmed as the app confirms a payment (the password, the device's
    /// signature, or both), with the app's work in the payment's transaction (`hooks`).
    public func payBill(phone: String, reference: String, confirmation: WalletService.PaymentConfirmation,
                        hooks: WalletService.PaymentHooks<WalletService.Receipt>? = nil) throws -> WalletService.Receipt {
        guard let key = PaymentKey(reference: reference) else { throw BillingRefusal.invalidBillReference }
        let matched = try wallets.checkConfirmation(confirmation, phone: phone)
        let outcome: Result<WalletService.Receipt, any Error> = try store.transaction { db, tx in try wallets.hooked(hooks, db) {
            var wallet = try wallets.lockedWallet(db, tx, phone: phone)
            if let refusal = try wallets.recordConfirmation(db, wallet: wallet, matched: matched) { return .failure(refusal) }
            wallet = try wallets.wallet(db, phone: phone)
            let bills = BillStore(db)
            guard var found = try bills.bill(key) else { return .failure(BillingRefusal.billNotFound) }
            if tx.concurrentWriters {
                // The bill's row too, then the bill again: the night's cancel of this bill
                // waits for this payment, or this payment for the cancel.
                try bills.lock(rowIDs: [found.rowID])
                guard let locked = try bills.bill(key) else { return .failure(BillingRefusal.billNotFound) }
                found = locked
            }
            let linked = try bills.link(biller: key.biller, customerNo: found.customerNo).flatMap { $0.walletID == wallet.id ? $0 : nil }
            guard found.walletID == wallet.id || linked != nil else { return .failure(BillingRefusal.billNotFound) }
            if found.status == .paid {
                if found.walletID == wallet.id, let transactionID = found.transactionID {
                    // Paid already, by this wallet: answer with that payment.
                    var receipt = try wallets.receipt(db, walletID: wallet.id, transactionID: transactionID)
                    receipt.replayed = true
                    return .success(receipt)
                }
                return .failure(BillingRefusal.billAlreadyPaid)
            }
            guard found.status.isOpen else { return .failure(BillingRefusal.billNotPayable) }
            let bill = BillCandidate(rowID: found.rowID, key: key, dueFen: found.dueFen, dueDate: found.dueDate, category: found.category, district: found.district, billAccountID: linked?.id, autopay: false, autopayLimitFen: 0, wallet: wallet)
            var payment = BillPayment(wallets: wallets, now: now, pipeline: PaymentPipeline(db: db, campaigns: campaigns, clock: wallets.ledger.clock))
            switch try payment.decide(bills, tx, bill, manual: true) {
            case .pay:
                let businessDate = ShanghaiCalendar.date(at: now)
                let requests = try payment.requests(bill, billerAccountID: found.billerAccountID, businessDate: businessDate, tx: tx)
                let results = try wallets.ledger.post(requests, in: tx)
                switch results[0] {
                case .committed(let transactionID, _):
                    var writes = BillWrites()
                    try payment.recordPaid(into: &writes, db, bill, transactionID: transactionID, followers: results.dropFirst(), via: .manual, businessDate: businessDate, billerName: found.billerName, category: found.category)
                    wallets.monitorPayment(into: &writes.wallet, wallet: wallet, amountFen: bill.dueFen)
                    try writes.flush(db, wallets: wallets, campaigns: payment.pipeline, at: now)
                    return .success(try wallets.receipt(db, walletID: wallet.id, transactionID: transactionID))
                case .refused(let refusal, _):
                    return .failure(WalletService.map(refusal))
                }
            case .pending(.accountFrozen): return .failure(WalletRefusal.walletFrozen)
            case .pending(.kycRequired): return .failure(WalletRefusal.classLimitExceeded)
            case .pending: return .failure(WalletRefusal.insufficientFunds)
            case .unmatched: return .failure(BillingRefusal.billNotFound)
            }
        } }
        return try outcome.get()
    }
}
