/// The identity of a ledger transaction: its position in the journal (1, 2, 3, ...).
public typealias TransactionID = Int64

/// One leg of a transaction: an amount debited from or credited to one account.
public struct Leg: Sendable, Hashable, Codable {
    public var accountID: AccountID
    public var side: Side
    public var asset: Asset
    /// In the asset's smallest unit (fen, points); always positive.
    public var amount: Int64

    public init(accountID: AccountID, side: Side, asset: Asset, amount: Int64) {
        self.accountID = accountID
        self.side = side
        self.asset = asset
        self.amount = amount
    }

    /// A debit leg.
    public static func debit(_ accountID: AccountID, _ amount: Int64, _ asset: Asset = .cny) -> Leg {
        Leg(accountID: accountID, side: .debit, asset: asset, amount: amount)
    }

    /// A credit leg.
    public static func credit(_ accountID: AccountID, _ amount: Int64, _ asset: Asset = .cny) -> Leg {
        Leg(accountID: accountID, side: .credit, asset: asset, amount: amount)
    }
}

/// What a posting request asks the ledger to do.
public enum PostingAction: Sendable, Hashable {
    /// Move value at once: any number of legs that balance per asset.
    case transfer(legs: [Leg])
    /// Reserve `amount` on the debit account for the credit account (two-phase, phase one).
    case hold(debit: AccountID, credit: AccountID, asset: Asset, amount: Int64, expiresAt: TimestampMicros?)
    /// Complete a hold, for its whole amount (`nil`) or part of it; the rest is released.
    case postHold(holdID: TransactionID, amount: Int64?)
    /// Release a hold without moving anything.
    case voidHold(holdID: TransactionID)
    /// Release a hold whose expiry has passed (what `Ledger.expireHolds` posts).
    case expireHold(holdID: TransactionID)
    /// Undo a posted transaction in full, once, linked to it.
    case reverse(transactionID: TransactionID)
}

/// A request to the ledger, carrying the caller's idempotency key.
public struct PostingRequest: Sendable, Hashable {
    /// Chosen by the caller; a retry with the same key and request returns the first result.
    public var key: String
    public var action: PostingAction
    /// A short free text kept with the transaction (what and why, never personal data).
    public var memo: String
    /// When the movement counts for the business (defaults to the recorded time).
    public var effectiveAt: TimestampMicros?
    /// Links this request to the next one in the same batch: they succeed or fail together.
    public var linked: Bool

    public init(key: String, action: PostingAction, memo: String = "", effectiveAt: TimestampMicros? = nil, linked: Bool = false) {
        self.key = key
        self.action = action
        self.memo = memo
        self.effectiveAt = effectiveAt
        self.linked = linked
    }

    /// A transfer of `amount` from one account to another.
    public static func transfer(
        key: String, from debit: AccountID, to credit: AccountID, amount: Int64,
        asset: Asset = .cny, memo: String = "", linked: Bool = false
    ) -> PostingRequest {
        PostingRequest(
            key: key,
            action: .transfer(legs: [.debit(debit, amount, asset), .credit(credit, amount, asset)]),
            memo: memo, linked: linked)
    }
}

/// The ledger's answer to one posting request.
public enum PostingResult: Sendable, Hashable {
    /// The transaction is in the journal; `replayed` when an earlier request with the same
    /// key had already put it there.
    case committed(TransactionID, replayed: Bool)
    /// Nothing was posted; `replayed` when this is the remembered answer to an earlier
    /// attempt with the same key.
    case refused(LedgerRefusal, replayed: Bool)

    /// The transaction, when committed.
    public var transactionID: TransactionID? {
        if case .committed(let id, _) = self { return id }
        return nil
    }

    /// The refusal, when refused.
    public var refusal: LedgerRefusal? {
        if case .refused(let refusal, _) = self { return refusal }
        return nil
    }
}
