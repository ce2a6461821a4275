import Foundation
import Ledger
import QDSQL

extension WalletService {
    /// What a money-moving operation answers.
    public struct Receipt: Sendable, Hashable, Codable {
        public var transactionId: Int64
        public var amountFen: Int64
        public var discountFen: Int64
        public var points: Int64
        public var kind: String
        public var counterparty: String
        /// True when this is the answer to an earlier request with the same idempotency key.
        public var replayed: Bool
    }

    /// One line of a wallet's history.
    public struct Movement: Sendable, Hashable, Codable {
        public var id: Int64
        public var kind: String
        public var counterparty: String
        public var category: String
        /// Signed: money out of the wallet is negative.
        public var amountFen: Int64
        public var discountFen: Int64
        public var points: Int64
        public var transactionId: Int64
        public var reference: String?
        public var createdAt: Int64
        public var month: String
    }

    /// Records a movement of a wallet for its history (and, for balance payments, its class
    /// limit), in the caller's transaction; the receipt it makes (what `receipt` reads back).
    @discardableResult
    public func recordMovement(_ db: any SQLConnection, walletID: Int64, kind: String, counterparty: String, category: String, amountFen: Int64, discountFen: Int64 = 0, points: Int64 = 0, balancePayment: Bool, transactionID: Int64, reference: String?) throws -> Receipt {
        var writes = PaymentWrites()
        recordMovement(into: &writes, walletID: walletID, kind: kind, counterparty: counterparty, category: category, amountFen: amountFen, discountFen: discountFen, points: points,
                       balancePayment: balancePayment, transactionID: transactionID, reference: reference)
        try flush(db, &writes)
        return Receipt(transactionId: transactionID, amountFen: abs(amountFen), discountFen: discountFen, points: points, kind: kind, counterparty: counterparty, replayed: false)
    }

    /// Records a movement into `writes`, written when they are flushed.
    public func recordMovement(into writes: inout PaymentWrites, walletID: Int64, kind: String, counterparty: String, category: String, amountFen: Int64, discountFen: Int64 = 0, points: Int64 = 0, balancePayment: Bool, transactionID: Int64, reference: String?) {
        writes.movements.append(MovementStore.NewMovement(walletID: walletID, kind: kind, counterparty: counterparty, category: category, amountFen: amountFen, discountFen: discountFen,
                                                          points: points, balancePayment: balancePayment, transactionID: transactionID, reference: reference, at: now))
    }

    /// Writes what `writes` gathered, in the caller's transaction: the movements and their
    /// usage counters, then the monitoring's count of each watched wallet's recent payments
    /// (which sees them), then the outbox messages. `writes` is empty afterwards.
    public func flush(_ db: any SQLConnection, _ writes: inout PaymentWrites) throws {
        try MovementStore(db).insert(writes.movements)
        // Each watched wallet's recent payments, counted up to one past the threshold (the cost
        // is bounded whatever the wallet did in the window), for all of them in a few reads.
        let recentCounts = writes.watchedOrder.isEmpty ? [:] : try MovementStore(db).balancePayments(
            walletIDs: writes.watchedOrder, after: now - policy.paymentsWindowMicros, upTo: policy.paymentsInWindowMax + 1)
        for walletID in writes.watchedOrder {
            guard let (record, via, dayKey) = writes.watched[walletID] else { continue }
            if recentCounts[walletID] ?? 0 > policy.paymentsInWindowMax {
                var payload = ["event": "many_payments", "phone": Mask.phone(record.phone), "payments_in_window_over": String(policy.paymentsInWindowMax),
                               "window_minutes": String(policy.paymentsWindowMicros / 60_000_000)]
                if let via { payload["via"] = via }
                // Once a wallet a night (autopay) or a window's length: the payments after the
                // one that crossed the threshold do not each alert the resident again.
                let period = dayKey ?? "w\(now / policy.paymentsWindowMicros)"
                Outbox.enqueue(into: &writes, walletID: record.id, kind: .securityAlert, payload: payload, now: now, messageID: "many_payments:\(record.id):\(period)")
            }
        }
        try OutboxStore(db).enqueue(writes.messages)
        writes = PaymentWrites()
    }

