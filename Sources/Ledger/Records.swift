/// What a journal transaction did.
public enum TransactionKind: String, Sendable, Hashable, Codable, CaseIterable {
    case transfer
    case hold
    case holdPost = "hold_post"
    case holdVoid = "hold_void"
    case holdExpire = "hold_expire"
    case reversal

    /// Posts, voids or expires a hold (the hold its `refID` names).
    public var resolvesAHold: Bool { self == .holdPost || self == .holdVoid || self == .holdExpire }
}

/// Where a reading of a day's transactions stands: in the order of their effective time,
/// then id (`LedgerReading.transactions(effectiveFrom:to:after:limit:)`).
public struct JournalPosition: Sendable, Hashable, Comparable {
    public var effectiveAt: TimestampMicros
    public var id: TransactionID

    public init(effectiveAt: TimestampMicros, id: TransactionID) {
        self.effectiveAt = effectiveAt
        self.id = id
    }

    public static func < (a: JournalPosition, b: JournalPosition) -> Bool {
        (a.effectiveAt, a.id) < (b.effectiveAt, b.id)
    }
}

/// A journal row: immutable once written, chained to its predecessor by hash.
public struct TransactionRecord: Sendable, Hashable {
    public var id: TransactionID
    public var kind: TransactionKind
    public var key: String
    /// The reversed transaction, or the hold that was posted, voided or expired.
    public var refID: TransactionID?
    public var recordedAt: TimestampMicros
    public var effectiveAt: TimestampMicros
    public var memo: String
    public var prevHash: [UInt8]
    public var hash: [UInt8]

    public init(
        id: TransactionID, kind: TransactionKind, key: String, refID: TransactionID?,
        recordedAt: TimestampMicros, effectiveAt: TimestampMicros, memo: String,
        prevHash: [UInt8], hash: [UInt8]
    ) {
        self.id = id
        self.kind = kind
        self.key = key
        self.refID = refID
        self.recordedAt = recordedAt
        self.effectiveAt = effectiveAt
        self.memo = memo
        self.prevHash = prevHash
        self.hash = hash
    }
}

/// One leg as booked: immutable, with the account's balance and sequence number after it.
public struct EntryRecord: Sendable, Hashable {
    public var transactionID: TransactionID
    public var leg: Int
    public var accountID: AccountID
    public var asset: Asset
    public var side: Side
    public var amount: Int64
    /// The account's posted balance (credits - debits) right after this entry.
    public var balanceAfter: Int64
    /// 1 for the account's first entry, then 2, 3, ...
    public var accountSeq: Int64
    public var recordedAt: TimestampMicros

    public init(
        transactionID: TransactionID, leg: Int, accountID: AccountID, asset: Asset, side: Side,
        amount: Int64, balanceAfter: Int64, accountSeq: Int64, recordedAt: TimestampMicros
    ) {
        self.transactionID = transactionID
        self.leg = leg
        self.accountID = accountID
        self.asset = asset
        self.side = side
        self.amount = amount
        self.balanceAfter = balanceAfter
        self.accountSeq = accountSeq
        self.recordedAt = recordedAt
    }

    /// The signed change of the account's balance.
    public var delta: Int64 { side == .credit ? amount : -amount }
}

/// A pending two-phase transfer; its transaction id is the hold's id.
public struct HoldRecord: Sendable, Hashable {
    public var id: TransactionID
    public var debitAccountID: AccountID
    public var creditAccountID: AccountID
    public var asset: Asset
    public var amount: Int64
    public var expiresAt: TimestampMicros?

    public init(id: TransactionID, debitAccountID: AccountID, creditAccountID: AccountID, asset: Asset, amount: Int64, expiresAt: TimestampMicros?) {
        self.id = id
        self.debitAccountID = debitAccountID
        self.creditAccountID = creditAccountID
        self.asset = asset
        self.amount = amount
        self.expiresAt = expiresAt
    }
}

/// How a hold ended: once, and for good.
public struct HoldResolution: Sendable, Hashable {
    public enum Outcome: String, Sendable, Hashable, Codable {
        case posted, voided, expired
    }

    public var holdID: TransactionID
    public var transactionID: TransactionID
    public var outcome: Outcome
    public var amountPosted: Int64

