import Foundation
import QDSQL

/// One transaction's view of the ledger tables, written once against the SQL layer for both
/// engines: every SQL statement of the ledger is here. Errors of the engine become
/// `LedgerError`s (busy, storage, a corrupt row).
final class LedgerSession: LedgerWriting {
    let sql: any SQLConnection
    /// The statements prepared so far in this transaction, by `Query`.
    private var statements = [(any SQLStatement)?](repeating: nil, count: Query.allCases.count)

    /// Whether other transactions write the ledger at the same time (PostgreSQL).
    let concurrentWriters: Bool
    /// The journal rows this transaction wrote, to be sealed when it commits.
    private var written: [(id: TransactionID, hash: [UInt8])] = []
    /// PostgreSQL, during a posting batch: its rows, written when the batch ends.
    private var bulk: LedgerBulkWrites?
    /// PostgreSQL: idempotency records read or written in this transaction, absent ones as
    /// nil, so that a payment asks the server once per key. A key another transaction
    /// commits meanwhile is found when this one inserts it (a unique violation: the whole
    /// transaction runs again, and replays).
    private var idempotencyCache: [String: IdempotencyRecord?] = [:]
    /// Reads of idempotency records sent ahead (`readAhead`), taken into the cache before it
    /// is next consulted; their keys are not asked for again meanwhile.
    private var idempotencyAhead: [(keys: [String], records: SQLPending<[IdempotencyRecord]>)] = []
    private var keysAhead = Set<String>()

    init(_ sql: any SQLConnection) {
        self.sql = sql
        concurrentWriters = sql.dialect == .postgres
    }

    /// The advisory lock key of the chain's sealing ("qdseals!" in ASCII).
    static let chainLockKey: Int64 = 0x7164_7365_616C_7321

    private func statement(_ query: Query) throws -> any SQLStatement {
        if let statement = statements[query.rawValue] { return statement }
        let statement = try sql.prepare(query.sql(sql.dialect))
        statements[query.rawValue] = statement
        return statement
    }

    /// Runs a statement that returns no rows; how many rows it changed.
    @discardableResult
    private func run(_ query: Query, _ binds: [SQLValue]) throws(LedgerError) -> Int {
        do {
            return try statement(query).execute(binds)
        } catch {
            throw Self.ledgerError(error)
        }
    }

    /// Runs a write whose count is not needed (`SQLConnection.send`).
    private func send(_ query: Query, _ binds: [SQLValue]) throws(LedgerError) {
        do {
            try statement(query).send(binds)
        } catch {
            throw Self.ledgerError(error)
        }
    }

    /// The first row of a query, read by `read`; nil when there is none.
    private func one<T>(_ query: Query, _ binds: [SQLValue], _ read: (SQLRow) throws -> T) throws(LedgerError) -> T? {
        do {
            var found: T?
            try statement(query).query(binds) { row in
                found = try read(row)
                return false
            }
            return found
        } catch {
            throw Self.ledgerError(error)
        }
    }

    /// A query sent ahead (`SQLConnection.sendQuery`), its rows read by `read` when asked for.
    private func ahead<T>(_ query: Query, _ binds: [SQLValue], _ read: @escaping (SQLRow) throws -> T) throws(LedgerError) -> SQLPending<[T]> {
        do {
            return SQLPending(rows: try sql.sendQuery(query.sql(sql.dialect), binds)) { rows in try rows.map { try read($0.row) } }
        } catch {
            throw Self.ledgerError(error)
        }
    }

    /// What a query sent ahead answered, its errors as the ledger's.
    private func answer<T>(_ pending: SQLPending<T>) throws(LedgerError) -> T {
        do {
            return try pending.get()
        } catch {
            throw Self.ledgerError(error)
        }
    }

    /// Every row of a query, read by `read`.
    private func all<T>(_ query: Query, _ binds: [SQLValue], _ read: (SQLRow) throws -> T) throws(LedgerError) -> [T] {
        do {
            var rows: [T] = []
            try statement(query).query(binds) { row in
                rows.append(try read(row))
                return true
            }
            return rows
        } catch {
            throw Self.ledgerError(error)
        }
    }

    static func ledgerError(_ error: any Error) -> LedgerError {
        switch error {
        case let error as LedgerError:
            return error
        case let error as SQLError where error.kind == .busy || error.kind == .serialization:
            return LedgerError(.busy, "the database is locked by another writer; retry later", cause: error.message, context: error.sql)
        case let error as SQLError where error.kind == .unavailable:
            return LedgerError(.storage, "the database server cannot be reached", cause: error.message, context: error.sql)
        case let error as SQLError where error.kind == .column:
            return LedgerError(.corrupt, "a ledger row holds a value of the wrong kind", cause: error.message, context: error.sql)
        case let error as SQLError:
            return LedgerError(.storage, "the ledger database refused a statement", cause: "\(error.code): \(error.message)", context: error.sql)
        default:
            return LedgerError(.storage, "the ledger database failed", cause: "\(error)")
        }
    }

    /// Every statement of the session; the connection prepares each text once and keeps it.
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
        case recordedMovementOfAccount
        case transactionsOfDayAfter
        // SQLite only: the rest of a day after one effective time.
        case transactionsLaterInDay
        case netCreditsOfKind
        case anchoredHash
        case entriesByAccountSeq
        // PostgreSQL only: many writers at once.
        case lockAccounts
        case lockAccount
        case foldedAccounts
        case nextTransactionIDs
        case addToFreeShard
        case insertShard
        case tryChainLock
        case chainLock
        case takeUnsealedAndHead
        case insertUnsealed
        case insertSeal
        case unsealedCount
        case neitherSealedNorQueued

        /// The texts, built once for each engine.
        static let sqliteTexts = Query.allCases.map { $0.text(.sqlite) }
        static let postgresTexts = Query.allCases.map { $0.text(.postgres) }

        func sql(_ dialect: SQLDialect) -> String {
            dialect == .postgres ? Query.postgresTexts[rawValue] : Query.sqliteTexts[rawValue]
        }

