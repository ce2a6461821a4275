import Foundation
import QDSQL

/// One transaction's view of the ledger tables, written once against the SQL layer for both
/// engines: every SQL statement of the ledger is here. Errors of the engine become
/// `LedgerError`s (busy, storage, a corrupt row).
final class LedgerSession: LedgerWriting {
    let sql: any SQLConnection
    /// The statements prepared so far in this transaction, by `Query`.
    private var statements = [(any SQLStatement)?](repeating: nil, count: Query.allCases.count)

    init(_ sql: any SQLConnection) {
        self.sql = sql
    }

    private func statement(_ query: Query) throws -> any SQLStatement {
        if let statement = statements[query.rawValue] { return statement }
        let statement = try sql.prepare(query.sql)
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
        case movementOfAccount
        case recordedMovementOfAccount
        case transactionsByKeyPrefix
        case netCreditsOfKind

        /// The texts, built once.
        static let texts = Query.allCases.map(\.text)

        var sql: String { Query.texts[rawValue] }

        private var text: String {
            switch self {
            case .accountByID: "SELECT \(LedgerSession.accountColumns) FROM ledger_accounts WHERE id = ?"
            case .accountByCode: "SELECT \(LedgerSession.accountColumns) FROM ledger_accounts WHERE code = ?"
            case .allAccounts: "SELECT \(LedgerSession.accountColumns) FROM ledger_accounts ORDER BY id"
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
            case .chainHead: "SELECT id, hash, recorded_at FROM ledger_transactions ORDER BY id DESC LIMIT 1"
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
                WHERE effective_at >= ?1 AND effective_at < ?2 AND substr(idempotency_key, 1, length(CAST(?3 AS TEXT))) = CAST(?3 AS TEXT) ORDER BY id
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

    // MARK: Accounts

    private static let accountColumns = """
        id, code, asset, kind, debits_must_not_exceed_credits, credits_must_not_exceed_debits,
        overdraft_limit, frozen, closed, debits_posted, credits_posted, debits_pending,
        credits_pending, entry_seq, created_at
        """

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

    func allAccounts() throws -> [Account] {
        try all(.allAccounts, [], Self.readAccount)
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
        try run(.saveTotals, [
            .integer(account.debitsPosted), .integer(account.creditsPosted), .integer(account.debitsPending),
            .integer(account.creditsPending), .integer(account.entrySeq), .integer(account.id),
        ])
    }

    // MARK: Idempotency

    func idempotencyRecord(key: String) throws -> IdempotencyRecord? {
        try one(.idempotencyByKey, [.text(key)]) { row in
            var refusal: LedgerRefusal?
            if let code = try row.optionalText(2) {
                guard let known = LedgerRefusal(rawValue: code) else {
                    throw LedgerError(.corrupt, "an idempotency record has an unknown refusal code", context: code)
                }
                refusal = known
            }
            return IdempotencyRecord(key: key, requestHash: try row.bytes(0), transactionID: try row.optionalInt64(1), refusal: refusal, recordedAt: try row.int64(3))
        }
    }

    func insertIdempotency(_ record: IdempotencyRecord) throws {
        try run(.insertIdempotency, Self.binds(record))
    }

    func insertIdempotencyIfAbsent(_ record: IdempotencyRecord) throws -> Bool {
        try run(.insertIdempotencyIfAbsent, Self.binds(record)) == 1
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
        try one(.transactionByID, [.integer(id)], Self.readTransaction)
    }

    func insertTransaction(_ record: TransactionRecord) throws {
        try run(.insertTransaction, [
            .integer(record.id), .text(record.kind.rawValue), .text(record.key), record.refID.sqlValue, .integer(record.recordedAt),
            .integer(record.effectiveAt), .text(record.memo), .bytes(record.prevHash), .bytes(record.hash),
        ])
    }

    func reversal(of id: TransactionID) throws -> TransactionID? {
        try one(.reversalOf, [.integer(id)]) { try $0.int64(0) }
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
        try run(.insertEntry, [
            .integer(entry.transactionID), .integer(Int64(entry.leg)), .integer(entry.accountID), .text(entry.asset.rawValue),
            .integer(Int64(entry.side.rawValue)), .integer(entry.amount), .integer(entry.balanceAfter), .integer(entry.accountSeq), .integer(entry.recordedAt),
        ])
    }

    func entries(transactionID: TransactionID) throws -> [EntryRecord] {
        try all(.entriesOfTransaction, [.integer(transactionID)], Self.readEntry)
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
        try one(.holdByID, [.integer(id)], Self.readHold)
    }

    func insertHold(_ hold: HoldRecord) throws {
        try run(.insertHold, [
            .integer(hold.id), .integer(hold.debitAccountID), .integer(hold.creditAccountID), .text(hold.asset.rawValue), .integer(hold.amount), hold.expiresAt.sqlValue,
        ])
    }

    func holdResolution(holdID: TransactionID) throws -> HoldResolution? {
        try one(.resolutionOfHold, [.integer(holdID)]) { row in
            guard let outcome = HoldResolution.Outcome(rawValue: try row.text(1)) else {
                throw LedgerError(.corrupt, "a hold resolution has an unknown outcome", context: "hold \(holdID)")
            }
            return HoldResolution(holdID: holdID, transactionID: try row.int64(0), outcome: outcome, amountPosted: try row.int64(2))
        }
    }

    func insertHoldResolution(_ resolution: HoldResolution) throws {
        try run(.insertResolution, [.integer(resolution.holdID), .integer(resolution.transactionID), .text(resolution.outcome.rawValue), .integer(resolution.amountPosted)])
    }

    func expiredOpenHolds(asOf: TimestampMicros, limit: Int) throws -> [HoldRecord] {
        try all(.expiredOpenHolds, [.integer(asOf), .integer(Int64(limit))], Self.readHold)
    }

    // MARK: Reads for reconciliation

    func movement(accountID: AccountID, effectiveFrom from: TimestampMicros, to: TimestampMicros) throws -> Int64 {
        try one(.movementOfAccount, [.integer(accountID), .integer(from), .integer(to)]) { try $0.int64(0) } ?? 0
    }

    func movement(accountID: AccountID, recordedFrom from: TimestampMicros, to: TimestampMicros) throws -> Int64 {
        try one(.recordedMovementOfAccount, [.integer(accountID), .integer(from), .integer(to)]) { try $0.int64(0) } ?? 0
    }

    func transactions(keyPrefix: String, effectiveFrom from: TimestampMicros, to: TimestampMicros) throws -> [(id: TransactionID, key: String)] {
        try all(.transactionsByKeyPrefix, [.integer(from), .integer(to), .text(keyPrefix)]) { row in (try row.int64(0), try row.text(1)) }
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

    // MARK: Streaming

    func forEachTransaction(_ body: (TransactionRecord, [EntryRecord], HoldRecord?) throws -> Void) throws {
        // Three cursors in id order, merged: one pass over each table, no per-row lookups.
        let transactions: any SQLCursor, entries: any SQLCursor, holds: any SQLCursor
        do {
            transactions = try sql.cursor("SELECT \(Self.transactionColumns) FROM ledger_transactions ORDER BY id", [])
            entries = try sql.cursor("SELECT \(Self.entryColumns) FROM ledger_entries ORDER BY transaction_id, leg", [])
            holds = try sql.cursor("SELECT id, debit_account_id, credit_account_id, asset, amount, expires_at FROM ledger_holds ORDER BY id", [])
        } catch {
            throw Self.ledgerError(error)
        }
        func next<T>(_ cursor: any SQLCursor, _ read: (SQLRow) throws -> T) throws -> T? {
            do {
                return try cursor.next().map(read)
            } catch {
                throw Self.ledgerError(error)
            }
        }
        var nextEntry = try next(entries, Self.readEntry)
        var nextHold = try next(holds, Self.readHold)
        while let record = try next(transactions, Self.readTransaction) {
            var legs: [EntryRecord] = []
            while let entry = nextEntry, entry.transactionID <= record.id {
                // An entry whose transaction is missing shows up as an entry of an earlier id:
                // hand it over with the next transaction so the check sees it.
                legs.append(entry)
                nextEntry = try next(entries, Self.readEntry)
            }
            var hold: HoldRecord?
            while let candidate = nextHold, candidate.id <= record.id {
                if candidate.id == record.id { hold = candidate }
                nextHold = try next(holds, Self.readHold)
            }
            try body(record, legs, hold)
        }
    }
}
