import AppAccess
import Billing
import Campaigns
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Ledger
import ServiceLifecycle
import Wallet

/// What the wallet routes run on: the app's sign-in and sessions, and the wallet service
/// (with the campaigns' planner, so a QR payment gets its discounts and points).
public struct WalletBackend: Sendable {
    public let access: AppAccess
    public let wallets: WalletService
    /// Bill accounts, bills and paying one by hand, with the campaigns of the nightly run.
    public let billing: BillingService
    /// The most a request waits for the database before it is answered 503.
    public var deadline: Duration = .seconds(10)
    /// How often an open alert stream looks for new alerts.
    public var alertPollInterval: Duration = .seconds(1)
    /// Delivers the outbox's urgent messages due now (one-time codes, security alerts) to the
    /// notify sink, answering how many went and how many failed; nil: the notify job's beat
    /// delivers them.
    public var deliverUrgent: (@Sendable () throws -> (delivered: Int, failed: Int))?
    /// How often the server looks for urgent messages to deliver.
    public var urgentDeliveryInterval: Duration = .seconds(1)

    public init(access: AppAccess, wallets: WalletService, campaigns: [Campaign] = []) {
        self.access = access
        self.wallets = wallets
        billing = BillingService(wallets: wallets, campaigns: campaigns)
    }
}

/// The routes of the wallet app (`/v1/...`). The wallet a request touches is always the one
/// of its access token: no route takes a wallet from its path or body, so a token of one
/// wallet can name nothing of another's.
struct WalletRoutes: Sendable {
    let backend: WalletBackend
    /// Token buckets per device and per wallet, taken once a request's token is checked.
    let devices: TokenBuckets
    let wallets: TokenBuckets

    static let bodyBytesMax = 16_384

    func register(_ router: Router<WalletRequestContext>) {
        router.post("/v1/sms-codes") { request, _ in try await sendCode(request) }
        router.post("/v1/devices") { request, _ in try await registerDevice(request) }
        WalletServer.get(router, "/v1/devices") { request, _ in try await listDevices(request) }
        router.delete("/v1/devices/{device_id}") { request, context in try await removeDevice(request, context) }
        router.post("/v1/tokens") { request, _ in try await refresh(request) }
        WalletServer.get(router, "/v1/wallet") { request, _ in try await balance(request) }
        WalletServer.get(router, "/v1/wallet/history") { request, _ in try await history(request) }
        WalletServer.get(router, "/v1/alerts") { request, _ in try await alerts(request) }
        router.post("/v1/qr/decode") { request, _ in try await decodeQR(request) }
        router.post("/v1/kyc") { request, _ in try await submitKYC(request) }
        WalletServer.get(router, "/v1/cards") { request, _ in try await listCards(request) }
        router.post("/v1/cards") { request, _ in try await bindCard(request) }
        router.delete("/v1/cards/{card_id}") { request, context in try await unbindCard(request, context) }
        router.post("/v1/top-ups") { request, _ in try await topUp(request) }
        router.post("/v1/withdrawals") { request, _ in try await withdraw(request) }
        router.post("/v1/challenges") { request, _ in try await challenge(request) }
        router.post("/v1/payments/qr") { request, _ in try await payQR(request) }
        router.post("/v1/transfers") { request, _ in try await transfer(request) }
        WalletServer.get(router, "/v1/payments/{transaction_id}") { request, context in try await paymentReceipt(request, context) }
        WalletServer.get(router, "/v1/wallet/summary") { request, _ in try await summary(request) }
        WalletServer.get(router, "/v1/bill-accounts") { request, _ in try await listBillAccounts(request) }
        router.post("/v1/bill-accounts") { request, _ in try await linkBillAccount(request) }
        router.delete("/v1/bill-accounts/{account_id}") { request, context in try await unlinkBillAccount(request, context) }
        router.put("/v1/wallet/autopay-limit") { request, _ in try await setAutopayLimit(request) }
        WalletServer.get(router, "/v1/bills") { request, _ in try await listBills(request) }
        router.post("/v1/bill-payments") { request, _ in try await payBill(request) }
    }