        private func text(_ dialect: SQLDialect) -> String {
            let accounts = LedgerSession.accountSelect(dialect)
            switch self {
            case .accountByID: return "\(accounts) WHERE a.id = ?"
            case .accountByCode: return "\(accounts) WHERE a.code = ?"
            case .allAccounts: return "\(accounts) ORDER BY a.id"
            case .netCreditsOfKind:
                guard dialect == .postgres else { return "SELECT coalesce(sum(credits_posted - debits_posted), 0) FROM ledger_accounts WHERE kind = ?" }
                return """
                    SELECT coalesce((SELECT sum(credits_posted - debits_posted) FROM ledger_accounts WHERE kind = ?1), 0)
                        + coalesce((SELECT sum(s.credits_posted - s.debits_posted) FROM ledger_account_shards s JOIN ledger_accounts a ON a.id = s.account_id WHERE a.kind = ?1), 0)
                    """
            case .chainHead:
                guard dialect == .postgres else { return "SELECT id, hash, recorded_at FROM ledger_transactions ORDER BY id DESC LIMIT 1" }
                return "SELECT pos, hash, 0 FROM ledger_seals ORDER BY pos DESC LIMIT 1"
            case .anchoredHash:
                guard dialect == .postgres else { return "SELECT hash FROM ledger_transactions WHERE id = ?" }
                return "SELECT hash FROM ledger_seals WHERE pos = ?"
            case .entriesByAccountSeq:
                // On SQLite one writer at a time: the recorded time grows with the sequence,
                // and the index on (account, recorded time, sequence) gives this order.
                let order = dialect == .postgres ? "account_id, account_seq" : "account_id, recorded_at, account_seq"
                return "SELECT account_id, account_seq, side, amount, balance_after, transaction_id, asset FROM ledger_entries ORDER BY \(order)"
            case .transactionsOfDayAfter:
                // A day's transactions through the index of the day they are effective, from a
                // position on: each page is a seek, whatever the journal holds before or after
                // the day. PostgreSQL seeks on the pair (time, id) at once; SQLite seeks on a
                // pair compared as a row value only by its first column, so it reads the rest
                // of one effective time here (a night's payments share one) and the later times
                // with `transactionsLaterInDay`. No filter on the key: one the planner cannot
                // estimate led PostgreSQL to read the whole rest of the day and sort it for
                // every page.
                guard dialect == .postgres else {
                    return """
                        SELECT id, idempotency_key, effective_at FROM ledger_transactions
                        WHERE effective_at = ?1 AND id > ?2 AND effective_at < ?3
                        ORDER BY id LIMIT ?4
                        """
                }
                return """
                    SELECT id, idempotency_key, effective_at FROM ledger_transactions
                    WHERE (effective_at, id) > (?1, ?2) AND effective_at < ?3
                    ORDER BY effective_at, id LIMIT ?4
                    """
            default: return sharedText
            }
        }

