import GRDB
import GRDBSQLite
import Synchronization

/// The ledger's store on SQLite (through GRDB's connection management): the embedded
/// default. Every SQL statement of the ledger is in this file and its session.
public final class SQLiteLedgerStore: LedgerStore {
    /// The database, shared with the modules that write in the same transactions.
    public let pool: DatabasePool

    /// Called inside every write transaction, just before it commits (an audit trail that
    /// must commit with the change it records). Set once, before the store is used.
    private let beforeCommit = Mutex<(@Sendable (Database) throws -> Void)?>(nil)

    public init(pool: DatabasePool) {
        self.pool = pool
    }

    /// Installs the hook every write transaction calls before it commits.
    public func setBeforeCommit(_ hook: (@Sendable (Database) throws -> Void)?) {
        beforeCommit.withLock { $0 = hook }
    }

    /// Opens a database holding only the ledger's schema (tests, benchmarks).
    public convenience init(path: String) throws {
        self.init(pool: try SQLiteDatabase.open(path: path, migrator: SQLiteDatabase.ledgerMigrator()))
    }

    /// The ledger as read inside the caller's transaction or snapshot `db` (a job's summary,
    /// a report that reads other modules' tables in the same snapshot).
    public static func reader(in db: Database) throws -> any LedgerReading {
        try SQLiteLedgerSession(db: db)
    }

    public func read<T>(_ body: (any LedgerReading) throws -> T) throws -> T {
        try Self.mapErrors {
            try pool.read { db in
                let session = try SQLiteLedgerSession(db: db)
                return try body(session)
            }
        }
    }

    /// Runs `body` in one read-only snapshot, with the GRDB connection for the caller's own
    /// tables and the ledger's reads on the same snapshot.
    public func snapshot<T>(_ body: (Database, any LedgerReading) throws -> T) throws -> T {
        try Self.mapErrors {
            try pool.read { db in
                let session = try SQLiteLedgerSession(db: db)
                return try body(db, session)
            }
        }
    }

    public func write<T>(_ body: (any LedgerWriting) throws -> T) throws -> T {
        try transaction { _, session in try body(session) }
    }

    /// Runs `body` in one immediate write transaction, with the GRDB connection for the
    /// caller's own tables and the ledger session on the same connection.
    public func transaction<T>(_ body: (Database, any LedgerWriting) throws -> T) throws -> T {
        try Self.mapErrors {
            try pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    let session = try SQLiteLedgerSession(db: db)
                    result = try body(db, session)
                    if let hook = beforeCommit.withLock({ $0 }) { try hook(db) }
                    return .commit
                }
                guard let result else {
                    throw LedgerError(.storage, "the write transaction ended without a result")
                }
                return result
            }
        }
    }

    /// Turns GRDB's errors into `LedgerError`, keeping every other error as it is.
    static func mapErrors<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            if error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED {
                throw LedgerError(.busy, "the database is locked by another writer past the timeout; retry later",
                                  cause: error.message, context: error.sql)
            }
            throw LedgerError(.storage, "the ledger database refused a statement",
                              cause: "\(error.resultCode): \(error.message ?? "")", context: error.sql)
        }
    }
}

/// One transaction's view of the ledger tables, with its prepared statements.
final class SQLiteLedgerSession: LedgerWriting {
    private let connection: OpaquePointer
    private var statements = [RawStatement?](repeating: nil, count: Query.allCases.count)

    init(db: Database) throws {
        guard let connection = db.sqliteConnection else {
            throw LedgerError(.storage, "the database connection is closed")
        }
        self.connection = connection
    }