    // MARK: Sign-in

    struct CodeRequest: Decodable { var phone: String }

    func sendCode(_ request: Request) async throws -> Response {
        let body = try await Self.decode(CodeRequest.self, request, keys: ["phone"])
        do {
            let seconds = try await blocking { try backend.access.sendCode(phone: body.phone) }
            return Self.json(.accepted, ["expires_in": seconds])
        } catch AppRefusal.codeThrottled {
            let wait = (try? await blocking { try backend.access.codeRetryAfter(phone: body.phone) }) ?? 60
            throw Problem.app(.codeThrottled, retryAfter: Int(wait))
        }
    }

    struct DeviceRequest: Decodable {
        var phone: String
        var code: String
        var public_key: String
        var label: String
        var name: String?
        var payment_password: String?
    }

    func registerDevice(_ request: Request) async throws -> Response {
        let body = try await Self.decode(DeviceRequest.self, request, keys: ["phone", "code", "public_key", "label", "name", "payment_password"])
        let registration = AppAccess.Registration(phone: body.phone, code: body.code, publicKey: body.public_key, label: body.label, name: body.name, paymentPassword: body.payment_password)
        let session = try await blocking { try backend.access.register(registration) }
        return Self.json(.created, Self.session(session))
    }

    struct RefreshRequest: Decodable { var refresh_token: String }

    func refresh(_ request: Request) async throws -> Response {
        let body = try await Self.decode(RefreshRequest.self, request, keys: ["refresh_token"])
        let session = try await blocking { try backend.access.refresh(token: body.refresh_token) }
        return Self.json(.ok, Self.session(session))
    }

    static func session(_ session: AppAccess.Session) -> [String: Any] {
        ["wallet_id": session.walletID, "device_id": session.deviceID, "access_token": session.accessToken, "token_type": "Bearer",
         "expires_in": session.accessTokenExpiresIn, "refresh_token": session.refreshToken, "wallet_opened": session.walletOpened]
    }

    func listDevices(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let devices = try await blocking { try backend.access.devices(walletID: principal.walletID) }
        return Self.json(.ok, ["devices": devices.map {
            ["id": $0.id, "label": $0.label, "registered_at": ShanghaiCalendar.rfc3339(at: $0.registeredAt), "current": $0.id == principal.deviceID] as [String: Any]
        }])
    }

    func removeDevice(_ request: Request, _ context: WalletRequestContext) async throws -> Response {
        let principal = try await authenticate(request)
        guard let id = Self.pathID(context, "device_id") else { throw Problem.app(.deviceNotFound) }
        try await blocking { try backend.access.removeDevice(walletID: principal.walletID, deviceID: id) }
        return Response(status: .noContent)
    }

    // MARK: The wallet

    func balance(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let balance = try await blocking { try backend.wallets.balance(walletID: principal.walletID) }
        return Self.json(.ok, [
            "phone": Mask.phone(principal.phone), "balance": Money(fen: balance.balanceFen).yuanString, "available": Money(fen: balance.availableFen).yuanString,
            "points": balance.points, "frozen": balance.frozen, "kyc_class": balance.kycClass,
        ])
    }

