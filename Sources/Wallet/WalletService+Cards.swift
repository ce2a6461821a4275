import Foundation
import Ledger
import QDSQL

extension WalletService {
    /// A bound card as shown: masked.
    public struct Card: Sendable, Hashable, Codable {
        public var id: Int64
        public var bank: String
        public var masked: String
        public var status: String
    }

    /// Binds a bank card after approved verification; the number is sealed under the data key.
    public func bindCard(phone: String, cardNumber: String, bank: String) throws -> Card {
        let phone = try Validation.phone(phone)
        let number = try Validation.cardNumber(cardNumber)
        let bank = try Validation.bank(bank)
        _ = try requireDataKey()
        return try store.transaction { db, tx in
            let key = try verifiedDataKey(db)
            let record = try lockedWallet(db, tx, phone: phone)
            guard record.kycVerified else { throw WalletRefusal.kycRequired }
            let fingerprint = key.fingerprint(number)
            let cards = CardStore(db)
            if try cards.isBound(walletID: record.id, fingerprint: Data(fingerprint)) {
                throw WalletRefusal.cardAlreadyBound
            }
            let masked = Mask.card(number)
            let id = try cards.bind(walletID: record.id, bank: bank, numberSealed: Data(try key.seal(number)), fingerprint: Data(fingerprint), masked: masked, at: now)
            return Card(id: id, bank: bank, masked: masked, status: "bound")
        }
    }

    /// Unbinds a card, unless a top-up or withdrawal through it is still pending.
    public func unbindCard(phone: String, cardID: Int64) throws -> Card {
        let phone = try Validation.phone(phone)
        return try store.transaction { db, tx in
            let record = try lockedWallet(db, tx, phone: phone)
            let card = try boundCard(db, walletID: record.id, cardID: cardID)
            if try CardStore(db).hasPendingOperation(cardID: cardID) {
                throw WalletRefusal.cardHasPendingOperation
            }
            try CardStore(db).unbind(cardID: cardID, at: now)
            return Card(id: card.id, bank: card.bank, masked: card.masked, status: "unbound")
        }
    }

    /// The wallet's bound cards.
    public func cards(phone: String) throws -> [Card] {
        let phone = try Validation.phone(phone)
        return try store.database.read { db in
            let record = try wallet(db, phone: phone)
            return try CardStore(db).boundCards(walletID: record.id)
        }
    }

    func boundCard(_ db: any SQLConnection, walletID: Int64, cardID: Int64) throws -> Card {
        guard let card = try CardStore(db).boundCard(id: cardID, walletID: walletID) else { throw WalletRefusal.cardNotFound }
        return card
    }

    // MARK: Top-up and withdrawal

    /// Tops the wallet up from a bound card: bank clearing to wallet, settled at once.
    public func topUp(phone: String, cardID: Int64, amountFen: Int64, idempotencyKey: String, hooks: PaymentHooks<Receipt>? = nil) throws -> Receipt {
        let phone = try Validation.phone(phone)
        let key = try Validation.idempotencyKey(idempotencyKey)
        guard amountFen > 0 else { throw WalletRefusal.invalidAmount }
        guard amountFen <= policy.topUpFenMax else { throw WalletRefusal.amountOverRequestLimit }
        let outcome: Result<Receipt, any Error> = try store.transaction { db, tx in try hooked(hooks, db) {
            let record = try lockedWallet(db, tx, phone: phone)
            let bank = try systemAccount(tx, SystemAccounts.bankClearing)
            let card = try boundCard(db, walletID: record.id, cardID: cardID)
            let request = PostingRequest.transfer(key: try ledgerKey("topup", key, wallet: record, tx: tx), from: bank, to: record.walletAccountID, amount: amountFen, memo: "topup card \(card.id)")
            let result = try ledger.post([request], in: tx)[0]
            switch result {
            case .committed(let id, let replayed):
                if !replayed {
                    try CardStore(db).recordTopUp(cardID: card.id, walletID: record.id, amountFen: amountFen, transactionID: id, at: now)
                    try recordMovement(db, walletID: record.id, kind: "topup", counterparty: "\(card.bank) \(card.masked)", category: "topup", amountFen: amountFen, balancePayment: false, transactionID: id, reference: nil)
                }
                return .success(try receipt(db, walletID: record.id, transactionID: id, replayed: replayed))
            case .refused(let refusal, _):
                return .failure(Self.map(refusal))
            }
        } }
        return try outcome.get()
    }

    /// A pending withdrawal as shown.
    public struct Withdrawal: Sendable, Hashable, Codable {
        public var withdrawalId: Int64
        public var transactionId: Int64
        public var amountFen: Int64
        public var status: String
        public var replayed: Bool
    }

