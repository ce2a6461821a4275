import QDSQL

/// The whole of the ledger's persistence: every SQL statement of the ledger lives behind an
/// implementation of this protocol. The rules, the hash chain and idempotency live in
/// `Ledger`, so another database is one new conforming type.
public protocol LedgerStore: Sendable {
    /// Runs `body` in a read-only snapshot.
    func read<T>(_ body: (any LedgerReading) throws -> T) throws -> T
    /// Runs `body` in one write transaction: all of it commits, or none of it.
    func write<T>(_ body: (any LedgerWriting) throws -> T) throws -> T
    /// Chains every committed journal row not chained yet (with many writers at once the
    /// chain is sealed after commit); nothing to do with one writer at a time.
    func sealPending() throws
}

extension LedgerStore {
    public func sealPending() throws {}
}

/// Reads, inside a transaction or snapshot.
public protocol LedgerReading: AnyObject {
    func account(id: AccountID) throws -> Account?
    func account(code: String) throws -> Account?
    func idempotencyRecord(key: String) throws -> IdempotencyRecord?
    /// The records of several keys (those found), in one read with many writers, which the
    /// rest of the transaction then knows without asking again.
    func idempotencyRecords(keys: [String]) throws -> [String: IdempotencyRecord]
    /// Many writers: sends the read of these keys' records ahead, without waiting: it is
    /// answered with the next statement that waits, and the transaction then knows them
    /// without asking (`idempotencyRecords`, a posting). Nothing with one writer at a time.
    func readAhead(idempotencyKeys keys: [String]) throws
    func transaction(id: TransactionID) throws -> TransactionRecord?
    /// The legs of one transaction, in leg order.
    func entries(transactionID: TransactionID) throws -> [EntryRecord]
    func hold(id: TransactionID) throws -> HoldRecord?
    func holdResolution(holdID: TransactionID) throws -> HoldResolution?
    /// The reversal of a transaction, if there is one.
    func reversal(of id: TransactionID) throws -> TransactionID?
    /// The newest journal row, or `nil` on an empty journal.
    func chainHead() throws -> ChainHead?
    /// The account's latest entry recorded at or before `asOf` (one indexed lookup).
    func lastEntry(accountID: AccountID, recordedAtOrBefore asOf: TimestampMicros) throws -> EntryRecord?
    /// The account's entries, newest first, older than `beforeSeq` when given.
    func entries(accountID: AccountID, beforeSeq: Int64?, limit: Int) throws -> [EntryRecord]
    /// Holds whose expiry is at or before `asOf` and that are not resolved, soonest first.
    func expiredOpenHolds(asOf: TimestampMicros, limit: Int) throws -> [HoldRecord]
    /// What each of `accountIDs` moved (its credits less its debits) in the transactions
    /// effective in `[from, to)`: what reconciliation compares a biller's day with. Every
    /// account asked for is a key (0 when it did not move).
    func movements(accountIDs: [AccountID], effectiveFrom from: TimestampMicros, to: TimestampMicros) throws -> [AccountID: Int64]
    /// What an account moved (its credits less its debits) in the entries recorded in `[from, to)`.
    func movement(accountID: AccountID, recordedFrom from: TimestampMicros, to: TimestampMicros) throws -> Int64
    /// The transactions effective in `[from, to)`, with their keys: the first `limit` after
    /// the position `after` (from the day's start when nil), in the order of their effective
    /// time, then id. The next page starts after the last one returned.
    func transactions(effectiveFrom from: TimestampMicros, to: TimestampMicros, after: JournalPosition?, limit: Int) throws -> [(id: TransactionID, key: String, effectiveAt: TimestampMicros)]
    /// Credits less debits posted, over every account of `kind`.
    func netCredits(kind: AccountKind) throws -> Int64
    /// Of `ids`, the transactions the journal holds, each with what it credited to each
    /// account (an id the journal lacks is not a key of the answer).
    func credits(ofTransactions ids: [TransactionID]) throws -> [TransactionID: [AccountID: Int64]]
    /// Whether other transactions write the ledger at the same time (PostgreSQL): accounts
    /// are locked, system accounts' totals added to, ids drawn from a sequence, and the chain
    /// sealed when a transaction commits.
    var concurrentWriters: Bool { get }
    /// The hash an anchor `SEQ:HASH` names: the transaction's with one writer at a time, the
    /// seal's at position `SEQ` with many.
    func anchoredHash(at seq: Int64) throws -> [UInt8]?
    /// The seals in chain order (none with one writer at a time).
    func forEachSeal(_ body: (ChainSeal) throws -> Void) throws
    /// Committed journal rows waiting for their seal.
    func unsealedCount() throws -> Int64
    /// Journal rows neither sealed nor waiting for a seal: written around the ledger.
    func neitherSealedNorQueued() throws -> [TransactionID]
    /// Every account in id order, each handed to `account` with what the holds still open
    /// (those no resolution names) leave pending on it, and then its entries to `entry`, in
    /// the order of the account's sequence, before the next account; an entry that names no
    /// account comes where its account id falls, and an account id that open holds name but
    /// no account has goes to `heldByNoAccount`. Streamed: memory does not grow with the
    /// accounts, the entries or the holds.
    func forEachAccount(
        _ account: (Account, HeldAmounts) throws -> Void,
        entry: (AccountEntryPosition) throws -> Void,
        heldByNoAccount: (AccountID) throws -> Void
    ) throws
    /// Streams the journal in id order with each transaction's entries, its hold row and the
    /// resolution rows naming it. An entry, a hold or a resolution row whose transaction the
    /// journal lacks goes to `orphan`, where its id falls (an empty journal's too). Memory does
    /// not grow with the journal.
    func forEachTransaction(
        _ body: (TransactionRecord, [EntryRecord], HoldRecord?, [ResolutionLink]) throws -> Void,
        orphan: (JournalOrphan) throws -> Void
    ) throws
    /// Streams each reversal that names a transaction an earlier reversal already names
    /// (`original`, `reversal`), through the reversals in the order of what they name: only a
    /// journal written around the ledger has one. Memory does not grow with the journal.
    func forEachRepeatedReversal(_ body: (_ original: TransactionID, _ reversal: TransactionID) throws -> Void) throws
}