    /// The receipt of a committed transaction, from the wallet's history.
    public func receipt(_ db: any SQLConnection, walletID: Int64, transactionID: Int64, replayed: Bool = false) throws -> Receipt {
        guard let movement = try MovementStore(db).movement(walletID: walletID, transactionID: transactionID) else {
            throw WalletError(.corrupt, "a committed transaction has no wallet movement")
        }
        return Receipt(transactionId: transactionID, amountFen: abs(movement.amountFen), discountFen: movement.discountFen, points: movement.points, kind: movement.kind,
                       counterparty: movement.counterparty, replayed: replayed)
    }

    /// Refuses a balance payment that would take the wallet past its class limit; to be
    /// called inside the payment's transaction so that racing payments see each other.
    public func checkClassLimit(_ db: any SQLConnection, wallet record: WalletRecord, amountFen: Int64) throws -> WalletRefusal? {
        checkClassLimit(wallet: record, usedFen: try sendClassLimitUsage(db, wallet: record).get(), amountFen: amountFen)
    }

    /// What the wallet's class limit has counted so far, sent ahead (`SQLConnection.sendQuery`).
    /// The wallet must stay locked (or the writer alone) until the payment commits.
    public func sendClassLimitUsage(_ db: any SQLConnection, wallet record: WalletRecord) throws -> SQLPending<Int64> {
        let limit = policy.limit(forClass: record.kycVerified ? record.kycClass : 1, now: now)
        return try MovementStore(db).sendBalancePaymentsFen(walletID: record.id, period: limit.period)
    }

    /// The same against what `classLimitUsage` read: a chunk of payments reads its wallets'
    /// counters once. The wallets must stay locked (or the writer alone) meanwhile.
    public func checkClassLimit(wallet record: WalletRecord, usedFen: Int64, amountFen: Int64) -> WalletRefusal? {
        let limit = policy.limit(forClass: record.kycVerified ? record.kycClass : 1, now: now)
        let (total, overflow) = usedFen.addingReportingOverflow(amountFen)
        return overflow || total > limit.fenMax ? .classLimitExceeded : nil
    }

    /// What each wallet's class limit has counted so far (its counter for its class's
    /// period), by wallet id, in a few reads.
    public func classLimitUsage(_ db: any SQLConnection, wallets: [WalletRecord]) throws -> [Int64: Int64] {
        let counters = try MovementStore(db).balancePaymentsFen(walletIDs: wallets.map(\.id))
        var used: [Int64: Int64] = [:]
        for record in wallets {
            let period = policy.limit(forClass: record.kycVerified ? record.kycClass : 1, now: now).period
            used[record.id] = counters[record.id]?[period] ?? 0
        }
        return used
    }

    /// Writes the security alerts a payment may raise: one large payment, or many payments
    /// in a short window. In the payment's transaction, after its movement.
    /// `via` names a password-free payment (autopay): its alerts carry it, and a night of
    /// many autopay payments raises one "many payments" alert, not one per payment.
    public func monitorPayment(_ db: any SQLConnection, wallet record: WalletRecord, amountFen: Int64, via: String? = nil, paymentKey: String? = nil, dayKey: String? = nil) throws {
        var writes = PaymentWrites()
        monitorPayment(into: &writes, wallet: record, amountFen: amountFen, via: via, paymentKey: paymentKey, dayKey: dayKey)
        try flush(db, &writes)
    }

    /// The same into `writes`: the large payment's alert at once, the count of recent
    /// payments when they are flushed (after the movements they count), once a wallet.
    public func monitorPayment(into writes: inout PaymentWrites, wallet record: WalletRecord, amountFen: Int64, via: String? = nil, paymentKey: String? = nil, dayKey: String? = nil) {
        if amountFen > policy.largePaymentAlertFen {
            var payload = ["event": "large_payment", "phone": Mask.phone(record.phone), "amount": Money(fen: amountFen).yuanString]
            if let via { payload["via"] = via }
            Outbox.enqueue(into: &writes, walletID: record.id, kind: .securityAlert, payload: payload, now: now, messageID: paymentKey.map { "large_payment:\($0)" })
        }
        if writes.watched[record.id] == nil { writes.watchedOrder.append(record.id) }
        writes.watched[record.id] = (record, via, dayKey)
    }

