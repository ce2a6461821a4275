/// Why the ledger refused a posting request: a closed list, named after what went wrong.
public enum LedgerRefusal: String, Sendable, Hashable, Codable, CaseIterable, Error, CustomStringConvertible {
    // The request itself.
    case keyMustNotBeEmpty = "key_must_not_be_empty"
    case keyTooLong = "key_too_long"
    case memoTooLong = "memo_too_long"
    case legsMustNotBeEmpty = "legs_must_not_be_empty"
    case tooManyLegs = "too_many_legs"
    case amountMustBePositive = "amount_must_be_positive"
    case legsMustBalance = "legs_must_balance"
    case accountsMustBeDifferent = "accounts_must_be_different"
    case expiryMustBeInFuture = "expiry_must_be_in_future"
    case amountsOverflow = "amounts_overflow"
    case amountExceedsLimit = "amount_exceeds_limit"
    // The accounts.
    case accountNotFound = "account_not_found"
    case assetMismatch = "asset_mismatch"
    case accountClosed = "account_closed"
    case accountFrozen = "account_frozen"
    case exceedsCredits = "exceeds_credits"
    case exceedsDebits = "exceeds_debits"
    case balanceOverflow = "balance_overflow"
    // Holds.
    case holdNotFound = "hold_not_found"
    case holdAlreadyPosted = "hold_already_posted"
    case holdAlreadyVoided = "hold_already_voided"
    case holdExpired = "hold_expired"
    case holdNotExpired = "hold_not_expired"
    case exceedsHoldAmount = "exceeds_hold_amount"
    // Reversals.
    case transactionNotFound = "transaction_not_found"
    case notReversible = "not_reversible"
    case alreadyReversed = "already_reversed"
    // Idempotency and batches.
    case keyReusedWithDifferentRequest = "key_reused_with_different_request"
    case linkedEventFailed = "linked_event_failed"
    case linkedEventChainOpen = "linked_event_chain_open"

    public var description: String { rawValue + ": " + explanation }

    /// One sentence an operator can act on.
    public var explanation: String {
        switch self {
        case .keyMustNotBeEmpty: "every posting needs an idempotency key"
        case .keyTooLong: "the idempotency key is longer than the limit"
        case .memoTooLong: "the memo is longer than the limit"
        case .legsMustNotBeEmpty: "a transaction needs at least two legs"
        case .tooManyLegs: "the transaction has more legs than the limit"
        case .amountMustBePositive: "every amount must be greater than zero"
        case .legsMustBalance: "debits and credits must be equal for each asset"
        case .accountsMustBeDifferent: "the debit and credit account must differ"
        case .expiryMustBeInFuture: "a hold's expiry must be later than now"
        case .amountsOverflow: "the amounts add up beyond 64 bits"
        case .amountExceedsLimit: "one leg or hold may move at most 10,000,000,000.00"
        case .accountNotFound: "an account named in the request does not exist"
        case .assetMismatch: "a leg's asset differs from its account's asset"
        case .accountClosed: "the account is closed"
        case .accountFrozen: "the account is frozen and cannot be debited"
        case .exceedsCredits: "the available balance does not cover the debit"
        case .exceedsDebits: "the account may not be credited beyond its debits"
        case .balanceOverflow: "an account total would pass the ledger's bound of 1,000,000,000,000,000.00"
        case .holdNotFound: "no hold with that id"
        case .holdAlreadyPosted: "the hold was already posted"
        case .holdAlreadyVoided: "the hold was already voided or expired"
        case .holdExpired: "the hold expired before it was posted"
        case .holdNotExpired: "the hold's expiry has not passed"
        case .exceedsHoldAmount: "the amount to post exceeds the amount held"
        case .transactionNotFound: "no transaction with that id"
        case .notReversible: "only transfers and posted holds can be reversed"
        case .alreadyReversed: "the transaction was already reversed"
        case .keyReusedWithDifferentRequest: "the idempotency key was used before for a different request"
        case .linkedEventFailed: "another request of the same linked group was refused"
        case .linkedEventChainOpen: "the last request of the batch is marked linked"
        }
    }

    /// Whether a refusal with this code is remembered under the request's key. Refusals that
    /// depend on other requests of the batch, or on the key itself, are not.
    var isRemembered: Bool {
        switch self {
        case .linkedEventFailed, .linkedEventChainOpen, .keyReusedWithDifferentRequest,
             .keyMustNotBeEmpty, .keyTooLong:
            false
        default:
            true
        }
    }
}
