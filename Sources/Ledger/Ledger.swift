/// Bounds on what one call may ask of the ledger.
public struct LedgerLimits: Sendable, Hashable {
    /// Requests in one batch.
    public var batchSizeMax: Int
    /// Legs in one transaction.
    public var legsMax: Int
    /// UTF-8 bytes of an idempotency key.
    public var keyBytesMax: Int
    /// UTF-8 bytes of a memo.
    public var memoBytesMax: Int
    /// Holds expired by one call of `expireHolds`.
    public var expiryBatchMax: Int
    /// One leg or hold: at most 10,000,000,000.00 (10^12 fen, or points).
    public var amountMax: Int64
    /// An account's debits or credits total, posted or pending: at most
    /// 1,000,000,000,000,000.00 (10^17 fen), a ninety-second of what 64 bits hold, so that
    /// no sum the ledger or a report forms can overflow, for any account, system accounts
    /// included. A city moving ten billion yuan a day through one account reaches it in
    /// about 270,000 years.
    public var accountTotalMax: Int64

    public static let amountMaxDefault: Int64 = 1_000_000_000_000
    public static let accountTotalMaxDefault: Int64 = 100_000_000_000_000_000

    public init(batchSizeMax: Int = 32_768, legsMax: Int = 64, keyBytesMax: Int = 128, memoBytesMax: Int = 512, expiryBatchMax: Int = 10_000,
                amountMax: Int64 = amountMaxDefault, accountTotalMax: Int64 = accountTotalMaxDefault) {
        self.batchSizeMax = batchSizeMax
        self.legsMax = legsMax
        self.keyBytesMax = keyBytesMax
        self.memoBytesMax = memoBytesMax
        self.expiryBatchMax = expiryBatchMax
        self.amountMax = min(amountMax, Self.amountMaxDefault)
        self.accountTotalMax = min(accountTotalMax, Self.accountTotalMaxDefault)
    }
}

/// The shared double-entry ledger: accounts with rules, balanced immutable transactions,
/// holds, reversals, idempotency and a hash-chained journal, over any `LedgerStore`.
public struct Ledger: Sendable {
    public let store: any LedgerStore
    public let clock: any LedgerClock
    public let limits: LedgerLimits

    public init(store: any LedgerStore, clock: any LedgerClock = SystemClock(), limits: LedgerLimits = LedgerLimits()) {
        self.store = store
        self.clock = clock
        self.limits = limits
    }

    // MARK: Accounts

    /// Opens an account, or returns the existing one when an account with the same code and
    /// the same asset and kind exists (so opening is safe to retry).
    public func openAccount(_ spec: AccountSpec) throws -> Account {
        try store.write { tx in try openAccount(spec, in: tx) }
    }

    /// `openAccount` inside a caller's transaction.
    public func openAccount(_ spec: AccountSpec, in tx: any LedgerWriting) throws -> Account {
        try Self.openAccount(spec, in: tx, clock: clock)
    }

    /// `openAccount` inside a transaction, with no `Ledger` value at hand.
    public static func openAccount(_ spec: AccountSpec, in tx: any LedgerWriting, clock: any LedgerClock) throws -> Account {
        guard !spec.code.isEmpty, spec.code.utf8.count <= 128 else {
            throw LedgerError(.invalidAccount, "an account code must be 1 to 128 bytes", context: String(spec.code.prefix(32)))
        }
        guard spec.rules.overdraftLimit >= 0 else {
            throw LedgerError(.invalidAccount, "an overdraft limit cannot be negative", context: spec.code)
        }
        if let existing = try tx.account(code: spec.code) {
            guard existing.asset == spec.asset, existing.kind == spec.kind else {
                throw LedgerError(.accountCodeTaken, "an account with this code exists with another asset or kind", context: spec.code)
            }
            return existing
        }
        return try tx.insertAccount(spec, createdAt: clock.nowMicros())
    }

    /// The account with this id.
    public func account(id: AccountID) throws -> Account {
        guard let account = try store.read({ try $0.account(id: id) }) else {
            throw LedgerError(.accountNotFound, "no account with this id", context: "account \(id)")
        }
        return account
    }

    /// The account with this code.
    public func account(code: String) throws -> Account {
        guard let account = try store.read({ try $0.account(code: code) }) else {
            throw LedgerError(.accountNotFound, "no account with this code", context: code)
        }
        return account
    }

    /// Replaces an account's rules (freeze, unfreeze, close, overdraft) and keeps the change.
    public func setRules(accountID: AccountID, rules: AccountRules, reason: String) throws -> Account {
        try store.write { tx in try setRules(accountID: accountID, rules: rules, reason: reason, in: tx) }
    }