    private func statement(_ query: Query) throws(LedgerError) -> RawStatement {
        if let statement = statements[query.rawValue] {
            return statement
        }
        let statement = try RawStatement(connection: connection, sql: query.sql)
        statements[query.rawValue] = statement
        return statement
    }
    /// Every statement of the session, prepared once per transaction and looked up by index.
    enum Query: Int, CaseIterable {
        case accountByID
        case accountByCode
        case allAccounts
        case insertAccount
        case updateRules
        case logRuleChange
        case saveTotals
        case idempotencyByKey
        case insertIdempotency
        case insertIdempotencyIfAbsent
        case transactionByID
        case insertTransaction
        case reversalOf
        case chainHead
        case insertEntry
        case entriesOfTransaction
        case lastEntryAtOrBefore
        case entriesOfAccount
        case holdByID
        case insertHold
        case resolutionOfHold
        case insertResolution
        case expiredOpenHolds
        case movementOfAccount
        case recordedMovementOfAccount
        case transactionsByKeyPrefix
        case netCreditsOfKind

        var sql: String {
            switch self {
            case .accountByID: "SELECT \(SQLiteLedgerSession.accountColumns) FROM ledger_accounts WHERE id = ?"
            case .accountByCode: "SELECT \(SQLiteLedgerSession.accountColumns) FROM ledger_accounts WHERE code = ?"
            case .allAccounts: "SELECT \(SQLiteLedgerSession.accountColumns) FROM ledger_accounts ORDER BY id"
            case .insertAccount: """
                INSERT INTO ledger_accounts (code, asset, kind, debits_must_not_exceed_credits,
                    credits_must_not_exceed_debits, overdraft_limit, frozen, closed, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
            case .updateRules: """
                UPDATE ledger_accounts SET debits_must_not_exceed_credits = ?, credits_must_not_exceed_debits = ?,
                    overdraft_limit = ?, frozen = ?, closed = ? WHERE id = ?
                """
            case .logRuleChange: """
                INSERT INTO ledger_account_rule_changes (account_id, debits_must_not_exceed_credits,
                    credits_must_not_exceed_debits, overdraft_limit, frozen, closed, reason, at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """
            case .saveTotals: """
                UPDATE ledger_accounts SET debits_posted = ?, credits_posted = ?, debits_pending = ?,
                    credits_pending = ?, entry_seq = ? WHERE id = ?
                """
            case .idempotencyByKey: "SELECT request_hash, transaction_id, refusal, recorded_at FROM ledger_idempotency WHERE key = ?"
            case .insertIdempotency: "INSERT INTO ledger_idempotency (key, request_hash, transaction_id, refusal, recorded_at) VALUES (?, ?, ?, ?, ?)"
            case .insertIdempotencyIfAbsent: "INSERT INTO ledger_idempotency (key, request_hash, transaction_id, refusal, recorded_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
            case .transactionByID: "SELECT \(SQLiteLedgerSession.transactionColumns) FROM ledger_transactions WHERE id = ?"
            case .insertTransaction: """
                INSERT INTO ledger_transactions (id, kind, idempotency_key, ref_id, recorded_at, effective_at, memo, prev_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
            case .reversalOf: "SELECT id FROM ledger_transactions WHERE ref_id = ? AND kind = 'reversal'"
            case .chainHead: "SELECT id, hash, recorded_at FROM ledger_transactions ORDER BY id DESC LIMIT 1"
            case .insertEntry: "INSERT INTO ledger_entries (\(SQLiteLedgerSession.entryColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            case .entriesOfTransaction: "SELECT \(SQLiteLedgerSession.entryColumns) FROM ledger_entries WHERE transaction_id = ? ORDER BY leg"
            case .lastEntryAtOrBefore: """
                SELECT \(SQLiteLedgerSession.entryColumns) FROM ledger_entries
                WHERE account_id = ? AND recorded_at <= ?
                ORDER BY recorded_at DESC, account_seq DESC LIMIT 1
                """
            case .entriesOfAccount: """
                SELECT \(SQLiteLedgerSession.entryColumns) FROM ledger_entries
                WHERE account_id = ? AND account_seq < ?
                ORDER BY recorded_at DESC, account_seq DESC LIMIT ?
                """
            case .holdByID: "SELECT id, debit_account_id, credit_account_id, asset, amount, expires_at FROM ledger_holds WHERE id = ?"
            case .insertHold: "INSERT INTO ledger_holds (id, debit_account_id, credit_account_id, asset, amount, expires_at) VALUES (?, ?, ?, ?, ?, ?)"
            case .resolutionOfHold: "SELECT transaction_id, outcome, amount_posted FROM ledger_hold_resolutions WHERE hold_id = ?"
            case .insertResolution: "INSERT INTO ledger_hold_resolutions (hold_id, transaction_id, outcome, amount_posted) VALUES (?, ?, ?, ?)"
            case .movementOfAccount: """
                SELECT coalesce(sum(CASE e.side WHEN 1 THEN e.amount ELSE -e.amount END), 0) FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
                WHERE e.account_id = ? AND t.effective_at >= ? AND t.effective_at < ?
                """
            case .recordedMovementOfAccount: """
                SELECT coalesce(sum(CASE side WHEN 1 THEN amount ELSE -amount END), 0) FROM ledger_entries
                WHERE account_id = ? AND recorded_at >= ? AND recorded_at < ?
                """
            case .transactionsByKeyPrefix: """
                SELECT id, idempotency_key FROM ledger_transactions
                WHERE effective_at >= ?1 AND effective_at < ?2 AND substr(idempotency_key, 1, length(?3)) = ?3 ORDER BY id
                """
            case .netCreditsOfKind: "SELECT coalesce(sum(credits_posted - debits_posted), 0) FROM ledger_accounts WHERE kind = ?"
            case .expiredOpenHolds: """
                SELECT h.id, h.debit_account_id, h.credit_account_id, h.asset, h.amount, h.expires_at
                FROM ledger_holds h
                WHERE h.expires_at IS NOT NULL AND h.expires_at <= ?
                  AND NOT EXISTS (SELECT 1 FROM ledger_hold_resolutions r WHERE r.hold_id = h.id)
                ORDER BY h.expires_at, h.id LIMIT ?
                """
            }
        }
    }


    private func execute(_ sql: String) throws(LedgerError) {
        let code = sqlite3_exec(connection, sql, nil, nil, nil)
        guard code == SQLITE_OK else {
            throw RawStatement.error(code: code, connection: connection, sql: sql)
        }
    }

    // MARK: Accounts

    private static let accountColumns = """
        id, code, asset, kind, debits_must_not_exceed_credits, credits_must_not_exceed_debits,
        overdraft_limit, frozen, closed, debits_posted, credits_posted, debits_pending,
        credits_pending, entry_seq, created_at
        """

    private func readAccount(_ row: RawStatement) throws(LedgerError) -> Account {
        guard let asset = Asset(rawValue: row.text(2)), let kind = AccountKind(rawValue: row.text(3)) else {
            throw LedgerError(.corrupt, "an account row has an unknown asset or kind", context: "account \(row.int64(0))")
        }
        return Account(
            id: row.int64(0), code: row.text(1), asset: asset, kind: kind,
            rules: AccountRules(
                debitsMustNotExceedCredits: row.int64(4) != 0,
                creditsMustNotExceedDebits: row.int64(5) != 0,
                overdraftLimit: row.int64(6),
                frozen: row.int64(7) != 0,
                closed: row.int64(8) != 0),
            debitsPosted: row.int64(9), creditsPosted: row.int64(10),
            debitsPending: row.int64(11), creditsPending: row.int64(12),
            entrySeq: row.int64(13), createdAt: row.int64(14))
    }

    func account(id: AccountID) throws -> Account? {
        let row = try statement(.accountByID)
        defer { row.reset() }
        row.bind(1, id)
        return try row.step() ? try readAccount(row) : nil
    }

    func account(code: String) throws -> Account? {
        let row = try statement(.accountByCode)
        defer { row.reset() }
        row.bind(1, code)
        return try row.step() ? try readAccount(row) : nil
    }

    func allAccounts() throws -> [Account] {
        let row = try statement(.allAccounts)
        defer { row.reset() }
        var accounts: [Account] = []
        while try row.step() {
            accounts.append(try readAccount(row))
        }
        return accounts
    }

    func insertAccount(_ spec: AccountSpec, createdAt: TimestampMicros) throws -> Account {
        if try account(code: spec.code) != nil {
            throw LedgerError(.accountCodeTaken, "an account with this code already exists", context: spec.code)
        }
        let insert = try statement(.insertAccount)
        insert.bind(1, spec.code)
        insert.bind(2, spec.asset.rawValue)
        insert.bind(3, spec.kind.rawValue)
        insert.bind(4, spec.rules.debitsMustNotExceedCredits ? 1 : 0)
        insert.bind(5, spec.rules.creditsMustNotExceedDebits ? 1 : 0)
        insert.bind(6, spec.rules.overdraftLimit)
        insert.bind(7, spec.rules.frozen ? 1 : 0)
        insert.bind(8, spec.rules.closed ? 1 : 0)
        insert.bind(9, createdAt)
        try insert.run()
        let id = sqlite3_last_insert_rowid(connection)
        return Account(id: id, code: spec.code, asset: spec.asset, kind: spec.kind, rules: spec.rules, createdAt: createdAt)
    }

    func updateRules(_ change: AccountRuleChange) throws {
        let update = try statement(.updateRules)
        let log = try statement(.logRuleChange)
        let rules = change.rules
        update.bind(1, rules.debitsMustNotExceedCredits ? 1 : 0)
        update.bind(2, rules.creditsMustNotExceedDebits ? 1 : 0)
        update.bind(3, rules.overdraftLimit)
        update.bind(4, rules.frozen ? 1 : 0)
        update.bind(5, rules.closed ? 1 : 0)
        update.bind(6, change.accountID)
        log.bind(1, change.accountID)
        log.bind(2, rules.debitsMustNotExceedCredits ? 1 : 0)
        log.bind(3, rules.creditsMustNotExceedDebits ? 1 : 0)
        log.bind(4, rules.overdraftLimit)
        log.bind(5, rules.frozen ? 1 : 0)
        log.bind(6, rules.closed ? 1 : 0)
        log.bind(7, change.reason)
        log.bind(8, change.at)
        try update.run()
        try log.run()
    }

    func saveTotals(_ account: Account) throws {
        let update = try statement(.saveTotals)
        update.bind(1, account.debitsPosted)
        update.bind(2, account.creditsPosted)
        update.bind(3, account.debitsPending)
        update.bind(4, account.creditsPending)
        update.bind(5, account.entrySeq)
        update.bind(6, account.id)
        try update.run()
    }

    // MARK: Idempotency

    func idempotencyRecord(key: String) throws -> IdempotencyRecord? {
        let row = try statement(.idempotencyByKey)
        defer { row.reset() }
        row.bind(1, key)
        guard try row.step() else { return nil }
        var refusal: LedgerRefusal?
        if let code = row.optionalText(2) {
            guard let known = LedgerRefusal(rawValue: code) else {
                throw LedgerError(.corrupt, "an idempotency record has an unknown refusal code", context: code)
            }
            refusal = known
        }
        return IdempotencyRecord(key: key, requestHash: row.bytes(0), transactionID: row.optionalInt64(1), refusal: refusal, recordedAt: row.int64(3))
    }

    func insertIdempotency(_ record: IdempotencyRecord) throws {
        try bindIdempotency(record, to: try statement(.insertIdempotency)).run()
    }

    func insertIdempotencyIfAbsent(_ record: IdempotencyRecord) throws -> Bool {
        try bindIdempotency(record, to: try statement(.insertIdempotencyIfAbsent)).run()
        return sqlite3_changes(connection) == 1
    }

    private func bindIdempotency(_ record: IdempotencyRecord, to insert: RawStatement) -> RawStatement {
        insert.bind(1, record.key)
        insert.bind(2, bytes: record.requestHash)
        insert.bind(3, record.transactionID)
        insert.bind(4, record.refusal?.rawValue)
        insert.bind(5, record.recordedAt)
        return insert
    }

    // MARK: Journal

    private static let transactionColumns = "id, kind, idempotency_key, ref_id, recorded_at, effective_at, memo, prev_hash, hash"

    private func readTransaction(_ row: RawStatement) throws(LedgerError) -> TransactionRecord {
        guard let kind = TransactionKind(rawValue: row.text(1)) else {
            throw LedgerError(.corrupt, "a journal row has an unknown kind", context: "transaction \(row.int64(0))")
        }
        return TransactionRecord(
            id: row.int64(0), kind: kind, key: row.text(2), refID: row.optionalInt64(3),
            recordedAt: row.int64(4), effectiveAt: row.int64(5), memo: row.text(6),
            prevHash: row.bytes(7), hash: row.bytes(8))
    }

    func transaction(id: TransactionID) throws -> TransactionRecord? {
        let row = try statement(.transactionByID)
        defer { row.reset() }
        row.bind(1, id)
        return try row.step() ? try readTransaction(row) : nil
    }

    func insertTransaction(_ record: TransactionRecord) throws {
        let insert = try statement(.insertTransaction)
        insert.bind(1, record.id)
        insert.bind(2, record.kind.rawValue)
        insert.bind(3, record.key)
        insert.bind(4, record.refID)
        insert.bind(5, record.recordedAt)
        insert.bind(6, record.effectiveAt)
        insert.bind(7, record.memo)
        insert.bind(8, bytes: record.prevHash)
        insert.bind(9, bytes: record.hash)
        try insert.run()
    }

    func reversal(of id: TransactionID) throws -> TransactionID? {
        let row = try statement(.reversalOf)
        defer { row.reset() }
        row.bind(1, id)
        return try row.step() ? row.int64(0) : nil
    }

    func chainHead() throws -> ChainHead? {
        let row = try statement(.chainHead)
        defer { row.reset() }
        return try row.step() ? ChainHead(id: row.int64(0), hash: row.bytes(1), recordedAt: row.int64(2)) : nil
    }

    // MARK: Entries

    private static let entryColumns = "transaction_id, leg, account_id, asset, side, amount, balance_after, account_seq, recorded_at"

    private func readEntry(_ row: RawStatement) throws(LedgerError) -> EntryRecord {
        guard let asset = Asset(rawValue: row.text(3)), let side = Side(rawValue: Int(row.int64(4))) else {
            throw LedgerError(.corrupt, "an entry row has an unknown asset or side", context: "transaction \(row.int64(0))")
        }
        return EntryRecord(
            transactionID: row.int64(0), leg: Int(row.int64(1)), accountID: row.int64(2), asset: asset,
            side: side, amount: row.int64(5), balanceAfter: row.int64(6), accountSeq: row.int64(7),
            recordedAt: row.int64(8))
    }

    func insertEntry(_ entry: EntryRecord) throws {
        let insert = try statement(.insertEntry)
        insert.bind(1, entry.transactionID)
        insert.bind(2, Int64(entry.leg))
        insert.bind(3, entry.accountID)
        insert.bind(4, entry.asset.rawValue)
        insert.bind(5, Int64(entry.side.rawValue))
        insert.bind(6, entry.amount)
        insert.bind(7, entry.balanceAfter)
        insert.bind(8, entry.accountSeq)
        insert.bind(9, entry.recordedAt)
        try insert.run()
    }

    func entries(transactionID: TransactionID) throws -> [EntryRecord] {
        let row = try statement(.entriesOfTransaction)
        defer { row.reset() }
        row.bind(1, transactionID)
        var entries: [EntryRecord] = []
        while try row.step() {
            entries.append(try readEntry(row))
        }
        return entries
    }

    func lastEntry(accountID: AccountID, recordedAtOrBefore asOf: TimestampMicros) throws -> EntryRecord? {
        let row = try statement(.lastEntryAtOrBefore)
        defer { row.reset() }
        row.bind(1, accountID)
        row.bind(2, asOf)
        return try row.step() ? try readEntry(row) : nil
    }

    func entries(accountID: AccountID, beforeSeq: Int64?, limit: Int) throws -> [EntryRecord] {
        let row = try statement(.entriesOfAccount)
        defer { row.reset() }
        row.bind(1, accountID)
        row.bind(2, beforeSeq ?? Int64.max)
        row.bind(3, Int64(limit))
        var entries: [EntryRecord] = []
        while try row.step() {
            entries.append(try readEntry(row))
        }
        return entries
    }

    // MARK: Holds

    private func readHold(_ row: RawStatement) throws(LedgerError) -> HoldRecord {
        guard let asset = Asset(rawValue: row.text(3)) else {
            throw LedgerError(.corrupt, "a hold row has an unknown asset", context: "hold \(row.int64(0))")
        }
        return HoldRecord(id: row.int64(0), debitAccountID: row.int64(1), creditAccountID: row.int64(2), asset: asset, amount: row.int64(4), expiresAt: row.optionalInt64(5))
    }

    func hold(id: TransactionID) throws -> HoldRecord? {
        let row = try statement(.holdByID)
        defer { row.reset() }
        row.bind(1, id)
        return try row.step() ? try readHold(row) : nil
    }

    func insertHold(_ hold: HoldRecord) throws {
        let insert = try statement(.insertHold)
        insert.bind(1, hold.id)
        insert.bind(2, hold.debitAccountID)
        insert.bind(3, hold.creditAccountID)
        insert.bind(4, hold.asset.rawValue)
        insert.bind(5, hold.amount)
        insert.bind(6, hold.expiresAt)
        try insert.run()
    }

    func holdResolution(holdID: TransactionID) throws -> HoldResolution? {
        let row = try statement(.resolutionOfHold)
        defer { row.reset() }
        row.bind(1, holdID)
        guard try row.step() else { return nil }
        guard let outcome = HoldResolution.Outcome(rawValue: row.text(1)) else {
            throw LedgerError(.corrupt, "a hold resolution has an unknown outcome", context: "hold \(holdID)")
        }
        return HoldResolution(holdID: holdID, transactionID: row.int64(0), outcome: outcome, amountPosted: row.int64(2))
    }

    func insertHoldResolution(_ resolution: HoldResolution) throws {
        let insert = try statement(.insertResolution)
        insert.bind(1, resolution.holdID)
        insert.bind(2, resolution.transactionID)
        insert.bind(3, resolution.outcome.rawValue)
        insert.bind(4, resolution.amountPosted)
        try insert.run()
    }

    func expiredOpenHolds(asOf: TimestampMicros, limit: Int) throws -> [HoldRecord] {
        let row = try statement(.expiredOpenHolds)
        defer { row.reset() }
        row.bind(1, asOf)
        row.bind(2, Int64(limit))
        var holds: [HoldRecord] = []
        while try row.step() {
            holds.append(try readHold(row))
        }
        return holds
    }

    // MARK: Reads for reconciliation

    func movement(accountID: AccountID, effectiveFrom from: TimestampMicros, to: TimestampMicros) throws -> Int64 {
        try sum(.movementOfAccount, accountID, from, to)
    }

    func movement(accountID: AccountID, recordedFrom from: TimestampMicros, to: TimestampMicros) throws -> Int64 {
        try sum(.recordedMovementOfAccount, accountID, from, to)
    }

    /// The one value of a sum over an account and a period.
    private func sum(_ query: Query, _ accountID: AccountID, _ from: TimestampMicros, _ to: TimestampMicros) throws -> Int64 {
        let row = try statement(query)
        defer { row.reset() }
        row.bind(1, accountID)
        row.bind(2, from)
        row.bind(3, to)
        return try row.step() ? row.int64(0) : 0
    }

    func transactions(keyPrefix: String, effectiveFrom from: TimestampMicros, to: TimestampMicros) throws -> [(id: TransactionID, key: String)] {
        let row = try statement(.transactionsByKeyPrefix)
        defer { row.reset() }
        row.bind(1, from)
        row.bind(2, to)
        row.bind(3, keyPrefix)
        var found: [(id: TransactionID, key: String)] = []
        while try row.step() {
            found.append((row.int64(0), row.text(1)))
        }
        return found
    }

    func netCredits(kind: AccountKind) throws -> Int64 {
        let row = try statement(.netCreditsOfKind)
        defer { row.reset() }
        row.bind(1, kind.rawValue)
        return try row.step() ? row.int64(0) : 0
    }

    func credits(ofTransactions ids: [TransactionID]) throws -> [TransactionID: [AccountID: Int64]] {
        var found: [TransactionID: [AccountID: Int64]] = [:]
        let unique = Array(Set(ids)).sorted()
        // A few hundred ids a statement: a month of paid bills costs a few reads, not one a bill.
        for start in stride(from: 0, to: unique.count, by: 500) {
            let part = unique[start..<min(start + 500, unique.count)]
            let marks = part.map { _ in "?" }.joined(separator: ",")
            let known = try RawStatement(connection: connection, sql: "SELECT id FROM ledger_transactions WHERE id IN (\(marks))")
            let credited = try RawStatement(connection: connection, sql: """
                SELECT transaction_id, account_id, sum(amount) FROM ledger_entries WHERE side = 1 AND transaction_id IN (\(marks)) GROUP BY transaction_id, account_id
                """)
            for (index, id) in part.enumerated() {
                known.bind(Int32(index + 1), id)
                credited.bind(Int32(index + 1), id)
            }
            while try known.step() { found[known.int64(0)] = [:] }
            while try credited.step() {
                // Credits of a transaction the journal lacks stay out: it counts as missing.
                found[credited.int64(0)]?[credited.int64(1)] = credited.int64(2)
            }
        }
        return found
    }

    // MARK: Streaming

    func forEachTransaction(_ body: (TransactionRecord, [EntryRecord], HoldRecord?) throws -> Void) throws {
        // Three cursors in id order, merged: one pass over each table, no per-row lookups.
        let transactions = try RawStatement(connection: connection, sql: "SELECT \(Self.transactionColumns) FROM ledger_transactions ORDER BY id")
        let entries = try RawStatement(connection: connection, sql: "SELECT \(Self.entryColumns) FROM ledger_entries ORDER BY transaction_id, leg")
        let holds = try RawStatement(connection: connection, sql: "SELECT id, debit_account_id, credit_account_id, asset, amount, expires_at FROM ledger_holds ORDER BY id")
        var nextEntry: EntryRecord? = try entries.step() ? try readEntry(entries) : nil
        var nextHold: HoldRecord? = try holds.step() ? try readHold(holds) : nil
        while try transactions.step() {
            let record = try readTransaction(transactions)
            var legs: [EntryRecord] = []
            while let entry = nextEntry, entry.transactionID <= record.id {
                // An entry whose transaction is missing shows up as an entry of an earlier id:
                // hand it over with the next transaction so the check sees it.
                legs.append(entry)
                nextEntry = try entries.step() ? try readEntry(entries) : nil
            }
            var hold: HoldRecord?
            while let candidate = nextHold, candidate.id <= record.id {
                if candidate.id == record.id { hold = candidate }
                nextHold = try holds.step() ? try readHold(holds) : nil
            }
            try body(record, legs, hold)
        }
    }
}