    /// Sets the most autopay may take from the wallet on one business day. With `password`
    /// (the app asks it for a raise), the payment password is checked and counted as for a
    /// payment, in the same transaction.
    public func setAutopayDailyLimit(phone: String, fen: Int64, password: String? = nil) throws -> WalletRecord {
        let phone = try Validation.phone(phone)
        guard fen > 0 else { throw WalletRefusal.invalidAmount }
        guard fen <= policy.autopayDailyFenMaxCeiling else { throw WalletRefusal.amountOverRequestLimit }
        let matched = try password.map { try checkConfirmation(.password($0), phone: phone) }
        let outcome: Result<WalletRecord, any Error> = try store.transaction { db, tx in
            let record = try lockedWallet(db, tx, phone: phone)
            if let matched, let refusal = try recordConfirmation(db, wallet: record, matched: matched) { return .failure(refusal) }
            try WalletStore(db).setAutopayDailyLimit(walletID: record.id, fen: fen)
            return .success(try wallet(db, phone: phone))
        }
        return try outcome.get()
    }

    /// The most autopay takes from the wallet on one business day.
    public func autopayDailyLimitFen(_ record: WalletRecord) -> Int64 {
        record.autopayDailyLimitFen ?? policy.autopayDailyFenMaxDefault
    }

    // MARK: Merchants

    public struct Merchant: Sendable, Hashable, Codable {
        public var id: String
        public var name: String
        public var category: String
        public var city: String
        public var mcc: String
        public var accountId: Int64
        /// The name of QR tag 59, printable ASCII.
        public var nameASCII: String
        /// The city in Chinese for the QR language template, when known.
        public var cityLocal: String?
    }

    /// Registers a merchant with its settlement account in the ledger. The QR code's ASCII
    /// name (tag 59) is `nameASCII`, or derived from the name.
    public func registerMerchant(id: String, name: String, category: String, city: String = "QINGDAO", mcc: String = "5999", nameASCII: String? = nil, cityLocal: String? = "青岛") throws -> Merchant {
        guard (1...25).contains(id.utf8.count), id.utf8.allSatisfy({ Validation.isDigit($0) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || $0 == UInt8(ascii: "-") }),
              let name = try? Validation.name(name), name.unicodeScalars.count <= MerchantQR.merchantNameCharactersMax,
              let category = Validation.text(category, charactersMax: 32),
              MerchantQR.isCommonCharacterSet(city), (1...MerchantQR.cityCharactersMax).contains(city.utf8.count),
              mcc.utf8.count == 4, mcc.utf8.allSatisfy(Validation.isDigit)
        else { throw WalletRefusal.invalidMerchant }
        let ascii = nameASCII.map { $0.trimmingSpaces } ?? MerchantQR.asciiName(from: name, merchantID: id)
        guard MerchantQR.isCommonCharacterSet(ascii), (1...MerchantQR.merchantNameCharactersMax).contains(ascii.utf8.count) else {
            throw WalletRefusal.invalidMerchant
        }
        var local: String?
        if let cityLocal {
            guard let valid = Validation.text(cityLocal, charactersMax: MerchantQR.cityCharactersMax),
                  valid.unicodeScalars.count <= MerchantQR.cityCharactersMax else { throw WalletRefusal.invalidMerchant }
            local = valid
        }
        return try store.transaction { db, tx in
            let merchants = MovementStore(db)
            if try merchants.merchantExists(id) {
                throw WalletRefusal.merchantExists
            }
            let account = try ledger.openAccount(AccountSpec(code: SystemAccounts.merchant(id), asset: .cny, kind: .merchant, rules: .noOverdraft), in: tx)
            let merchant = Merchant(id: id, name: name, category: category, city: city, mcc: mcc, accountId: account.id, nameASCII: ascii, cityLocal: local)
            try merchants.insertMerchant(merchant, at: now)
            return merchant
        }
    }