    /// `setRules` inside a caller's transaction.
    public func setRules(accountID: AccountID, rules: AccountRules, reason: String, in tx: any LedgerWriting) throws -> Account {
        guard var account = try tx.account(id: accountID) else {
            throw LedgerError(.accountNotFound, "no account with this id", context: "account \(accountID)")
        }
        guard rules.overdraftLimit >= 0 else {
            throw LedgerError(.invalidAccount, "an overdraft limit cannot be negative", context: account.code)
        }
        try tx.updateRules(AccountRuleChange(accountID: accountID, rules: rules, reason: reason, at: clock.nowMicros()))
        account.rules = rules
        return account
    }

    // MARK: Posting

    /// Posts one request in its own database transaction.
    public func post(_ request: PostingRequest) throws -> PostingResult {
        try post([request])[0]
    }

    /// Posts a batch in one database transaction: each request is committed or refused on
    /// its own, except linked groups, which succeed or fail together.
    public func post(_ requests: [PostingRequest]) throws -> [PostingResult] {
        try store.write { tx in try post(requests, in: tx) }
    }

    /// Posts a batch inside a caller's transaction, so the caller's own rows commit with it.
    public func post(_ requests: [PostingRequest], in tx: any LedgerWriting) throws -> [PostingResult] {
        try Self.post(requests, in: tx, clock: clock, limits: limits)
    }

    /// Posts any number of requests inside the caller's transaction, in batches of at most
    /// `limits.batchSizeMax`, never splitting a linked group; the results are in request
    /// order. For jobs, whose chunks may hold more requests than one batch. A linked group
    /// larger than a batch is refused with `batchTooLarge` before anything is posted after it.
    public static func postInBatches(_ requests: [PostingRequest], in tx: any LedgerWriting, clock: any LedgerClock, limits: LedgerLimits = LedgerLimits()) throws -> [PostingResult] {
        guard requests.count > limits.batchSizeMax else { return try post(requests, in: tx, clock: clock, limits: limits) }
        var results: [PostingResult] = []
        results.reserveCapacity(requests.count)
        var start = 0
        while start < requests.count {
            var end = min(requests.count, start + limits.batchSizeMax)
            // A batch ends after a request that does not link to the next.
            while end < requests.count && end > start && requests[end - 1].linked { end -= 1 }
            guard end > start else {
                throw LedgerError(.batchTooLarge, "a linked group holds more than \(limits.batchSizeMax) requests; a batch cannot hold it", context: "request \(start)")
            }
            results += try post(Array(requests[start..<end]), in: tx, clock: clock, limits: limits)
            start = end
        }
        return results
    }

    /// Posts a batch inside a transaction, with no `Ledger` value at hand (jobs, other modules).
    public static func post(_ requests: [PostingRequest], in tx: any LedgerWriting, clock: any LedgerClock, limits: LedgerLimits = LedgerLimits()) throws -> [PostingResult] {
        guard requests.count <= limits.batchSizeMax else {
            throw LedgerError(.batchTooLarge, "a batch may hold at most \(limits.batchSizeMax) requests; split it", context: "\(requests.count) requests")
        }
        var batch = try PostingBatch(tx: tx, limits: limits, now: clock.nowMicros())
        return try batch.run(requests)
    }

    /// Expires holds whose expiry has passed (at most `limits.expiryBatchMax` per call).
    public func expireHolds() throws -> [PostingResult] {
        try store.write { tx in
            let now = clock.nowMicros()
            let holds = try tx.expiredOpenHolds(asOf: now, limit: limits.expiryBatchMax)
            let requests = holds.map { hold in
                PostingRequest(key: "ledger.expire.\(hold.id)", action: .expireHold(holdID: hold.id), memo: "hold expired")
            }
            return try post(requests, in: tx)
        }
    }

    // MARK: Reading

    /// An account's posted balance as it was at `asOf` (one indexed lookup; with many
    /// writers, a system account's entries carry no running balance, and its balance is the
    /// sum of its entries recorded until then).
    public func balance(accountID: AccountID, asOf: TimestampMicros) throws -> Int64 {
        try store.read { tx in
            guard let account = try tx.account(id: accountID) else {
                throw LedgerError(.accountNotFound, "no account with this id", context: "account \(accountID)")
            }
            if tx.concurrentWriters && account.kind.isFolded {
                return try tx.movement(accountID: accountID, recordedFrom: 0, to: asOf == .max ? .max : asOf + 1)
            }
            return try tx.lastEntry(accountID: accountID, recordedAtOrBefore: asOf)?.balanceAfter ?? 0
        }
    }

    /// An account's entries, newest first; page with `beforeSeq` from the last one returned.
    public func entries(accountID: AccountID, beforeSeq: Int64? = nil, limit: Int = 100) throws -> [EntryRecord] {
        try store.read { tx in try tx.entries(accountID: accountID, beforeSeq: beforeSeq, limit: max(1, min(limit, 10_000))) }
    }

    /// A journal row and its entries.
    public func transaction(id: TransactionID) throws -> (TransactionRecord, [EntryRecord])? {
        try store.read { tx in
            guard let record = try tx.transaction(id: id) else { return nil }
            return (record, try tx.entries(transactionID: id))
        }
    }
}