        /// The statements written once for both engines (and those only PostgreSQL runs).
        private var sharedText: String {
            switch self {
            case .accountByID, .accountByCode, .allAccounts, .netCreditsOfKind, .chainHead, .anchoredHash, .entriesByAccountSeq, .transactionsOfDayAfter: fatalError("written per engine")
            case .lockAccounts: """
                SELECT \(LedgerSession.accountColumns) FROM ledger_accounts
                WHERE id = ANY(string_to_array(?, ',')::bigint[]) AND kind NOT IN (\(LedgerSession.foldedKinds))
                ORDER BY id FOR UPDATE
                """
            case .lockAccount: "SELECT \(LedgerSession.accountColumns) FROM ledger_accounts WHERE id = ? FOR UPDATE"
            case .foldedAccounts: "\(LedgerSession.accountSelect(.postgres)) WHERE a.id = ANY(string_to_array(?, ',')::bigint[]) AND a.kind IN (\(LedgerSession.foldedKinds))"
            case .nextTransactionIDs: "SELECT nextval('ledger_transaction_ids') FROM generate_series(1, ?)"
            case .addToFreeShard: """
                UPDATE ledger_account_shards SET debits_posted = debits_posted + ?2, credits_posted = credits_posted + ?3,
                    debits_pending = debits_pending + ?4, credits_pending = credits_pending + ?5, entries = entries + ?6
                WHERE account_id = ?1 AND shard = (
                    SELECT shard FROM ledger_account_shards WHERE account_id = ?1 ORDER BY shard LIMIT 1 FOR UPDATE SKIP LOCKED)
                RETURNING shard
                """
            case .insertShard: """
                INSERT INTO ledger_account_shards (account_id, shard, debits_posted, credits_posted, debits_pending, credits_pending, entries)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """
            case .tryChainLock: "SELECT CASE WHEN pg_try_advisory_xact_lock(?) THEN 1 ELSE 0 END"
            case .chainLock: "SELECT 1 FROM (SELECT pg_advisory_xact_lock(?)) AS locked"
            case .takeUnsealedAndHead: """
                WITH taken AS (DELETE FROM ledger_unsealed RETURNING transaction_id, hash)
                SELECT 0, transaction_id, hash FROM taken
                UNION ALL (SELECT 1, pos, hash FROM ledger_seals ORDER BY pos DESC LIMIT 1)
                """
            case .insertUnsealed: "INSERT INTO ledger_unsealed (transaction_id, hash) SELECT * FROM unnest(?::bigint[], ?::bytea[])"
            case .insertSeal: "INSERT INTO ledger_seals (pos, transaction_id, hash) SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::bytea[])"
            case .unsealedCount: "SELECT count(*) FROM ledger_unsealed"
            case .neitherSealedNorQueued: """
                SELECT t.id FROM ledger_transactions t
                WHERE NOT EXISTS (SELECT 1 FROM ledger_seals s WHERE s.transaction_id = t.id)
                  AND NOT EXISTS (SELECT 1 FROM ledger_unsealed u WHERE u.transaction_id = t.id)
                ORDER BY t.id LIMIT 100
                """
            case .insertAccount: """
                INSERT INTO ledger_accounts (code, asset, kind, debits_must_not_exceed_credits,
                    credits_must_not_exceed_debits, overdraft_limit, frozen, closed, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
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
            case .transactionByID: "SELECT \(LedgerSession.transactionColumns) FROM ledger_transactions WHERE id = ?"
            case .insertTransaction: """
                INSERT INTO ledger_transactions (id, kind, idempotency_key, ref_id, recorded_at, effective_at, memo, prev_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
            case .reversalOf: "SELECT id FROM ledger_transactions WHERE ref_id = ? AND kind = 'reversal'"
            case .insertEntry: "INSERT INTO ledger_entries (\(LedgerSession.entryColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            case .entriesOfTransaction: "SELECT \(LedgerSession.entryColumns) FROM ledger_entries WHERE transaction_id = ? ORDER BY leg"
            case .lastEntryAtOrBefore: """
                SELECT \(LedgerSession.entryColumns) FROM ledger_entries
                WHERE account_id = ? AND recorded_at <= ?
                ORDER BY recorded_at DESC, account_seq DESC LIMIT 1
                """
            case .entriesOfAccount: """
                SELECT \(LedgerSession.entryColumns) FROM ledger_entries
                WHERE account_id = ? AND account_seq < ?
                ORDER BY recorded_at DESC, account_seq DESC LIMIT ?
                """
            case .holdByID: "SELECT id, debit_account_id, credit_account_id, asset, amount, expires_at FROM ledger_holds WHERE id = ?"
            case .insertHold: "INSERT INTO ledger_holds (id, debit_account_id, credit_account_id, asset, amount, expires_at) VALUES (?, ?, ?, ?, ?, ?)"
            case .resolutionOfHold: "SELECT transaction_id, outcome, amount_posted FROM ledger_hold_resolutions WHERE hold_id = ?"
            case .insertResolution: "INSERT INTO ledger_hold_resolutions (hold_id, transaction_id, outcome, amount_posted) VALUES (?, ?, ?, ?)"
            case .recordedMovementOfAccount: """
                SELECT coalesce(sum(CASE side WHEN 1 THEN amount ELSE -amount END), 0) FROM ledger_entries
                WHERE account_id = ? AND recorded_at >= ? AND recorded_at < ?
                """
            case .transactionsLaterInDay: """
                SELECT id, idempotency_key, effective_at FROM ledger_transactions
                WHERE effective_at > ?1 AND effective_at < ?2
                ORDER BY effective_at, id LIMIT ?3
                """
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

    // MARK: Accounts

    private static let accountColumns = """
        id, code, asset, kind, debits_must_not_exceed_credits, credits_must_not_exceed_debits,
        overdraft_limit, frozen, closed, debits_posted, credits_posted, debits_pending,
        credits_pending, entry_seq, created_at
        """

    /// The accounts with their totals: on PostgreSQL a system account's totals are its row
    /// plus its sub-rows (`ledger_account_shards`).
    fileprivate static func accountSelect(_ dialect: SQLDialect) -> String {
        guard dialect == .postgres else { return "SELECT \(accountColumns) FROM ledger_accounts a" }
        return """
            SELECT a.id, a.code, a.asset, a.kind, a.debits_must_not_exceed_credits, a.credits_must_not_exceed_debits,
                a.overdraft_limit, a.frozen, a.closed, a.debits_posted + coalesce(s.debits_posted, 0), a.credits_posted + coalesce(s.credits_posted, 0),
                a.debits_pending + coalesce(s.debits_pending, 0), a.credits_pending + coalesce(s.credits_pending, 0), a.entry_seq + coalesce(s.entries, 0), a.created_at
            FROM ledger_accounts a LEFT JOIN LATERAL (
                SELECT sum(debits_posted)::bigint AS debits_posted, sum(credits_posted)::bigint AS credits_posted, sum(debits_pending)::bigint AS debits_pending,
                    sum(credits_pending)::bigint AS credits_pending, sum(entries)::bigint AS entries
                FROM ledger_account_shards WHERE account_id = a.id) s ON true
            """
    }

    /// The kinds whose totals are added to rather than locked on PostgreSQL (`AccountKind.isFolded`).
    fileprivate static let foldedKinds = AccountKind.allCases.filter(\.isFolded).map { "'\($0.rawValue)'" }.joined(separator: ", ")

    private static func readAccount(_ row: SQLRow) throws -> Account {
        guard let asset = Asset(rawValue: try row.text(2)), let kind = AccountKind(rawValue: try row.text(3)) else {
            throw LedgerError(.corrupt, "an account row has an unknown asset or kind", context: "account \(try row.int64(0))")
        }
        return Account(
            id: try row.int64(0), code: try row.text(1), asset: asset, kind: kind,
            rules: AccountRules(
                debitsMustNotExceedCredits: try row.bool(4),
                creditsMustNotExceedDebits: try row.bool(5),
                overdraftLimit: try row.int64(6),
                frozen: try row.bool(7),
                closed: try row.bool(8)),
            debitsPosted: try row.int64(9), creditsPosted: try row.int64(10),
            debitsPending: try row.int64(11), creditsPending: try row.int64(12),
            entrySeq: try row.int64(13), createdAt: try row.int64(14))
    }

    func account(id: AccountID) throws -> Account? {
        try one(.accountByID, [.integer(id)], Self.readAccount)
    }

    func account(code: String) throws -> Account? {
        try one(.accountByCode, [.text(code)], Self.readAccount)
    }

    private static func flag(_ value: Bool) -> SQLValue { .integer(value ? 1 : 0) }

    func insertAccount(_ spec: AccountSpec, createdAt: TimestampMicros) throws -> Account {
        if try account(code: spec.code) != nil {
            throw LedgerError(.accountCodeTaken, "an account with this code already exists", context: spec.code)
        }
        let rules = spec.rules
        guard let id = try one(.insertAccount, [
            .text(spec.code), .text(spec.asset.rawValue), .text(spec.kind.rawValue), Self.flag(rules.debitsMustNotExceedCredits),
            Self.flag(rules.creditsMustNotExceedDebits), .integer(rules.overdraftLimit), Self.flag(rules.frozen), Self.flag(rules.closed), .integer(createdAt),
        ], { try $0.int64(0) }) else {
            throw LedgerError(.storage, "the new account's id was not returned", context: spec.code)
        }
        return Account(id: id, code: spec.code, asset: spec.asset, kind: spec.kind, rules: spec.rules, createdAt: createdAt)
    }

    func updateRules(_ change: AccountRuleChange) throws {
        let rules = change.rules
        try run(.updateRules, [
            Self.flag(rules.debitsMustNotExceedCredits), Self.flag(rules.creditsMustNotExceedDebits), .integer(rules.overdraftLimit),
            Self.flag(rules.frozen), Self.flag(rules.closed), .integer(change.accountID),
        ])
        try run(.logRuleChange, [
            .integer(change.accountID), Self.flag(rules.debitsMustNotExceedCredits), Self.flag(rules.creditsMustNotExceedDebits),
            .integer(rules.overdraftLimit), Self.flag(rules.frozen), Self.flag(rules.closed), .text(change.reason), .integer(change.at),
        ])
    }

    func saveTotals(_ account: Account) throws {
        if bulk != nil { return bulk!.save(account) }
        try run(.saveTotals, [
            .integer(account.debitsPosted), .integer(account.creditsPosted), .integer(account.debitsPending),
            .integer(account.creditsPending), .integer(account.entrySeq), .integer(account.id),
        ])
    }

    // MARK: Idempotency

    func idempotencyRecord(key: String) throws -> IdempotencyRecord? {
        if let bulk {
            if let known = bulk.keys[key] { return known }
            if bulk.absent.contains(key) { return nil }
        }
        if !idempotencyAhead.isEmpty { try absorbIdempotency([]) }
        if concurrentWriters, let cached = idempotencyCache[key] { return cached }
        let found = try one(.idempotencyByKey, [.text(key)]) { row in
            var refusal: LedgerRefusal?
            if let code = try row.optionalText(2) {
                guard let known = LedgerRefusal(rawValue: code) else {
                    throw LedgerError(.corrupt, "an idempotency record has an unknown refusal code", context: code)
                }
                refusal = known
            }
            return IdempotencyRecord(key: key, requestHash: try row.bytes(0), transactionID: try row.optionalInt64(1), refusal: refusal, recordedAt: try row.int64(3))
        }
        if concurrentWriters { idempotencyCache[key] = .some(found) }
        return found
    }

    func insertIdempotency(_ record: IdempotencyRecord) throws {
        if bulk != nil { return bulk!.add(record) }
        try run(.insertIdempotency, Self.binds(record))
        if concurrentWriters { idempotencyCache[record.key] = .some(record) }
    }

    func insertIdempotencyIfAbsent(_ record: IdempotencyRecord) throws -> Bool {
        if bulk != nil {
            guard try idempotencyRecord(key: record.key) == nil else { return false }
            bulk!.add(record)
            return true
        }
        let inserted = try run(.insertIdempotencyIfAbsent, Self.binds(record)) == 1
        if concurrentWriters {
            // Not inserted: the stored record is read again when asked for.
            if inserted { idempotencyCache[record.key] = .some(record) } else { idempotencyCache[record.key] = nil }
        }
        return inserted
    }

    private static func binds(_ record: IdempotencyRecord) -> [SQLValue] {
        [.text(record.key), .bytes(record.requestHash), record.transactionID.sqlValue, record.refusal?.rawValue.sqlValue ?? .null, .integer(record.recordedAt)]
    }

    // MARK: Journal

    private static let transactionColumns = "id, kind, idempotency_key, ref_id, recorded_at, effective_at, memo, prev_hash, hash"

    private static func readTransaction(_ row: SQLRow) throws -> TransactionRecord {
        guard let kind = TransactionKind(rawValue: try row.text(1)) else {
            throw LedgerError(.corrupt, "a journal row has an unknown kind", context: "transaction \(try row.int64(0))")
        }
        return TransactionRecord(
            id: try row.int64(0), kind: kind, key: try row.text(2), refID: try row.optionalInt64(3),
            recordedAt: try row.int64(4), effectiveAt: try row.int64(5), memo: try row.text(6),
            prevHash: try row.bytes(7), hash: try row.bytes(8))
    }

    func transaction(id: TransactionID) throws -> TransactionRecord? {
        if let bulk, let index = bulk.transactionIndex[id] { return bulk.transactions[index] }
        return try one(.transactionByID, [.integer(id)], Self.readTransaction)
    }

    func insertTransaction(_ record: TransactionRecord) throws {
        if bulk != nil { return bulk!.add(record) }
        try run(.insertTransaction, [
            .integer(record.id), .text(record.kind.rawValue), .text(record.key), record.refID.sqlValue, .integer(record.recordedAt),
            .integer(record.effectiveAt), .text(record.memo), .bytes(record.prevHash), .bytes(record.hash),
        ])
    }

    func reversal(of id: TransactionID) throws -> TransactionID? {
        if let bulk, let reversal = bulk.reversals[id] { return reversal }
        return try one(.reversalOf, [.integer(id)]) { try $0.int64(0) }
    }

    func chainHead() throws -> ChainHead? {
        try one(.chainHead, []) { row in ChainHead(id: try row.int64(0), hash: try row.bytes(1), recordedAt: try row.int64(2)) }
    }

    // MARK: Entries

    private static let entryColumns = "transaction_id, leg, account_id, asset, side, amount, balance_after, account_seq, recorded_at"

    private static func readEntry(_ row: SQLRow) throws -> EntryRecord {
        guard let asset = Asset(rawValue: try row.text(3)), let side = Side(rawValue: try row.int(4)) else {
            throw LedgerError(.corrupt, "an entry row has an unknown asset or side", context: "transaction \(try row.int64(0))")
        }
        return EntryRecord(
            transactionID: try row.int64(0), leg: try row.int(1), accountID: try row.int64(2), asset: asset,
            side: side, amount: try row.int64(5), balanceAfter: try row.int64(6), accountSeq: try row.int64(7),
            recordedAt: try row.int64(8))
    }

    func insertEntry(_ entry: EntryRecord) throws {
        if bulk != nil { return bulk!.add(entry) }
        try run(.insertEntry, [
            .integer(entry.transactionID), .integer(Int64(entry.leg)), .integer(entry.accountID), .text(entry.asset.rawValue),
            .integer(Int64(entry.side.rawValue)), .integer(entry.amount), .integer(entry.balanceAfter), .integer(entry.accountSeq), .integer(entry.recordedAt),
        ])
    }

    func entries(transactionID: TransactionID) throws -> [EntryRecord] {
        if let bulk, bulk.transactionIndex[transactionID] != nil { return bulk.entriesByTransaction[transactionID] ?? [] }
        return try all(.entriesOfTransaction, [.integer(transactionID)], Self.readEntry)
    }

    func lastEntry(accountID: AccountID, recordedAtOrBefore asOf: TimestampMicros) throws -> EntryRecord? {
        try one(.lastEntryAtOrBefore, [.integer(accountID), .integer(asOf)], Self.readEntry)
    }

    func entries(accountID: AccountID, beforeSeq: Int64?, limit: Int) throws -> [EntryRecord] {
        try all(.entriesOfAccount, [.integer(accountID), .integer(beforeSeq ?? Int64.max), .integer(Int64(limit))], Self.readEntry)
    }

    // MARK: Holds

    private static func readHold(_ row: SQLRow) throws -> HoldRecord {
        guard let asset = Asset(rawValue: try row.text(3)) else {
            throw LedgerError(.corrupt, "a hold row has an unknown asset", context: "hold \(try row.int64(0))")
        }
        return HoldRecord(id: try row.int64(0), debitAccountID: try row.int64(1), creditAccountID: try row.int64(2), asset: asset, amount: try row.int64(4), expiresAt: try row.optionalInt64(5))
    }

    func hold(id: TransactionID) throws -> HoldRecord? {
        if let bulk, let hold = bulk.holds[id] { return hold }
        return try one(.holdByID, [.integer(id)], Self.readHold)
    }

    func insertHold(_ hold: HoldRecord) throws {
        if bulk != nil { return bulk!.add(hold) }
        try run(.insertHold, [
            .integer(hold.id), .integer(hold.debitAccountID), .integer(hold.creditAccountID), .text(hold.asset.rawValue), .integer(hold.amount), hold.expiresAt.sqlValue,
        ])
    }

    func holdResolution(holdID: TransactionID) throws -> HoldResolution? {
        if let bulk, let resolution = bulk.resolutions[holdID] { return resolution }
        return try one(.resolutionOfHold, [.integer(holdID)]) { row in
            guard let outcome = HoldResolution.Outcome(rawValue: try row.text(1)) else {
                throw LedgerError(.corrupt, "a hold resolution has an unknown outcome", context: "hold \(holdID)")
            }
            return HoldResolution(holdID: holdID, transactionID: try row.int64(0), outcome: outcome, amountPosted: try row.int64(2))
        }
    }

    func insertHoldResolution(_ resolution: HoldResolution) throws {
        if bulk != nil { return bulk!.add(resolution) }
        try run(.insertResolution, [.integer(resolution.holdID), .integer(resolution.transactionID), .text(resolution.outcome.rawValue), .integer(resolution.amountPosted)])
    }

    func expiredOpenHolds(asOf: TimestampMicros, limit: Int) throws -> [HoldRecord] {
        try all(.expiredOpenHolds, [.integer(asOf), .integer(Int64(limit))], Self.readHold)
    }

    // MARK: Reads for reconciliation

    func movements(accountIDs: [AccountID], effectiveFrom from: TimestampMicros, to: TimestampMicros) throws -> [AccountID: Int64] {
        let unique = Array(Set(accountIDs)).sorted()
        var moved = Dictionary(uniqueKeysWithValues: unique.map { ($0, Int64(0)) })
        guard !unique.isEmpty else { return moved }
        // The day's transactions first (through their index of the day), then their entries by
        // the journal's key: the accounts' entries of every other day are never read. SQLite
        // keeps the order a CROSS JOIN is written in; PostgreSQL chooses its own.
        do {
            for start in stride(from: 0, to: unique.count, by: 500) {
                let part = unique[start..<min(start + 500, unique.count)]
                let marks = part.map { _ in "?" }.joined(separator: ",")
                try sql.query(Self.movementsSQL(accounts: marks), [.integer(from), .integer(to)] + part.map { SQLValue.integer($0) }) { row in
                    moved[try row.int64(0)] = try row.int64(1)
                    return true
                }
            }
        } catch {
            throw Self.ledgerError(error)
        }
        return moved
    }

    /// What the accounts `accounts` (a list of marks, after the day's two) moved in the
    /// transactions effective in the day.
    static func movementsSQL(accounts marks: String) -> String {
        """
        SELECT e.account_id, sum(CASE e.side WHEN 1 THEN e.amount ELSE -e.amount END)
        FROM ledger_transactions t CROSS JOIN ledger_entries e
        WHERE t.effective_at >= ? AND t.effective_at < ? AND e.transaction_id = t.id AND e.account_id IN (\(marks))
        GROUP BY e.account_id
        """
    }

    func movement(accountID: AccountID, recordedFrom from: TimestampMicros, to: TimestampMicros) throws -> Int64 {
        try one(.recordedMovementOfAccount, [.integer(accountID), .integer(from), .integer(to)]) { try $0.int64(0) } ?? 0
    }

    func transactions(effectiveFrom from: TimestampMicros, to: TimestampMicros, after: JournalPosition?, limit: Int) throws -> [(id: TransactionID, key: String, effectiveAt: TimestampMicros)] {
        func read(_ row: SQLRow) throws -> (id: TransactionID, key: String, effectiveAt: TimestampMicros) { (try row.int64(0), try row.text(1), try row.int64(2)) }
        let position = after.map { max($0, JournalPosition(effectiveAt: from, id: 0)) } ?? JournalPosition(effectiveAt: from, id: 0)
        guard position.effectiveAt < to, limit > 0 else { return [] }
        var page = try all(.transactionsOfDayAfter, [.integer(position.effectiveAt), .integer(position.id), .integer(to), .integer(Int64(limit))], read)
        if page.count < limit && sql.dialect != .postgres {
            page += try all(.transactionsLaterInDay, [.integer(position.effectiveAt), .integer(to), .integer(Int64(limit - page.count))], read)
        }
        return page
    }

    func netCredits(kind: AccountKind) throws -> Int64 {
        try one(.netCreditsOfKind, [.text(kind.rawValue)]) { try $0.int64(0) } ?? 0
    }

    func credits(ofTransactions ids: [TransactionID]) throws -> [TransactionID: [AccountID: Int64]] {
        var found: [TransactionID: [AccountID: Int64]] = [:]
        let unique = Array(Set(ids)).sorted()
        do {
            // A few hundred ids a statement: a month of paid bills costs a few reads, not one a bill.
            for start in stride(from: 0, to: unique.count, by: 500) {
                let part = unique[start..<min(start + 500, unique.count)]
                let marks = part.map { _ in "?" }.joined(separator: ",")
                let binds = part.map { SQLValue.integer($0) }
                try sql.query("SELECT id FROM ledger_transactions WHERE id IN (\(marks))", binds) { row in
                    found[try row.int64(0)] = [:]
                    return true
                }
                try sql.query("""
                    SELECT transaction_id, account_id, sum(amount) FROM ledger_entries WHERE side = 1 AND transaction_id IN (\(marks)) GROUP BY transaction_id, account_id
                    """, binds) { row in
                    // Credits of a transaction the journal lacks stay out: it counts as missing.
                    found[try row.int64(0)]?[try row.int64(1)] = try row.int64(2)
                    return true
                }
            }
        } catch {
            throw Self.ledgerError(error)
        }
        return found
    }

    // MARK: Many writers (PostgreSQL)

    private static func idList(_ ids: [AccountID]) -> SQLValue {
        .text(PostgresText.integerList(ids, braces: false))
    }

    func accountsForPosting(_ ids: [AccountID]) throws -> [Account] {
        guard concurrentWriters else { return try ids.compactMap { try account(id: $0) } }
        let unique = Array(Set(ids)).sorted()
        // People's and merchants' accounts locked in id order (two batches never wait for
        // each other in a cycle), then the system accounts read without a lock.
        let locked = try all(.lockAccounts, [Self.idList(unique)], Self.readAccount)
        // Every account named was a person's or a merchant's (or does not exist): no system
        // account to read.
        if locked.count == unique.count { return locked }
        return locked + (try all(.foldedAccounts, [Self.idList(unique)], Self.readAccount))
    }

    func lockAhead(_ ids: [AccountID]) throws {
        guard concurrentWriters, !ids.isEmpty else { return }
        try send(.lockAccounts, [Self.idList(Array(Set(ids)).sorted())])
    }

    func accountForPosting(_ id: AccountID) throws -> Account? {
        guard concurrentWriters, let found = try account(id: id), !found.kind.isFolded else { return try account(id: id) }
        return try one(.lockAccount, [.integer(id)], Self.readAccount)
    }

    func transactionIDs(count: Int) throws -> [TransactionID] {
        try all(.nextTransactionIDs, [.integer(Int64(max(1, count)))]) { try $0.int64(0) }.sorted()
    }

    /// Adds to a sub-row no other transaction holds (SKIP LOCKED), or to a new one when every
    /// sub-row is held: a system account never makes a writer wait. It has as many sub-rows
    /// as writers ever added to it at once.
    func addTotals(_ account: Account, since before: Account) throws {
        let deltas: [SQLValue] = [
            .integer(account.debitsPosted - before.debitsPosted), .integer(account.creditsPosted - before.creditsPosted),
            .integer(account.debitsPending - before.debitsPending), .integer(account.creditsPending - before.creditsPending), .integer(account.entrySeq - before.entrySeq),
        ]
        if try one(.addToFreeShard, [.integer(account.id)] + deltas, { try $0.int64(0) }) == nil {
            try run(.insertShard, [.integer(account.id), .integer(Int64.random(in: 0..<Int64(Int32.max)))] + deltas)
        }
    }

    func journalWritten(_ id: TransactionID, hash: [UInt8]) {
        written.append((id, hash))
    }

    /// PostgreSQL: from here to `endBatch` the batch's rows are kept. What the batch needs
    /// before it decides goes in one round trip, in this order: its accounts locked (as
    /// `accountsForPosting`: the system accounts read after the locks), `idCount` new ids
    /// drawn after the locks, and the records of `keys` not read before in this transaction.
    func beginBatch(accounts named: [AccountID], idCount: Int, keys: [String]) throws -> (accounts: [Account], ids: [TransactionID]) {
        guard concurrentWriters else { return ([], []) }
        let unique = Array(Set(named)).sorted()
        let locked = try ahead(.lockAccounts, [Self.idList(unique)], Self.readAccount)
        let folded = try ahead(.foldedAccounts, [Self.idList(unique)], Self.readAccount)
        let fresh = try ahead(.nextTransactionIDs, [.integer(Int64(max(1, idCount)))]) { try $0.int64(0) }
        let records = try sendIdempotency(keys: keys)
        let accounts = try answer(locked) + answer(folded)
        let ids = try answer(fresh).sorted()
        try absorbIdempotency(records)
        var batch = LedgerBulkWrites()
        for key in Set(keys) where !key.isEmpty {
            if let record = idempotencyCache[key] ?? nil { batch.keys[key] = record } else { batch.absent.insert(key) }
        }
        bulk = batch
        return (accounts, ids)
    }

    func idempotencyRecords(keys: [String]) throws -> [String: IdempotencyRecord] {
        guard concurrentWriters else {
            var found: [String: IdempotencyRecord] = [:]
            for key in keys { found[key] = try idempotencyRecord(key: key) }
            return found
        }
        try readIdempotency(keys: keys)
        var found: [String: IdempotencyRecord] = [:]
        for key in keys { found[key] = idempotencyCache[key] ?? nil }
        return found
    }

    /// Many writers: reads the records of `keys` not read before in this transaction, a
    /// thousand a statement, and remembers them (and the keys found absent).
    private func readIdempotency(keys: [String]) throws {
        try absorbIdempotency(sendIdempotency(keys: keys))
    }

    func readAhead(idempotencyKeys keys: [String]) throws {
        guard concurrentWriters else { return }
        let sent = try sendIdempotency(keys: keys)
        idempotencyAhead += sent
        for (part, _) in sent { keysAhead.formUnion(part) }
    }

    /// The queries of `readIdempotency`, sent ahead: each with the keys it asks for (none
    /// for those known or already asked for).
    private func sendIdempotency(keys: [String]) throws -> [(keys: [String], records: SQLPending<[IdempotencyRecord]>)] {
        let unique = Set(keys).filter { !$0.isEmpty && idempotencyCache[$0] == nil && !keysAhead.contains($0) }.sorted()
        return try stride(from: 0, to: unique.count, by: 1_000).map { start in
            let part = Array(unique[start..<min(start + 1_000, unique.count)])
            return (part, try sql.sendAll("SELECT key, request_hash, transaction_id, refusal, recorded_at FROM ledger_idempotency WHERE key = ANY(?::text[])", [PostgresArray.texts(part)]) { row in
                var refusal: LedgerRefusal?
                if let code = try row.optionalText(3) {
                    guard let known = LedgerRefusal(rawValue: code) else {
                        throw LedgerError(.corrupt, "an idempotency record has an unknown refusal code", context: code)
                    }
                    refusal = known
                }
                return IdempotencyRecord(key: try row.text(0), requestHash: try row.bytes(1), transactionID: try row.optionalInt64(2), refusal: refusal, recordedAt: try row.int64(4))
            })
        }
    }

    /// Remembers what the queries of `sendIdempotency` (and those sent ahead) found, and
    /// the keys they did not; never over what this transaction wrote since.
    private func absorbIdempotency(_ sent: [(keys: [String], records: SQLPending<[IdempotencyRecord]>)]) throws {
        let all = idempotencyAhead + sent
        idempotencyAhead = []
        keysAhead = []
        for (part, records) in all {
            var found: [String: IdempotencyRecord] = [:]
            for record in try records.get() { found[record.key] = record }
            for key in part where idempotencyCache[key] == nil { idempotencyCache[key] = .some(found[key]) }
        }
    }

    /// Writes what the batch kept, in a few statements, and stops keeping.
    func endBatch() throws {
        guard let batch = bulk else { return }
        bulk = nil
        for record in batch.idempotency { idempotencyCache[record.key] = .some(record) }
        do {
            for (text, binds) in batch.statements() {
                try sql.send(text, binds)
            }
        } catch {
            throw Self.ledgerError(error)
        }
    }

    /// Before this transaction commits (PostgreSQL): seals its journal rows, with those other
    /// writers left in the queue, when the chain's lock is free; otherwise queues them for the
    /// next writer that takes it. Never waits for the lock.
    func sealOnCommit() throws {
        if bulk != nil {
            // A batch that threw and a caller that went on: nothing of it may commit.
            throw LedgerError(.storage, "a posting batch did not finish; the transaction is rolled back")
        }
        guard concurrentWriters, !written.isEmpty else { return }
        if try one(.tryChainLock, [.integer(Self.chainLockKey)], { try $0.int64(0) }) == 1 {
            try seal(own: written)
        } else {
            try send(.insertUnsealed, [PostgresArray.integers(written.map(\.id)), PostgresArray.bytes(written.map(\.hash))])
        }
        written.removeAll()
    }

    /// Seals every committed journal row still in the queue, waiting for the chain's lock (a
    /// check, an anchor). Returns how many it sealed.
    @discardableResult
    func sealQueued() throws -> Int {
        guard concurrentWriters else { return 0 }
        _ = try one(.chainLock, [.integer(Self.chainLockKey)]) { try $0.int64(0) }
        return try seal(own: [])
    }

    /// Holding the chain's lock: chains the queued rows and `own` after the last seal, in id
    /// order.
    @discardableResult
    private func seal(own: [(id: TransactionID, hash: [UInt8])]) throws -> Int {
        // The queue and the chain's head in one statement, read after the lock was taken.
        var head = ChainHead.genesis
        var rows = own
        for row in try all(.takeUnsealedAndHead, [], { row in (isHead: try row.int64(0) == 1, id: try row.int64(1), hash: try row.bytes(2)) }) {
            if row.isHead { head = ChainHead(id: row.id, hash: row.hash, recordedAt: 0) } else { rows.append((row.id, row.hash)) }
        }
        guard !rows.isEmpty else { return 0 }
        rows.sort { $0.id < $1.id }
        var scratch: [UInt8] = []
        var positions: [Int64] = [], hashes: [[UInt8]] = []
        for row in rows {
            let pos = head.id + 1
            let hash = HashChain.seal(previous: head.hash, pos: pos, transactionID: row.id, contentHash: row.hash, scratch: &scratch)
            positions.append(pos)
            hashes.append(hash)
            head = ChainHead(id: pos, hash: hash, recordedAt: 0)
        }
        try send(.insertSeal, [PostgresArray.integers(positions), PostgresArray.integers(rows.map(\.id)), PostgresArray.bytes(hashes)])
        return rows.count
    }

    func anchoredHash(at seq: Int64) throws -> [UInt8]? {
        try one(.anchoredHash, [.integer(seq)]) { try $0.bytes(0) }
    }

    func forEachSeal(_ body: (ChainSeal) throws -> Void) throws {
        guard concurrentWriters else { return }
        try stream("SELECT s.pos, s.transaction_id, s.hash, t.hash FROM ledger_seals s LEFT JOIN ledger_transactions t ON t.id = s.transaction_id ORDER BY s.pos", { row in
            ChainSeal(pos: try row.int64(0), transactionID: try row.int64(1), hash: try row.bytes(2), contentHash: try row.optionalData(3).map { [UInt8]($0) })
        }, body)
    }

    /// Every row of a query through a cursor (memory bounded however many), read by `read`.
    private func stream<T>(_ text: String, _ read: (SQLRow) throws -> T, _ body: (T) throws -> Void) throws {
        let rows = try cursor(text)
        while let item = try next(rows, read) { try body(item) }
    }

    func unsealedCount() throws -> Int64 {
        guard concurrentWriters else { return 0 }
        return try one(.unsealedCount, []) { try $0.int64(0) } ?? 0
    }

    func neitherSealedNorQueued() throws -> [TransactionID] {
        guard concurrentWriters else { return [] }
        return try all(.neitherSealedNorQueued, []) { try $0.int64(0) }
    }

    /// A cursor over a query's rows, its errors as the ledger's.
    private func cursor(_ text: String) throws(LedgerError) -> any SQLCursor {
        do {
            return try sql.cursor(text, [])
        } catch {
            throw Self.ledgerError(error)
        }
    }

    /// The cursor's next row, read by `read` (nil after the last), its errors as the ledger's.
    private func next<T>(_ cursor: any SQLCursor, _ read: (SQLRow) throws -> T) throws(LedgerError) -> T? {
        do {
            return try cursor.next().map(read)
        } catch {
            throw Self.ledgerError(error)
        }
    }

    // MARK: Streaming

    func forEachAccount(
        _ account: (Account, HeldAmounts) throws -> Void,
        entry: (AccountEntryPosition) throws -> Void,
        heldByNoAccount: (AccountID) throws -> Void
    ) throws {
        // Three cursors in account order, merged: one pass over the accounts and the entries,
        // the open holds summed by account by the engine; nothing held.
        let accounts = try cursor(Query.allAccounts.sql(sql.dialect))
        let entries = try cursor(Query.entriesByAccountSeq.sql(sql.dialect))
        let held = try cursor(Self.heldByAccount)
        var nextEntry = try next(entries, Self.readEntryPosition)
        var nextHeld = try next(held, Self.readHeld)
        while let found = try next(accounts, Self.readAccount) {
            // Entries and holds of an id no account has come before the next account that exists.
            while let position = nextEntry, position.accountID < found.id {
                try entry(position)
                nextEntry = try next(entries, Self.readEntryPosition)
            }
            var amounts = HeldAmounts.none
            while let (id, sums) = nextHeld, id <= found.id {
                if id == found.id { amounts = sums } else { try heldByNoAccount(id) }
                nextHeld = try next(held, Self.readHeld)
            }
            try account(found, amounts)
            while let position = nextEntry, position.accountID == found.id {
                try entry(position)
                nextEntry = try next(entries, Self.readEntryPosition)
            }
        }
        while let position = nextEntry {
            try entry(position)
            nextEntry = try next(entries, Self.readEntryPosition)
        }
        while let (id, _) = nextHeld {
            try heldByNoAccount(id)
            nextHeld = try next(held, Self.readHeld)
        }
    }

    /// What the holds no resolution names leave pending, summed by account in account order:
    /// the engine groups them (a sort it may spill to disk), not the process. Each amount is
    /// summed in two parts, its billions and the rest, so that no sum overflows 64 bits
    /// however large the amounts of a journal written around the ledger: the parts are joined
    /// in 128 bits, and an account whose holds sum past what it can store is a mismatch, not
    /// an error of the engine.
    private static let heldByAccount = """
        SELECT account_id, CAST(SUM(debits / 1000000000) AS BIGINT), CAST(SUM(debits % 1000000000) AS BIGINT),
               CAST(SUM(credits / 1000000000) AS BIGINT), CAST(SUM(credits % 1000000000) AS BIGINT) FROM (
            SELECT h.debit_account_id AS account_id, h.amount AS debits, 0 AS credits FROM ledger_holds h
             WHERE NOT EXISTS (SELECT 1 FROM ledger_hold_resolutions r WHERE r.hold_id = h.id)
            UNION ALL
            SELECT h.credit_account_id, 0, h.amount FROM ledger_holds h
             WHERE NOT EXISTS (SELECT 1 FROM ledger_hold_resolutions r WHERE r.hold_id = h.id)
        ) held GROUP BY account_id ORDER BY account_id
        """

    private static func readHeld(_ row: SQLRow) throws -> (AccountID, HeldAmounts) {
        func joined(_ billions: Int, _ rest: Int) throws -> Int128 { Int128(try row.int64(billions)) * 1_000_000_000 + Int128(try row.int64(rest)) }
        return (try row.int64(0), HeldAmounts(debits: try joined(1, 2), credits: try joined(3, 4)))
    }

    private static func readEntryPosition(_ row: SQLRow) throws -> AccountEntryPosition {
        guard let asset = Asset(rawValue: try row.text(6)), let side = Side(rawValue: try row.int(2)) else {
            throw LedgerError(.corrupt, "an entry row has an unknown asset or side", context: "transaction \(try row.int64(5))")
        }
        return AccountEntryPosition(accountID: try row.int64(0), asset: asset, accountSeq: try row.int64(1), side: side,
                                    amount: try row.int64(3), balanceAfter: try row.int64(4), transactionID: try row.int64(5))
    }

    func forEachRepeatedReversal(_ body: (_ original: TransactionID, _ reversal: TransactionID) throws -> Void) throws {
        // The reversals alone, through their index by what they name (the condition is its
        // predicate); without it (dropped around the ledger) a scan and a sort.
        let reversals = try cursor("SELECT ref_id, id FROM ledger_transactions WHERE kind = 'reversal' AND ref_id IS NOT NULL ORDER BY ref_id, id")
        var last: TransactionID?
        while let (original, reversal) = try next(reversals, { (try $0.int64(0), try $0.int64(1)) }) {
            if original == last { try body(original, reversal) }
            last = original
        }
    }

    func forEachTransaction(_ body: (TransactionRecord, [EntryRecord], HoldRecord?, [ResolutionLink]) throws -> Void, orphan: (JournalOrphan) throws -> Void) throws {
        // Four cursors in transaction id order, merged: one pass over each table; a
        // resolution's hold looked up by key (whether it names a hold). A row of an id the
        // journal lacks is an orphan, found before the transaction after it or at the end.
        let transactions = try cursor("SELECT \(Self.transactionColumns) FROM ledger_transactions ORDER BY id")
        let entries = try cursor("SELECT \(Self.entryColumns) FROM ledger_entries ORDER BY transaction_id, leg")
        let holds = try cursor("SELECT id, debit_account_id, credit_account_id, asset, amount, expires_at FROM ledger_holds ORDER BY id")
        let resolutions = try cursor("""
            SELECT r.transaction_id, r.hold_id, CASE WHEN t.kind = 'hold' THEN 1 ELSE 0 END
              FROM ledger_hold_resolutions r LEFT JOIN ledger_transactions t ON t.id = r.hold_id
             ORDER BY r.transaction_id
            """)
        var nextEntry = try next(entries, Self.readEntry)
        var nextHold = try next(holds, Self.readHold)
        var nextResolution = try next(resolutions, Self.readResolutionLink)
        while let record = try next(transactions, Self.readTransaction) {
            var legs: [EntryRecord] = []
            while let entry = nextEntry, entry.transactionID <= record.id {
                if entry.transactionID == record.id { legs.append(entry) } else { try orphan(.entry(entry)) }
                nextEntry = try next(entries, Self.readEntry)
            }
            var hold: HoldRecord?
            while let candidate = nextHold, candidate.id <= record.id {
                if candidate.id == record.id { hold = candidate } else { try orphan(.hold(candidate)) }
                nextHold = try next(holds, Self.readHold)
            }
            var links: [ResolutionLink] = []
            while let link = nextResolution, link.transactionID <= record.id {
                if link.transactionID == record.id { links.append(link) } else { try orphan(.resolution(link)) }
                nextResolution = try next(resolutions, Self.readResolutionLink)
            }
            try body(record, legs, hold, links)
        }
        while let entry = nextEntry {
            try orphan(.entry(entry))
            nextEntry = try next(entries, Self.readEntry)
        }
        while let candidate = nextHold {
            try orphan(.hold(candidate))
            nextHold = try next(holds, Self.readHold)
        }
        while let link = nextResolution {
            try orphan(.resolution(link))
            nextResolution = try next(resolutions, Self.readResolutionLink)
        }
    }

    private static func readResolutionLink(_ row: SQLRow) throws -> ResolutionLink {
        ResolutionLink(transactionID: try row.int64(0), holdID: try row.int64(1), namesAHold: try row.int64(2) == 1)
    }
}