    public func merchant(id: String) throws -> Merchant {
        try store.database.read { db in try merchant(db, id: id) }
    }

    func merchant(_ db: any SQLConnection, id: String) throws -> Merchant {
        try sendMerchant(db, id: id).get()
    }

    /// `merchant`, sent ahead (`SQLConnection.sendQuery`): refused when its answer is read.
    func sendMerchant(_ db: any SQLConnection, id: String) throws -> SQLPending<Merchant> {
        try MovementStore(db).sendMerchant(id: id).map { stored in
            guard let stored else { throw WalletRefusal.merchantNotFound }
            var merchant = stored.merchant
            merchant.nameASCII = stored.nameASCII ?? MerchantQR.asciiName(from: merchant.name, merchantID: merchant.id)
            return merchant
        }
    }

    /// The merchant's EMVCo payload, static or with a fixed amount. The Chinese name and city
    /// go into the language template (tag 64); an amount that does not fit tag 54 is refused.
    public func merchantQR(id: String, amountFen: Int64?) throws -> String {
        if let amountFen, amountFen <= 0 { throw WalletRefusal.invalidAmount }
        let merchant = try merchant(id: id)
        // Merchants registered before names were bounded for the template keep a shortened one.
        let local = merchant.name == merchant.nameASCII ? nil : String(String.UnicodeScalarView(merchant.name.unicodeScalars.prefix(MerchantQR.merchantNameCharactersMax)))
        let city = MerchantQR.isCommonCharacterSet(merchant.city) ? merchant.city : "QINGDAO"
        return try MerchantQR(merchantID: merchant.id, merchantName: merchant.nameASCII, city: city, mcc: merchant.mcc, amountFen: amountFen,
                              localName: local, localCity: local == nil ? nil : merchant.cityLocal).encode()
    }

    /// What the campaigns would give a QR payment of the wallet to a merchant now (none
    /// without a planner); the payment plans again in its own transaction.
    public func previewQR(walletID: Int64, merchantID: String, amountFen: Int64) throws -> [PlannedBenefit] {
        guard let planner else { return [] }
        guard amountFen > 0, amountFen <= policy.qrPaymentFenMax else { return [] }
        return try store.database.read { db in
            let record = try wallet(db, id: walletID)
            let merchant = try self.merchant(db, id: merchantID)
            return try planner.previewQR(db, wallet: record, merchant: merchant, amountFen: amountFen, at: now)
        }
    }

    // MARK: Balance payments

    /// Pays a merchant by its QR payload: password, frozen state, class limit and balance
    /// are all checked in the payment's transaction.
    public func payQR(phone: String, payload: String, amountFen: Int64?, password: String, idempotencyKey: String) throws -> Receipt {
        try payQR(phone: phone, payload: payload, amountFen: amountFen, confirmation: .password(password), idempotencyKey: idempotencyKey)
    }