    func history(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let query = request.uri.queryParameters
        let month = query.get("month")
        let kind = query.get("kind")
        if let month, month.utf8.count != 7 || ShanghaiCalendar.Date(iso: month + "-01") == nil {
            throw Problem.invalidQuery("month is a calendar month, YYYY-MM")
        }
        if let kind, kind.isEmpty || kind.utf8.count > 32 || !kind.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F }) {
            throw Problem.invalidQuery("kind is a movement kind such as qr_payment, transfer_in or bill_payment")
        }
        var limit = 50
        if let text = query.get("limit") {
            guard text.utf8.count <= 3, let value = Int(text), (1...200).contains(value), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw Problem.invalidQuery("limit is a whole number from 1 to 200")
            }
            limit = value
        }
        let count = limit
        let movements = try await blocking { try backend.wallets.history(phone: principal.phone, month: month, kind: kind, limit: count) }
        return Self.json(.ok, ["movements": movements.map(Self.movement)])
    }

    static func movement(_ movement: WalletService.Movement) -> [String: Any] {
        var line: [String: Any] = [
            "id": movement.id, "kind": movement.kind, "counterparty": movement.counterparty, "category": movement.category,
            "amount": Money(fen: movement.amountFen).yuanString, "discount": Money(fen: movement.discountFen).yuanString, "points": movement.points,
            "transaction_id": movement.transactionId, "created_at": ShanghaiCalendar.rfc3339(at: movement.createdAt), "month": movement.month,
        ]
        if let reference = movement.reference { line["reference"] = reference }
        return line
    }

    // MARK: Real-name verification and cards

    struct KYCRequest: Decodable {
        var name: String
        var id_number: String
    }

    /// Real-name submission (实名认证): the name and resident ID number, sealed under the data
    /// key, for review; the answer shows the number masked only.
    func submitKYC(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let body = try await Self.decode(KYCRequest.self, request, keys: ["name", "id_number"])
        let submission = try await blocking { try backend.wallets.submitKYC(phone: principal.phone, name: body.name, idNumber: body.id_number) }
        return Self.json(.accepted, ["submission_id": submission.id, "status": submission.status, "id_number_masked": submission.idNumberMasked])
    }

    static func card(_ card: WalletService.Card) -> [String: Any] {
        ["id": card.id, "bank": card.bank, "masked": card.masked, "status": card.status]
    }

    func listCards(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let cards = try await blocking { try backend.wallets.cards(phone: principal.phone) }
        return Self.json(.ok, ["cards": cards.map(Self.card)])
    }

    struct CardRequest: Decodable {
        var card_number: String
        var bank: String
    }

    func bindCard(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let body = try await Self.decode(CardRequest.self, request, keys: ["card_number", "bank"])
        let card = try await blocking { try backend.wallets.bindCard(phone: principal.phone, cardNumber: body.card_number, bank: body.bank) }
        return Self.json(.created, Self.card(card))
    }

    /// Unbinds a card of the token's wallet: refused while a top-up or withdrawal through it
    /// is pending; a card of another wallet is not found.
    func unbindCard(_ request: Request, _ context: WalletRequestContext) async throws -> Response {
        let principal = try await authenticate(request)
        guard let id = Self.pathID(context, "card_id") else { throw Problem.wallet(.cardNotFound) }
        let card = try await blocking { try backend.wallets.unbindCard(phone: principal.phone, cardID: id) }
        return Self.json(.ok, Self.card(card))
    }

    struct TopUpRequest: Decodable {
        var card_id: Int64
        var amount: String
    }

    /// A top-up from a bound card of the wallet's own (no confirmation: money comes in).
    func topUp(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let body = try await Self.decode(TopUpRequest.self, request, keys: ["card_id", "amount"])
        let payment = Payment(operation: "topup", parameters: ["card_id": String(body.card_id), "amount": body.amount], amountFen: nil,
                              password: nil, signature: nil, confirmed: false)
        return try await idempotent(request, principal, payment) { key, _, hooks in
            try backend.wallets.topUp(phone: principal.phone, cardID: body.card_id, amountFen: try Self.amount(body.amount), idempotencyKey: key, hooks: hooks)
        }
    }

    struct WithdrawalRequest: Decodable {
        var card_id: Int64
        var amount: String
        var payment_password: String?
        var device_signature: DeviceSignature?
    }

    /// A withdrawal to a bound card of the wallet's own, confirmed as a payment: the money is
    /// held until the bank pays it out (the card cannot be unbound meanwhile).
    func withdraw(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let body = try await Self.decode(WithdrawalRequest.self, request, keys: ["card_id", "amount", "payment_password", "device_signature"])
        let payment = Payment(operation: "withdrawal", parameters: ["card_id": String(body.card_id), "amount": body.amount], amountFen: try? Self.amount(body.amount),
                              password: body.payment_password, signature: body.device_signature)
        return try await idempotent(request, principal, payment, render: Self.withdrawal) { key, confirmation, hooks in
            try backend.wallets.withdraw(phone: principal.phone, cardID: body.card_id, amountFen: try Self.amount(body.amount), idempotencyKey: key,
                                         confirmation: confirmation, hooks: hooks)
        }
    }

    @Sendable static func withdrawal(_ withdrawal: WalletService.Withdrawal) -> [String: Any] {
        ["withdrawal_id": withdrawal.withdrawalId, "transaction_id": withdrawal.transactionId, "amount": Money(fen: withdrawal.amountFen).yuanString, "status": withdrawal.status]
    }

    // MARK: Alerts

    /// The wallet's security alerts as they are queued (wrong passwords, a large payment, many
    /// payments at once, a new device, a device signed out), as server-sent events (the
    /// WHATWG HTML standard, section 9.2): `id` is the alert's, so a client that reconnects
    /// with `Last-Event-ID` misses none; without it, the stream starts with the alerts queued
    /// after it opened. The stream ends after `timeout` seconds (55 unless told, 1 to 300) or
    /// when the server stops, and tells the client to reconnect after 2 seconds.
    func alerts(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        var after: Int64?
        if let last = request.headers[HTTPField.Name("Last-Event-ID")!] {
            guard !last.isEmpty, last.utf8.count <= 18, last.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let id = Int64(last) else {
                throw Problem.invalidQuery("Last-Event-ID is the id of an event this stream sent")
            }
            after = id
        }
        var seconds = 55
        if let text = request.uri.queryParameters.get("timeout") {
            guard text.utf8.count <= 3, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int(text), (1...300).contains(value) else {
                throw Problem.invalidQuery("timeout is a whole number of seconds from 1 to 300")
            }
            seconds = value
        }
        let wallets = backend.wallets
        let poll = backend.alertPollInterval
        let resume = after
        let start = try await blocking { try wallets.securityAlerts(walletID: principal.walletID, after: resume) }
        let end = ContinuousClock.now + .seconds(seconds)
        let body = ResponseBody { writer in
            var last = start.last
            var pending = start.alerts
            var quiet = ContinuousClock.now
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            while true {
                for alert in pending {
                    try await writer.write(ByteBuffer(string: "id: \(alert.id)\nevent: security_alert\ndata: \(alert.payload)\n\n"))
                    last = alert.id
                    quiet = ContinuousClock.now
                }
                if ContinuousClock.now >= end || Task.isCancelled || Task.isShuttingDownGracefully { break }
                // A comment keeps proxies from closing a quiet stream.
                if ContinuousClock.now - quiet > .seconds(15) {
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    quiet = ContinuousClock.now
                }
                try? await Task.sleep(for: poll)
                let from = last
                pending = try await Blocking.run(deadline: .seconds(10)) { try wallets.securityAlerts(walletID: principal.walletID, after: from).alerts }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    // MARK: Payments

    struct DecodeRequest: Decodable {
        var payload: String
        var amount: String?
    }

    /// What a scanned code would pay: the merchant and the fixed amount, if any; with an
    /// amount (fixed, or the one the resident typed), the campaigns that would apply now and
    /// what would be paid after their discounts.
    func decodeQR(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let body = try await Self.decode(DecodeRequest.self, request, keys: ["payload", "amount"])
        guard body.payload.utf8.count <= 512 else { throw Problem.qr(QRRefusal(.qrMalformed, clause: "a payload is at most 512 bytes")) }
        let qr = try MerchantQR.parse(body.payload)
        let typed = try body.amount.map(Self.amount)
        if let fixed = qr.amountFen, let typed, fixed != typed { throw WalletRefusal.qrAmountMismatch }
        let wallets = backend.wallets
        let fen = qr.amountFen ?? typed
        let (merchant, benefits): (WalletService.Merchant, [PlannedBenefit])
        do {
            (merchant, benefits) = try await blocking {
                let merchant = try wallets.merchant(id: qr.merchantID)
                return (merchant, try fen.map { try wallets.previewQR(walletID: principal.walletID, merchantID: merchant.id, amountFen: $0) } ?? [])
            }
        } catch WalletRefusal.merchantNotFound {
            throw Problem.qr(QRRefusal(.qrUnknownMerchant, clause: "the merchant id in qdwallet's template (ID 26 01) is not registered"))
        }
        var answer: [String: Any] = ["merchant_id": merchant.id, "merchant_name": merchant.name, "category": merchant.category]
        if let fen = qr.amountFen { answer["amount"] = Money(fen: fen).yuanString }
        if let fen {
            let discount = benefits.reduce(0) { $0 + $1.discountFen }
            answer["campaigns"] = benefits.map { ["campaign_id": $0.campaignID, "discount": Money(fen: $0.discountFen).yuanString, "points": $0.points] as [String: Any] }
            answer["to_pay"] = Money(fen: fen - discount).yuanString
        }
        return Self.json(.ok, answer)
    }

    /// A challenge for the device's key to sign, confirming one payment.
    func challenge(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let challenge = try await blocking { try backend.access.challenge(for: principal) }
        return Self.json(.created, ["challenge_id": challenge.id, "nonce": challenge.nonce, "expires_in": challenge.expiresIn])
    }

    struct DeviceSignature: Decodable, Sendable {
        var challenge_id: Int64
        var signature: String
    }

    struct QRPaymentRequest: Decodable {
        var payload: String
        var amount: String?
        var payment_password: String?
        var device_signature: DeviceSignature?
    }

    func payQR(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let body = try await Self.decode(QRPaymentRequest.self, request, keys: ["payload", "amount", "payment_password", "device_signature"])
        let fixed = (try? MerchantQR.parse(body.payload))?.amountFen
        let given = try? body.amount.map(Self.amount)
        let payment = Payment(operation: "qr_payment", parameters: ["payload": body.payload, "amount": body.amount ?? ""], amountFen: fixed ?? given ?? nil,
                              password: body.payment_password, signature: body.device_signature)
        return try await idempotent(request, principal, payment) { key, confirmation, hooks in
            let fen = try body.amount.map(Self.amount)
            return try backend.wallets.payQR(phone: principal.phone, payload: body.payload, amountFen: fen, confirmation: confirmation, idempotencyKey: key, hooks: hooks)
        }
    }

    struct TransferRequest: Decodable {
        var to_phone: String
        var amount: String
        var payment_password: String?
        var device_signature: DeviceSignature?
    }

    func transfer(_ request: Request) async throws -> Response {
        let principal = try await authenticate(request)
        let body = try await Self.decode(TransferRequest.self, request, keys: ["to_phone", "amount", "payment_password", "device_signature"])
        let payment = Payment(operation: "transfer", parameters: ["to_phone": body.to_phone, "amount": body.amount], amountFen: try? Self.amount(body.amount),
                              password: body.payment_password, signature: body.device_signature)
        return try await idempotent(request, principal, payment) { key, confirmation, hooks in
            let fen = try Self.amount(body.amount)
            return try backend.wallets.transfer(from: principal.phone, to: body.to_phone, amountFen: fen, confirmation: confirmation, idempotencyKey: key, hooks: hooks)
        }
    }

    /// A request that moves money, as the idempotency and the confirmation see it.
    struct Payment: Sendable {
        var operation: String
        /// Its parameters without credentials: what the key is checked against and the device signs.
        var parameters: [String: String]
        var amountFen: Int64?
        var password: String?
        var signature: DeviceSignature?
        /// Whether it needs the resident's confirmation (money out of the wallet does).
        var confirmed = true

        var confirmation: WalletService.PaymentConfirmation {
            guard let password else { return .deviceSignature }
            return signature == nil ? .password(password) : .passwordAndDeviceSignature(password)
        }
    }

    /// An earlier answer to a request with the same key.
    struct Replayed: Error {
        var status: Int
        var body: String
    }

    static func amount(_ text: String) throws -> Int64 {
        guard let money = try? Money(yuan: text) else { throw WalletRefusal.invalidAmount }
        return money.fen
    }

    @Sendable static func receipt(_ receipt: WalletService.Receipt) -> [String: Any] {
        ["transaction_id": receipt.transactionId, "amount": Money(fen: receipt.amountFen).yuanString, "discount": Money(fen: receipt.discountFen).yuanString,
         "points": receipt.points, "kind": receipt.kind, "counterparty": receipt.counterparty]
    }

    /// A request that moves money, under the draft "The Idempotency-Key HTTP Header Field":
    /// no key 400; the key with other parameters 422; a retry gets the first answer again,
    /// status and body, marked `Idempotent-Replayed: true`. The key is scoped to the wallet and
    /// is the ledger's key too; its record, the spent challenge and the answer are written in
    /// the payment's own transaction, so a retry while the first is in flight waits for it
    /// and gets its answer (409 only when a first request's record outlived its server
    /// without an answer, until its lease ends). Wrong credentials keep nothing: the same key
    /// may be retried with the right password.
    ///
    /// The confirmation: the password, the device's signature of a challenge, or both, which
    /// a large payment (the monitoring's threshold), a device registered in the last day and
    /// any payment in the day after a password reset need; the signature is checked in the payment's transaction, its challenge spent.
    func idempotent(_ request: Request, _ principal: AppAccess.Principal, _ payment: Payment,
                    _ work: @escaping @Sendable (String, WalletService.PaymentConfirmation, WalletService.PaymentHooks<WalletService.Receipt>) throws -> WalletService.Receipt) async throws -> Response {
        try await idempotent(request, principal, payment, render: Self.receipt, work)
    }

    /// `idempotent` for an operation whose answer is `Answer`, shown by `render`.
    func idempotent<Answer: Sendable>(_ request: Request, _ principal: AppAccess.Principal, _ payment: Payment, render: @escaping @Sendable (Answer) -> [String: Any],
                                      _ work: @escaping @Sendable (String, WalletService.PaymentConfirmation, WalletService.PaymentHooks<Answer>) throws -> Answer) async throws -> Response {
        guard let key = request.headers[HTTPField.Name("Idempotency-Key")!] else { throw Problem.app(.idempotencyKeyMissing) }
        guard (try? Validation.idempotencyKey(key)) != nil else { throw Problem.wallet(.invalidIdempotencyKey) }
        guard !payment.confirmed || payment.password != nil || payment.signature != nil else { throw Problem.app(.confirmationRequired) }
        let hash = AppAccess.requestHash(payment.parameters)
        let answer: Answer
        do {
            answer = try await blocking { try work(key, payment.confirmation, hooks(principal, payment, key: key, hash: hash, render: render)) }
        } catch let replay as Replayed {
            let media = (200..<300).contains(replay.status) ? "application/json" : Problem.mediaType
            return Response(status: HTTPResponse.Status(code: replay.status), headers: [.contentType: media, HTTPField.Name("Idempotent-Replayed")!: "true"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: replay.body)))
        }
        return Response(status: .created, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: Self.jsonText(render(answer)))))
    }

    /// The payment's transaction, as the idempotency and the confirmation take part in it.
    func hooks<Answer>(_ principal: AppAccess.Principal, _ payment: Payment, key: String, hash: [UInt8],
                       render: @escaping (Answer) -> [String: Any]) -> WalletService.PaymentHooks<Answer> {
        let access = backend.access
        let largeFen = backend.wallets.policy.largePaymentAlertFen
        return WalletService.PaymentHooks(
            before: { db in
                switch try access.claim(db, walletID: principal.walletID, key: key, operation: payment.operation, requestHash: hash) {
                case .mismatch: return .answer(.failure(Problem.app(.idempotencyKeyReused)))
                case .inFlight: return .answer(.failure(Problem.app(.requestInFlight)))
                case .replay(let status, let body): return .answer(.failure(Replayed(status: status, body: body)))
                case .proceed: break
                }
                guard payment.confirmed else { return .proceed }
                let oneFactor = payment.password == nil || payment.signature == nil
                if oneFactor, (payment.amountFen ?? 0) >= largeFen || access.needsBothFactors(principal) {
                    try access.release(db, walletID: principal.walletID, key: key)
                    return .answer(.failure(AppRefusal.secondFactorRequired))
                }
                if let signature = payment.signature,
                   let refusal = try access.checkPaymentSignature(db, principal, challengeID: signature.challenge_id, signature: signature.signature, operation: payment.operation, requestHash: hash) {
                    try access.release(db, walletID: principal.walletID, key: key)
                    return .answer(.failure(refusal))
                }
                return .proceed
            },
            after: { db, outcome in
                switch outcome {
                case .success(let answer):
                    try access.finish(db, walletID: principal.walletID, key: key, status: 201, body: Self.jsonText(render(answer)))
                case .failure(let error) where Self.keeps(error):
                    let problem = Problem.from(error, allowed: nil, logger: WalletServer.logger)
                    try access.finish(db, walletID: principal.walletID, key: key, status: Int(problem.status.code), body: problem.json)
                case .failure:
                    try access.release(db, walletID: principal.walletID, key: key)
                }
            })
    }

    /// Whether a refusal is kept as the key's answer: the wallet's refusals are; wrong or
    /// missing credentials and the app's own refusals are not.
    static func keeps(_ error: any Error) -> Bool {
        switch error {
        case WalletRefusal.wrongPassword, WalletRefusal.passwordLocked, WalletRefusal.passwordNotSet: false
        case is WalletRefusal, is QRRefusal: true
        default: false
        }
    }

    // MARK: Plumbing

    func authenticate(_ request: Request) async throws -> AppAccess.Principal {
        guard let header = request.headers[.authorization] else { throw Problem.app(.tokenMissing) }
        guard header.count > 7, header.prefix(7).lowercased() == "bearer " else { throw Problem.app(.tokenInvalid) }
        let token = String(header.dropFirst(7))
        let principal = try await blocking { try backend.access.authenticate(bearer: token) }
        if let wait = devices.take(String(principal.deviceID)) { throw Problem.rateLimited(retryAfter: wait, source: "device") }
        if let wait = wallets.take(String(principal.walletID)) { throw Problem.rateLimited(retryAfter: wait, source: "wallet") }
        return principal
    }

    /// A path's id: ASCII digits that fit 64 bits, else nil (answered not-found).
    static func pathID(_ context: WalletRequestContext, _ name: String) -> Int64? {
        guard let text = context.parameters.get(name), !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(text)
    }

    func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await Blocking.run(deadline: backend.deadline, body)
    }

    /// The body as `T`: a JSON object with no member outside `keys` (a typo in a member's
    /// name is refused, not ignored), at most 16 KiB.
    static func decode<T: Decodable>(_ type: T.Type, _ request: Request, keys: Set<String>) async throws -> T {
        if let media = request.headers[.contentType], !media.lowercased().hasPrefix("application/json") {
            throw Problem(.unsupportedMediaType, code: "unsupported_media_type", title: "Unsupported Media Type",
                          detail: "The body must be application/json.", detailZh: "请求体须为 application/json。")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: bodyBytesMax)
        } catch {
            throw Problem.bodyTooLarge
        }
        let data = Data(buffer.readableBytesView)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Problem.invalidBody("The body must be a JSON object.")
        }
        if let unknown = object.keys.sorted().first(where: { !keys.contains($0) }) {
            throw Problem.invalidBody("The member \(unknown.debugDescription.prefix(40)) is not one this operation takes (\(keys.sorted().joined(separator: ", "))).")
        }
        // An optional member is left out, never null (the document allows no null).
        if let null = object.keys.sorted().first(where: { object[$0] is NSNull }) {
            throw Problem.invalidBody("The member \(null.debugDescription) is null: leave an optional member out instead.")
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw Problem.invalidBody("The member \"\(key.stringValue)\" is required.")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw Problem.invalidBody("The member \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type (the document says which).")
        } catch {
            throw Problem.invalidBody("The body must be a JSON object of this operation.")
        }
    }

    static func jsonText(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: jsonText(object))))
    }
}

extension Problem {
    static func invalidQuery(_ detail: String) -> Problem {
        Problem(.badRequest, code: "invalid_query", title: "Bad Request", detail: detail, detailZh: "查询参数不符合要求。")
    }
}