    /// Starts a withdrawal to a bound card: a hold on the wallet until the bank confirms
    /// (`confirmWithdrawal`) or fails it (`failWithdrawal`, which returns the money). The app
    /// confirms it as a payment (`confirmation`, checked and counted in the transaction); an
    /// operator's command passes none.
    public func withdraw(phone: String, cardID: Int64, amountFen: Int64, idempotencyKey: String,
                         confirmation: PaymentConfirmation? = nil, hooks: PaymentHooks<Withdrawal>? = nil) throws -> Withdrawal {
        let phone = try Validation.phone(phone)
        let key = try Validation.idempotencyKey(idempotencyKey)
        guard amountFen > 0 else { throw WalletRefusal.invalidAmount }
        guard amountFen <= policy.withdrawalFenMax else { throw WalletRefusal.amountOverRequestLimit }
        let matched = try confirmation.map { try checkConfirmation($0, phone: phone) }
        let outcome: Result<Withdrawal, any Error> = try store.transaction { db, tx in try hooked(hooks, db) {
            let record = try lockedWallet(db, tx, phone: phone)
            if let matched, let refusal = try recordConfirmation(db, wallet: record, matched: matched) { return .failure(refusal) }
            let bank = try systemAccount(tx, SystemAccounts.bankClearing)
            let card = try boundCard(db, walletID: record.id, cardID: cardID)
            let ledgerKey = try ledgerKey("withdraw", key, wallet: record, tx: tx)
            if try tx.idempotencyRecord(key: ledgerKey) == nil, record.frozen {
                return .failure(WalletRefusal.walletFrozen)
            }
            let request = PostingRequest(key: ledgerKey, action: .hold(debit: record.walletAccountID, credit: bank, asset: .cny, amount: amountFen, expiresAt: nil), memo: "withdrawal card \(card.id)")
            switch try ledger.post([request], in: tx)[0] {
            case .committed(let holdID, let replayed):
                if !replayed {
                    try CardStore(db).recordWithdrawal(cardID: card.id, walletID: record.id, amountFen: amountFen, holdID: holdID, at: now)
                }
                guard let operation = try CardStore(db).operation(transactionID: holdID) else {
                    throw WalletError(.corrupt, "a withdrawal hold has no card operation")
                }
                return .success(Withdrawal(withdrawalId: operation.id, transactionId: holdID, amountFen: amountFen, status: operation.status, replayed: replayed))
            case .refused(let refusal, _):
                return .failure(Self.map(refusal))
            }
        } }
        return try outcome.get()
    }

    /// The bank paid the withdrawal out: the hold is posted.
    public func confirmWithdrawal(id: Int64) throws -> Withdrawal {
        try settleWithdrawal(id: id, confirm: true)
    }

    /// The bank failed the withdrawal: the hold is voided and the money is available again.
    public func failWithdrawal(id: Int64) throws -> Withdrawal {
        try settleWithdrawal(id: id, confirm: false)
    }

    private func settleWithdrawal(id: Int64, confirm: Bool) throws -> Withdrawal {
        let outcome: Result<Withdrawal, any Error> = try store.transaction { db, tx in
            let cards = CardStore(db)
            guard let row = try cards.withdrawal(id: id) else {
                return .failure(WalletRefusal.withdrawalNotFound)
            }
            let holdID = row.holdID
            let amountFen = row.amountFen
            let status = row.status
            guard status == "pending" else {
                // Settling again the same way is a replay; the other way is a refusal.
                if (status == "completed") == confirm {
                    return .success(Withdrawal(withdrawalId: id, transactionId: row.settledTransactionID ?? holdID, amountFen: amountFen, status: status, replayed: true))
                }
                return .failure(WalletRefusal.withdrawalNotPending)
            }
            let action: PostingAction = confirm ? .postHold(holdID: holdID, amount: nil) : .voidHold(holdID: holdID)
            let request = PostingRequest(key: "withdraw-\(confirm ? "confirm" : "fail"):\(id)", action: action, memo: confirm ? "withdrawal paid out" : "withdrawal failed")
            switch try ledger.post([request], in: tx)[0] {
            case .committed(let transactionID, _):
                let newStatus = confirm ? "completed" : "failed"
                try cards.settle(operationID: id, status: newStatus, transactionID: transactionID, at: now)
                if confirm {
                    let card = try cards.label(cardID: row.cardID)
                    try recordMovement(db, walletID: row.walletID, kind: "withdrawal", counterparty: "\(card?.bank ?? "") \(card?.masked ?? "")", category: "withdrawal", amountFen: -amountFen, balancePayment: false, transactionID: transactionID, reference: nil)
                }
                return .success(Withdrawal(withdrawalId: id, transactionId: transactionID, amountFen: amountFen, status: newStatus, replayed: false))
            case .refused(let refusal, _):
                return .failure(Self.map(refusal))
            }
        }
        return try outcome.get()
    }

    // MARK: Helpers

    func systemAccount(_ tx: any LedgerReading, _ code: String) throws -> AccountID {
        guard let account = try tx.account(code: code) else {
            throw LedgerError(.accountNotFound, "the system account is missing: run `qdwallet init`", context: code)
        }
        return account.id
    }

    /// Ledger refusals in the words of the wallet, where the wallet has words for them.
    public static func map(_ refusal: LedgerRefusal) -> any Error {
        switch refusal {
        case .exceedsCredits: WalletRefusal.insufficientFunds
        case .accountFrozen: WalletRefusal.walletFrozen
        case .keyReusedWithDifferentRequest: WalletRefusal.idempotencyConflict
        case .amountMustBePositive: WalletRefusal.invalidAmount
        default: refusal
        }
    }
}