    /// `payQR`, confirmed as the app confirms it (the password, the device's signature, or both).
    public func payQR(phone: String, payload: String, amountFen: Int64?, confirmation: PaymentConfirmation, idempotencyKey: String, hooks: PaymentHooks<Receipt>? = nil) throws -> Receipt {
        let phone = try Validation.phone(phone)
        let key = try Validation.idempotencyKey(idempotencyKey)
        let qr = try MerchantQR.parse(payload)
        let amount: Int64
        switch (qr.amountFen, amountFen) {
        case (let fixed?, let given?): guard fixed == given else { throw WalletRefusal.qrAmountMismatch }; amount = fixed
        case (let fixed?, nil): amount = fixed
        case (nil, let given?): amount = given
        case (nil, nil): throw WalletRefusal.qrAmountMissing
        }
        guard amount > 0 else { throw WalletRefusal.invalidAmount }
        guard amount <= policy.qrPaymentFenMax else { throw WalletRefusal.amountOverRequestLimit }
        let matched = try checkConfirmation(confirmation, phone: phone)
        let outcome: Result<Receipt, any Error> = try store.transaction { db, tx in try hooked(hooks, db) {
            let record = try lockedWallet(db, tx, phone: phone)
            // The merchant, the class limit's counter and the payment's idempotency records go
            // ahead, answered together in one round trip (PostgreSQL).
            let merchantAhead = try sendMerchant(db, id: qr.merchantID)
            let usage = try sendClassLimitUsage(db, wallet: record)
            let keys = ledgerKeys("qr", key, wallet: record)
            try tx.readAhead(idempotencyKeys: [keys.legacy, keys.scoped])
            if let refusal = try recordConfirmation(db, wallet: record, matched: matched) { return .failure(refusal) }
            let merchant: Merchant
            do {
                merchant = try merchantAhead.get()
            } catch WalletRefusal.merchantNotFound {
                throw QRRefusal(.qrUnknownMerchant, clause: "the merchant id in qdwallet's template (ID 26 01) is not registered")
            }
            let paymentKey = try ledgerKey("qr", key, wallet: record, tx: tx)
            let isRetry = try tx.idempotencyRecord(key: paymentKey) != nil
            let facts = QRPaymentFacts(paymentKey: paymentKey, wallet: record, merchant: merchant, amountFen: amount, memo: "qr payment \(merchant.id)", at: now, isRetry: isRetry)
            // Campaigns, as for bills: sponsors fund the discounts, points are pending.
            let plan = try planner?.planQR(db, tx, facts) ?? .plain(facts)
            let net = amount - plan.discountFen
            return try balancePayment(db, tx, wallet: record, request: plan.requests[0], amountFen: net, followers: Array(plan.requests.dropFirst()), usage: usage) { transactionID, followers in
                try plan.record(transactionID, followers)
                return try recordMovement(db, walletID: record.id, kind: "qr_payment", counterparty: merchant.name, category: merchant.category, amountFen: -net, discountFen: plan.discountFen, points: plan.points, balancePayment: true, transactionID: transactionID, reference: merchant.id)
            }
        } }
        return try outcome.get()
    }

    /// Transfers to another wallet by mobile number, at once.
    public func transfer(from: String, to: String, amountFen: Int64, password: String, idempotencyKey: String) throws -> Receipt {
        try transfer(from: from, to: to, amountFen: amountFen, confirmation: .password(password), idempotencyKey: idempotencyKey)
    }

    /// `transfer`, confirmed as the app confirms it.
    public func transfer(from: String, to: String, amountFen: Int64, confirmation: PaymentConfirmation, idempotencyKey: String, hooks: PaymentHooks<Receipt>? = nil) throws -> Receipt {
        let from = try Validation.phone(from)
        let to = try Validation.phone(to)
        let key = try Validation.idempotencyKey(idempotencyKey)
        guard from != to else { throw WalletRefusal.selfTransfer }
        guard amountFen > 0 else { throw WalletRefusal.invalidAmount }
        guard amountFen <= policy.transferFenMax else { throw WalletRefusal.amountOverRequestLimit }
        let matched = try checkConfirmation(confirmation, phone: from)
        let outcome: Result<Receipt, any Error> = try store.transaction { db, tx in try hooked(hooks, db) {
            var payer = try wallet(db, phone: from)
            if tx.concurrentWriters {
                // Both wallets in one order (the payee's, if it exists: a missing payee is
                // refused below, after the password attempt is counted, as with one writer).
                let payee = try? wallet(db, phone: to)
                try lock(tx, wallets: [payer] + (payee.map { [$0] } ?? []))
                payer = try wallet(db, phone: from)
            }
            if let refusal = try recordConfirmation(db, wallet: payer, matched: matched) { return .failure(refusal) }
            let payee = try wallet(db, phone: to)
            let request = PostingRequest.transfer(key: try ledgerKey("transfer", key, wallet: payer, tx: tx), from: payer.walletAccountID, to: payee.walletAccountID, amount: amountFen, memo: "transfer")
            return try balancePayment(db, tx, wallet: payer, request: request, amountFen: amountFen) { transactionID, _ in
                let receipt = try recordMovement(db, walletID: payer.id, kind: "transfer_out", counterparty: Mask.phone(payee.phone), category: "transfer", amountFen: -amountFen, balancePayment: true, transactionID: transactionID, reference: nil)
                try recordMovement(db, walletID: payee.id, kind: "transfer_in", counterparty: Mask.phone(payer.phone), category: "transfer", amountFen: amountFen, balancePayment: false, transactionID: transactionID, reference: nil)
                return receipt
            }
        } }
        return try outcome.get()
    }