/// Writes, inside one transaction. Rows of the journal are only ever inserted.
public protocol LedgerWriting: LedgerReading {
    /// Inserts an account; fails with `LedgerError.accountCodeTaken` on a duplicate code.
    func insertAccount(_ spec: AccountSpec, createdAt: TimestampMicros) throws -> Account
    /// Changes an account's rules and keeps the change for audit.
    func updateRules(_ change: AccountRuleChange) throws
    /// Stores an account's running totals and entry sequence.
    func saveTotals(_ account: Account) throws
    func insertTransaction(_ record: TransactionRecord) throws
    func insertEntry(_ entry: EntryRecord) throws
    func insertHold(_ hold: HoldRecord) throws
    func insertHoldResolution(_ resolution: HoldResolution) throws
    func insertIdempotency(_ record: IdempotencyRecord) throws
    /// Inserts the record unless its key exists; `false` when it did (nothing written).
    func insertIdempotencyIfAbsent(_ record: IdempotencyRecord) throws -> Bool
    /// The accounts a batch will post to, read once; with many writers, people's and
    /// merchants' accounts locked in id order until the transaction ends.
    func accountsForPosting(_ ids: [AccountID]) throws -> [Account]
    /// Many writers: locks people's and merchants' accounts as `accountsForPosting` does, sent
    /// without waiting: the lock is held from the next statement that waits (which goes in
    /// the same round trip and runs once the lock is granted). Nothing with one writer.
    func lockAhead(_ ids: [AccountID]) throws
    /// One account a batch found it needs later (a hold's, a reversal's), locked likewise.
    func accountForPosting(_ id: AccountID) throws -> Account?
    /// `count` new transaction ids, ascending (many writers).
    func transactionIDs(count: Int) throws -> [TransactionID]
    /// Adds what a batch moved on a system account to its totals (many writers).
    func addTotals(_ account: Account, since before: Account) throws
    /// A journal row this transaction wrote, to be sealed when it commits (many writers).
    func journalWritten(_ id: TransactionID, hash: [UInt8])
    /// A posting batch begins (many writers: its rows are kept and written together when it
    /// ends). In one round trip: the accounts it names locked as `accountsForPosting` locks
    /// them, `idCount` new ids (`transactionIDs`) and the records of its idempotency keys.
    func beginBatch(accounts: [AccountID], idCount: Int, keys: [String]) throws -> (accounts: [Account], ids: [TransactionID])
    /// The posting batch ends: what it kept is written.
    func endBatch() throws
}

/// The ledger as read inside the caller's transaction or snapshot `db`, on either engine (a
/// report that reads other modules' tables in the same snapshot).
public func ledgerReader(in db: any SQLConnection) -> any LedgerReading {
    LedgerSession(db)
}
