import AppAccess
import Billing
import Campaigns
import Foundation
import HTTPTypes
import Hummingbird
import Ledger
import Wallet

/// The routes of receipts, the monthly summary, bill accounts (户号) and bills.
extension WalletRoutes {
    // MARK: Receipts and the summary

    /// The receipt of one payment of the token's wallet, with what each campaign did to it
    /// (`campaign explain`, without the sponsors' budgets): another wallet's is not found.
    func paymentReceipt(_ request: Request, _ context: WalletRequestContext) async throws -> Response {
        let principal = try await authenticate(request)
        guard let id = Self.pathID(context, "transaction_id") else { throw Problem.paymentNotFound }
        let wallets = backend.wallets
        let (movement, explanation) = try await blocking { () -> (WalletService.Movement?, CampaignStore.Explanation?) in
            guard let movement = try wallets.movement(walletID: principal.walletID, transactionID: id) else { return (nil, nil) }
            return (movement, try wallets.store.database.read { db in try CampaignStore(db).explanation(transactionID: id) })
        }
        guard let movement else { throw Problem.paymentNotFound }
        var answer = Self.movement(movement)
        answer["campaigns"] = try Self.campaigns(explanation).map { explained -> [String: Any] in
            ["campaign_id": explained.campaignId, "version": explained.version, "applied": explained.applied, "reason": explained.reason,
             "discount": Money(fen: explained.discountFen).yuanString, "points": explained.points]
        }
        return Self.json(.ok, answer)
    }

    /// The campaigns' explanation as recorded with the payment (none for a payment no
    /// campaign looked at).
    static func campaigns(_ row: CampaignStore.Explanation?) throws -> [Explanation] {
        guard let row else { return [] }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode([Explanation].self, from: Data(row.explanation.utf8))
    }

    /// Spending of one month by category (`month`, YYYY-MM).
    func summary(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        guard let month = request.uri.queryParameters.get("month").map({ String($0) }), month.utf8.count == 7, ShanghaiCalendar.Date(iso: month + "-01") != nil else {
            throw Problem.invalidQuery("month is a calendar month, YYYY-MM")
        }
        let lines = try await blocking { try backend.wallets.monthlySummary(phone: principal.phone, month: month) }
        return Self.json(.ok, ["month": month, "categories": lines.map {
            ["category": $0.category, "spent": Money(fen: $0.spentFen).yuanString, "payments": $0.payments] as [String: Any]
        }, "spent": Money(fen: lines.reduce(0) { $0 + $1.spentFen }).yuanString])
    }

    // MARK: Bill accounts

    static func billAccount(_ account: BillingService.BillAccount) -> [String: Any] {
        ["id": account.id, "biller": account.biller, "customer_no": account.customerNo, "autopay": account.autopay,
         "autopay_limit": Money(fen: account.autopayLimitFen).yuanString, "status": account.status]
    }

    /// The wallet's bill accounts, with the most autopay may take on one day.
    func listBillAccounts(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let billing = backend.billing
        let (accounts, daily) = try await blocking {
            (try billing.accounts(phone: principal.phone), try billing.wallets.wallet(phone: principal.phone).autopayDailyLimitFen)
        }
        return Self.json(.ok, ["accounts": accounts.map(Self.billAccount),
                               "autopay_daily_limit": Money(fen: daily ?? backend.wallets.policy.autopayDailyFenMaxDefault).yuanString])
    }

    struct LinkRequest: Decodable {
        var biller: String
        var customer_no: String
        var autopay: Bool
        var autopay_limit: String?
        var payment_password: String?
    }

    /// Links a biller's customer number to the wallet (or changes the autopay of one the
    /// wallet links already); a number another wallet links is refused. Letting autopay take
    /// more (a number linked with autopay on, autopay turned on, a higher per-bill limit)
    /// needs the payment password: autopay pays without asking, and a stolen token must not
    /// set the wallet paying someone else's bills. Lowering or turning off needs the token.
    func linkBillAccount(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let body = try await Self.decode(LinkRequest.self, request, keys: ["biller", "customer_no", "autopay", "autopay_limit", "payment_password"])
        let limit = try body.autopay_limit.map { text -> Int64 in
            guard let money = try? Money(yuan: text) else { throw BillingRefusal.invalidLimit }
            return money.fen
        }
        guard body.biller.utf8.count <= 32 else { throw BillingRefusal.unknownBiller }
        let wallets = backend.wallets
        let account = try await blocking {
            let matched = try body.payment_password.flatMap { try wallets.checkConfirmation(.password($0), phone: principal.phone) }
            return try backend.billing.link(phone: principal.phone, biller: body.biller, customerNo: body.customer_no, autopay: body.autopay, autopayLimitFen: limit) { db, wallet in
                guard let matched else { return Problem.app(.confirmationRequired) }
                return try wallets.recordConfirmation(db, wallet: wallet, matched: matched)
            }
        }
        return Self.json(.created, Self.billAccount(account))
    }