    /// What a caller does inside a payment's own transaction (the app's idempotency record
    /// and the confirmation's challenge are written with the payment, or not at all): `before`
    /// runs first and may end the payment there with an answer (its writes committed); `after`
    /// runs last with the payment's outcome. A payment that throws leaves nothing of either.
    public struct PaymentHooks<Answer> {
        public enum Decision {
            case proceed
            case answer(Result<Answer, any Error>)
        }

        public var before: (any SQLConnection) throws -> Decision
        public var after: (any SQLConnection, Result<Answer, any Error>) throws -> Void

        public init(before: @escaping (any SQLConnection) throws -> Decision, after: @escaping (any SQLConnection, Result<Answer, any Error>) throws -> Void) {
            self.before = before
            self.after = after
        }
    }

    /// Runs `payment` between the hooks.
    public func hooked<Answer>(_ hooks: PaymentHooks<Answer>?, _ db: any SQLConnection, _ payment: () throws -> Result<Answer, any Error>) throws -> Result<Answer, any Error> {
        guard let hooks else { return try payment() }
        if case .answer(let early) = try hooks.before(db) { return early }
        let outcome = try payment()
        try hooks.after(db, outcome)
        return outcome
    }

    /// The shared path of every balance payment: a replay answers first; then frozen, class
    /// limit, the posting, the records and the monitoring, in one transaction. `recordRows`
    /// writes a new payment's rows and returns its receipt as the payer's movement says it
    /// (a retry reads the movement back: the same receipt, replayed).
    /// `usage`: the class limit's counter, when the caller sent its read ahead.
    public func balancePayment(_ db: any SQLConnection, _ tx: any LedgerWriting, wallet record: WalletRecord, request: PostingRequest, amountFen: Int64, followers: [PostingRequest] = [],
                               usage: SQLPending<Int64>? = nil, record recordRows: (Int64, ArraySlice<PostingResult>) throws -> Receipt) throws -> Result<Receipt, any Error> {
        let isRetry = try tx.idempotencyRecord(key: request.key) != nil
        if !isRetry {
            if record.frozen { return .failure(WalletRefusal.walletFrozen) }
            let used = try (usage ?? sendClassLimitUsage(db, wallet: record)).get()
            if let refusal = checkClassLimit(wallet: record, usedFen: used, amountFen: amountFen) { return .failure(refusal) }
        }
        let results = try ledger.post([request] + (isRetry ? [] : followers), in: tx)
        switch results[0] {
        case .committed(let transactionID, let replayed):
            if !replayed {
                // The receipt of the movement just written, not read back; a retry reads it.
                let receipt = try recordRows(transactionID, results.dropFirst())
                try monitorPayment(db, wallet: record, amountFen: amountFen)
                return .success(receipt)
            }
            return .success(try receipt(db, walletID: record.id, transactionID: transactionID, replayed: true))
        case .refused(let refusal, _):
            return .failure(Self.map(refusal))
        }
    }

    // MARK: Balance and history

    public struct Balance: Sendable, Hashable, Codable {
        public var balanceFen: Int64
        public var availableFen: Int64
        public var points: Int64
        public var frozen: Bool
        public var kycClass: Int
    }