    public init(holdID: TransactionID, transactionID: TransactionID, outcome: Outcome, amountPosted: Int64) {
        self.holdID = holdID
        self.transactionID = transactionID
        self.outcome = outcome
        self.amountPosted = amountPosted
    }
}

/// What the ledger remembers of an idempotency key.
public struct IdempotencyRecord: Sendable, Hashable {
    public var key: String
    /// SHA-256 of the request's canonical encoding.
    public var requestHash: [UInt8]
    public var transactionID: TransactionID?
    public var refusal: LedgerRefusal?
    public var recordedAt: TimestampMicros

    public init(key: String, requestHash: [UInt8], transactionID: TransactionID?, refusal: LedgerRefusal?, recordedAt: TimestampMicros) {
        self.key = key
        self.requestHash = requestHash
        self.transactionID = transactionID
        self.refusal = refusal
        self.recordedAt = recordedAt
    }
}

/// The newest journal row: where the next transaction chains on.
public struct ChainHead: Sendable, Hashable {
    public var id: TransactionID
    public var hash: [UInt8]
    public var recordedAt: TimestampMicros

    public init(id: TransactionID, hash: [UInt8], recordedAt: TimestampMicros) {
        self.id = id
        self.hash = hash
        self.recordedAt = recordedAt
    }

    /// Before the first transaction: id 0 and an all-zero hash.
    public static let genesis = ChainHead(id: 0, hash: [UInt8](repeating: 0, count: 32), recordedAt: 0)

    /// `SEQ:HASH` (the sequence number and the SHA-256 in lower-case hex): the anchor that
    /// payment reports and reconciliations carry, and `ledger check --expect-head` takes.
    public var anchor: String {
        "\(id):" + hash.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// Parses an anchor; nil for anything that is not `SEQ:` and 64 hex digits.
    public static func parse(anchor text: String) -> (id: TransactionID, hash: [UInt8])? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let id = TransactionID(parts[0]), id >= 0, parts[1].utf8.count == 64 else { return nil }
        var bytes: [UInt8] = []
        var index = parts[1].startIndex
        while index < parts[1].endIndex {
            let next = parts[1].index(index, offsetBy: 2)
            guard let byte = UInt8(parts[1][index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return (id, bytes)
    }
}

/// A change of an account's rules, kept for audit.
public struct AccountRuleChange: Sendable, Hashable {
    public var accountID: AccountID
    public var rules: AccountRules
    public var reason: String
    public var at: TimestampMicros

    public init(accountID: AccountID, rules: AccountRules, reason: String, at: TimestampMicros) {
        self.accountID = accountID
        self.rules = rules
        self.reason = reason
        self.at = at
    }
}

/// One seal of the chain (PostgreSQL): the transaction at position `pos` of the chain, the
/// seal's hash, and the transaction's own hash as the journal holds it now (nil when the
/// journal no longer has it).
public struct ChainSeal: Sendable, Hashable {
    public var pos: Int64
    public var transactionID: TransactionID
    public var hash: [UInt8]
    public var contentHash: [UInt8]?
}

/// An entry as seen from its account, for the check of running sequences and balances.
public struct AccountEntryPosition: Sendable, Hashable {
    public var accountID: AccountID
    public var asset: Asset
    public var accountSeq: Int64
    public var side: Side
    public var amount: Int64
    public var balanceAfter: Int64
    public var transactionID: TransactionID
}

/// A row of the hold resolutions as the check reads it beside the journal: the transaction
/// that resolved a hold, the hold it names, and whether that id is a hold in the journal.
public struct ResolutionLink: Sendable, Hashable {
    public var transactionID: TransactionID
    public var holdID: TransactionID
    /// The transaction `holdID` exists and is a hold.
    public var namesAHold: Bool
}

/// A row of the journal's own tables whose transaction the journal does not hold.
public enum JournalOrphan: Sendable {
    case entry(EntryRecord)
    case hold(HoldRecord)
    case resolution(ResolutionLink)
}

/// What the holds still open leave pending on one account: in 128 bits, so that a journal
/// written around the ledger with amounts no account could store is found, not an overflow.
public struct HeldAmounts: Sendable, Hashable {
    public var debits: Int128
    public var credits: Int128

    public static let none = HeldAmounts(debits: 0, credits: 0)
}