    func unlinkBillAccount(_ request: Request, _ context: WalletRequestContext) async throws -> Response {
        let principal = try await authenticate(request)
        guard let id = Self.pathID(context, "account_id") else { throw Problem.billing(.accountNotLinked) }
        let account = try await blocking { try backend.billing.unlink(phone: principal.phone, accountID: id) }
        return Self.json(.ok, Self.billAccount(account))
    }

    struct AutopayLimitRequest: Decodable {
        var amount: String
        var payment_password: String?
    }

    /// The most autopay may take from the wallet on one business day. A raise needs the
    /// payment password (a token alone may lower it): autopay pays without asking.
    func setAutopayLimit(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let body = try await Self.decode(AutopayLimitRequest.self, request, keys: ["amount", "payment_password"])
        let fen = try Self.amount(body.amount)
        let wallets = backend.wallets
        let record = try await blocking { () throws -> WalletRecord in
            let current = wallets.autopayDailyLimitFen(try wallets.wallet(phone: principal.phone))
            if fen > current, body.payment_password == nil { throw Problem.app(.confirmationRequired) }
            return try wallets.setAutopayDailyLimit(phone: principal.phone, fen: fen, password: body.payment_password)
        }
        return Self.json(.ok, ["autopay_daily_limit": Money(fen: wallets.autopayDailyLimitFen(record)).yuanString])
    }

    // MARK: Bills

    /// The wallet's bills (its own and those of the numbers it links), newest first,
    /// optionally of one status.
    func listBills(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        var status: BillStatus?
        if let text = request.uri.queryParameters.get("status") {
            guard let value = BillStatus(rawValue: String(text)) else {
                throw Problem.invalidQuery("status is one of \(BillStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            status = value
        }
        let wanted = status
        let bills = try await blocking { try backend.billing.bills(phone: principal.phone, status: wanted) }
        return Self.json(.ok, ["bills": bills.map { bill -> [String: Any] in
            var line: [String: Any] = [
                "reference": bill.biller + ":" + bill.billId, "biller": bill.biller, "bill_id": bill.billId, "customer_no": bill.customerNo, "period": bill.period,
                "amount": Money(fen: bill.amountFen).yuanString, "late_fee": Money(fen: bill.lateFeeFen).yuanString, "due": Money(fen: bill.dueFen).yuanString,
                "due_date": bill.dueDate, "status": bill.status, "discount": Money(fen: bill.discountFen).yuanString, "points": bill.points,
            ]
            if let reason = bill.reason { line["reason"] = reason }
            if let id = bill.transactionId { line["transaction_id"] = id }
            if let via = bill.paidVia { line["paid_via"] = via }
            return line
        }])
    }

    struct BillPaymentRequest: Decodable {
        var bill: String
        var payment_password: String?
        var device_signature: DeviceSignature?
    }

    /// Pays one bill of the wallet by hand (`pay-bill`), confirmed as a payment; campaigns
    /// apply as they would to autopay. A bill paid already by this wallet answers with that
    /// payment's receipt.
    func payBill(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let body = try await Self.decode(BillPaymentRequest.self, request, keys: ["bill", "payment_password", "device_signature"])
        guard body.bill.utf8.count <= 80 else { throw Problem.billing(.invalidBillReference) }
        let billing = backend.billing
        // The amount decides whether both factors are needed; a bill's amount never changes.
        let due = try await blocking { try billing.dueFen(phone: principal.phone, reference: body.bill) }
        let payment = Payment(operation: "bill_payment", parameters: ["bill": body.bill], amountFen: due,
                              password: body.payment_password, signature: body.device_signature)
        return try await idempotent(request, principal, payment) { _, confirmation, hooks in
            try billing.payBill(phone: principal.phone, reference: body.bill, confirmation: confirmation, hooks: hooks)
        }
    }
}

extension Problem {
    static let paymentNotFound = Problem(.notFound, code: "payment_not_found", title: "Not Found",
                                         detail: "No payment of this wallet has this transaction id.", detailZh: "该钱包没有这笔交易。")
}