    public func balance(phone: String) throws -> Balance {
        let phone = try Validation.phone(phone)
        let record = try store.database.read { db in try wallet(db, phone: phone) }
        return try store.read { tx in
            guard let cash = try tx.account(id: record.walletAccountID), let points = try tx.account(id: record.pointsAccountID) else {
                throw WalletError(.corrupt, "a wallet's ledger accounts are missing")
            }
            return Balance(balanceFen: cash.balance, availableFen: cash.available, points: points.balance, frozen: record.frozen, kycClass: record.kycVerified ? record.kycClass : 1)
        }
    }

    /// A security alert as the app's stream sends it (its payload masked, as queued).
    public struct Alert: Sendable, Hashable {
        public var id: Int64
        public var createdAt: TimestampMicros
        public var payload: String
    }

    /// The wallet's security alerts queued after the one with id `after` (nil: none of those
    /// queued so far, only their position), oldest first.
    public func securityAlerts(walletID: Int64, after: Int64?, limit: Int = 50) throws -> (alerts: [Alert], last: Int64) {
        try store.database.read { db in
            let outbox = OutboxStore(db)
            guard let after else { return ([], try outbox.latestSecurityAlert(walletID: walletID)) }
            let alerts = try outbox.securityAlerts(walletID: walletID, after: after, limit: max(1, min(limit, 500))).map { Alert(id: $0.id, createdAt: $0.createdAt, payload: $0.payload) }
            return (alerts, alerts.last?.id ?? after)
        }
    }

    /// The balance of the wallet with this id, in one read.
    public func balance(walletID: Int64) throws -> Balance {
        try store.snapshot { db, tx in
            let record = try wallet(db, id: walletID)
            guard let cash = try tx.account(id: record.walletAccountID), let points = try tx.account(id: record.pointsAccountID) else {
                throw WalletError(.corrupt, "a wallet's ledger accounts are missing")
            }
            return Balance(balanceFen: cash.balance, availableFen: cash.available, points: points.balance, frozen: record.frozen, kycClass: record.kycVerified ? record.kycClass : 1)
        }
    }

    /// History, newest first, optionally for one month ("2026-11") and one kind.
    public func history(phone: String, month: String?, kind: String?, limit: Int = 200) throws -> [Movement] {
        let phone = try Validation.phone(phone)
        return try store.database.read { db in
            let record = try wallet(db, phone: phone)
            return try MovementStore(db).history(walletID: record.id, month: month, kind: kind, limit: max(1, min(limit, 10_000)))
        }
    }

    /// The wallet's movement of one transaction (its receipt), or nil when the transaction
    /// moved nothing of this wallet's.
    public func movement(walletID: Int64, transactionID: Int64) throws -> Movement? {
        try store.database.read { db in try MovementStore(db).movement(walletID: walletID, transactionID: transactionID) }
    }

    public struct CategorySpending: Sendable, Hashable, Codable {
        public var category: String
        public var spentFen: Int64
        public var payments: Int
    }

    /// Spending of one month by category (money out of the wallet for payments and transfers).
    public func monthlySummary(phone: String, month: String) throws -> [CategorySpending] {
        let phone = try Validation.phone(phone)
        return try store.database.read { db in
            let record = try wallet(db, phone: phone)
            return try MovementStore(db).spending(walletID: record.id, month: month)
        }
    }
}

extension WalletService {
    /// A usage counter that differs from the movements it sums.
    public struct UsageMismatch: Sendable, Hashable, Codable {
        public var walletId: Int64
        /// 0: the wallet's whole life; else a calendar year.
        public var period: Int
        public var countedFen: Int64
        public var summedFen: Int64
    }

    /// Verifies the usage counters the class limits read against the balance payments in
    /// the wallets' histories: one statement, so one snapshot on either engine. Lists at
    /// most `limit` mismatches.
    public func checkUsage(limit: Int = 100) throws -> [UsageMismatch] {
        try store.database.read { db in
            try MovementStore(db).usageMismatches(limit: limit).map {
                UsageMismatch(walletId: $0.walletID, period: $0.period, countedFen: $0.counted, summedFen: $0.summed)
            }
        }
    }
}
