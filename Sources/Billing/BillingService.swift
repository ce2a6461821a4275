import Campaigns
import Foundation
import GRDB
import Ledger
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

    var store: SQLiteLedgerStore { wallets.store }
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
    public func link(phone: String, biller: String, customerNo: String, autopay: Bool, autopayLimitFen: Int64?) throws -> BillAccount {
        let limit = autopayLimitFen ?? (autopay ? 50_000 : 0)
        if autopay && limit < 1 { throw BillingRefusal.invalidLimit }
        return try store.transaction { db, _ in
            let wallet = try wallets.wallet(phone: phone)
            guard try Row.fetchOne(db, sql: "SELECT 1 FROM billers WHERE code = ?", arguments: [biller]) != nil else { throw BillingRefusal.unknownBiller }
            guard customerNo.utf8.count >= 6, customerNo.utf8.count <= 20, customerNo.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { throw BillingRefusal.invalidCustomerNo }
            if let existing = try Row.fetchOne(db, sql: "SELECT id, wallet_id FROM bill_accounts WHERE biller = ? AND customer_no = ? AND status = 'linked'", arguments: [biller, customerNo]) {
                guard (existing["wallet_id"] as Int64) == wallet.id else { throw BillingRefusal.accountAlreadyLinked }
                try db.execute(sql: "UPDATE bill_accounts SET autopay = ?, autopay_limit_fen = ? WHERE id = ?", arguments: [autopay, limit, existing["id"] as Int64])
                return BillAccount(id: existing["id"], biller: biller, customerNo: customerNo, autopay: autopay, autopayLimitFen: limit, status: "linked")
            }
            try db.execute(sql: "INSERT INTO bill_accounts (wallet_id, biller, customer_no, autopay, autopay_limit_fen, status, linked_at) VALUES (?, ?, ?, ?, ?, 'linked', ?)",
                           arguments: [wallet.id, biller, customerNo, autopay, limit, now])
            return BillAccount(id: db.lastInsertedRowID, biller: biller, customerNo: customerNo, autopay: autopay, autopayLimitFen: limit, status: "linked")
        }
    }

    /// Unlinks a bill account from the wallet.
    public func unlink(phone: String, biller: String, customerNo: String) throws -> BillAccount {
        try store.transaction { db, _ in
            let wallet = try wallets.wallet(phone: phone)
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM bill_accounts WHERE biller = ? AND customer_no = ? AND status = 'linked' AND wallet_id = ?", arguments: [biller, customerNo, wallet.id]) else {
                throw BillingRefusal.accountNotLinked
            }
            try db.execute(sql: "UPDATE bill_accounts SET status = 'unlinked', unlinked_at = ? WHERE id = ?", arguments: [now, row["id"] as Int64])
            return BillAccount(id: row["id"], biller: biller, customerNo: customerNo, autopay: row["autopay"], autopayLimitFen: row["autopay_limit_fen"], status: "unlinked")
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
    public func bills(phone: String, status: String?) throws -> [Bill] {
        let wallet = try wallets.wallet(phone: phone)
        return try store.pool.read { db in
            var sql = """
                SELECT b.* FROM bills b
                WHERE (b.wallet_id = ? OR EXISTS (SELECT 1 FROM bill_accounts a WHERE a.wallet_id = ? AND a.status = 'linked' AND a.biller = b.biller AND a.customer_no = b.customer_no))
                """
            var arguments: StatementArguments = [wallet.id, wallet.id]
            if let status { sql += " AND b.status = ?"; arguments += [status] }
            sql += " ORDER BY b.id DESC LIMIT 500"
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                Bill(biller: row["biller"], billId: row["bill_id"], customerNo: row["customer_no"], period: row["period"], amountFen: row["amount_fen"],
                     lateFeeFen: row["late_fee_fen"], dueFen: row["due_fen"], dueDate: row["due_date"], status: row["status"], reason: row["reason"],
                     transactionId: row["transaction_id"], paidVia: row["paid_via"], discountFen: row["discount_fen"], points: row["points"])
            }
        }
    }

    /// Pays one payable bill by hand, through the same path as autopay (password required).
    /// Racing the nightly run is safe: the bill's status is checked and changed in the
    /// payment's own transaction, and its identity is the ledger's idempotency key.
    public func payBill(phone: String, reference: String, password: String) throws -> WalletService.Receipt {
        let parts = reference.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, parts[1].utf8.count <= 35 else { throw BillingRefusal.invalidBillReference }
        let matched = try wallets.checkPasswordForPayment(phone: phone, password: password)
        let outcome: Result<WalletService.Receipt, any Error> = try store.transaction { db, tx in
            var wallet = try wallets.wallet(db, phone: phone)
            if let refusal = try wallets.recordPassword(db, wallet: wallet, matched: matched) { return .failure(refusal) }
            wallet = try wallets.wallet(db, phone: phone)
            guard let row = try Row.fetchOne(db, sql: """
                SELECT b.*, r.name AS biller_name, r.category AS biller_category, r.account_id AS biller_account FROM bills b JOIN billers r ON r.code = b.biller
                WHERE b.biller = ? AND b.bill_id = ?
                """, arguments: [parts[0], parts[1]]) else { return .failure(BillingRefusal.billNotFound) }
            let linked = try Row.fetchOne(db, sql: "SELECT id FROM bill_accounts WHERE wallet_id = ? AND biller = ? AND customer_no = ? AND status = 'linked'", arguments: [wallet.id, parts[0], row["customer_no"] as String])
            let ownerID: Int64? = row["wallet_id"]
            guard ownerID == wallet.id || linked != nil else { return .failure(BillingRefusal.billNotFound) }
            let status: String = row["status"]
            if status == "paid" {
                if ownerID == wallet.id, let transactionID = row["transaction_id"] as Int64? {
                    // Paid already, by this wallet: answer with that payment.
                    var receipt = try wallets.receipt(db, walletID: wallet.id, transactionID: transactionID)
                    receipt.replayed = true
                    return .success(receipt)
                }
                return .failure(BillingRefusal.billAlreadyPaid)
            }
            guard status == "payable" || status == "new" || status == "unmatched" else { return .failure(BillingRefusal.billNotPayable) }
            let bill = BillCandidate(rowID: row["id"], biller: parts[0], billID: parts[1], dueFen: row["due_fen"], dueDate: row["due_date"], category: row["biller_category"], district: row["district"], billAccountID: linked?["id"], autopay: false, autopayLimitFen: 0, wallet: wallet)
            var payment = BillPayment(wallets: wallets, now: now, book: campaigns.isEmpty ? nil : CampaignBook(db: db, campaigns: campaigns))
            switch try payment.decide(db, tx, bill, manual: true) {
            case .pay:
                let businessDate = ShanghaiCalendar.date(at: now)
                let requests = try payment.requests(bill, billerAccountID: row["biller_account"], businessDate: businessDate, tx: tx)
                let results = try wallets.ledger.post(requests, in: tx)
                switch results[0] {
                case .committed(let transactionID, _):
                    try payment.recordPaid(db, bill, transactionID: transactionID, pointsHolds: payment.pointsHolds(bill, results: results[...]), via: "manual", businessDate: businessDate, billerName: row["biller_name"], category: row["biller_category"])
                    try wallets.monitorPayment(db, wallet: wallet, amountFen: bill.dueFen)
                    return .success(try wallets.receipt(db, walletID: wallet.id, transactionID: transactionID))
                case .refused(let refusal, _):
                    return .failure(refusal)
                }
            case .pending("ACCOUNT_FROZEN"): return .failure(WalletRefusal.walletFrozen)
            case .pending("KYC_REQUIRED"): return .failure(WalletRefusal.classLimitExceeded)
            case .pending: return .failure(WalletRefusal.insufficientFunds)
            case .unmatched: return .failure(BillingRefusal.billNotFound)
            }
        }
        return try outcome.get()
    }
}
