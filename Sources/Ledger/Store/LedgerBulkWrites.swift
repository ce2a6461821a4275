import QDSQL

/// On PostgreSQL, where every statement is a round trip to the server, the rows a posting
/// batch writes are kept here until the batch ends, then written in a handful of statements
/// (each column sent as one array and unnested), and the idempotency keys the batch names are
/// read in a few statements before it starts. The session's reads look here first, so the
/// batch sees its own rows as if they were written. A key another transaction inserted
/// meanwhile makes the final insert fail with a unique violation, and the transaction runs
/// again whole (and then replays).
struct LedgerBulkWrites {
    var idempotency: [IdempotencyRecord] = []
    /// Records by key: this batch's and those read before it started.
    var keys: [String: IdempotencyRecord] = [:]
    /// Keys read before the batch started and found absent.
    var absent: Set<String> = []
    var transactions: [TransactionRecord] = []
    var transactionIndex: [TransactionID: Int] = [:]
    var entries: [EntryRecord] = []
    var entriesByTransaction: [TransactionID: [EntryRecord]] = [:]
    var holds: [TransactionID: HoldRecord] = [:]
    var holdOrder: [TransactionID] = []
    var resolutions: [TransactionID: HoldResolution] = [:]
    var resolutionOrder: [TransactionID] = []
    /// Reversals by the transaction they reverse.
    var reversals: [TransactionID: TransactionID] = [:]
    var totals: [AccountID: Account] = [:]
    var totalsOrder: [AccountID] = []

    var isEmpty: Bool { idempotency.isEmpty && transactions.isEmpty && totals.isEmpty }

    mutating func add(_ record: IdempotencyRecord) {
        idempotency.append(record)
        keys[record.key] = record
        absent.remove(record.key)
    }

    mutating func add(_ record: TransactionRecord) {
        transactionIndex[record.id] = transactions.count
        transactions.append(record)
        if record.kind == .reversal, let original = record.refID { reversals[original] = record.id }
    }

    mutating func add(_ entry: EntryRecord) {
        entries.append(entry)
        entriesByTransaction[entry.transactionID, default: []].append(entry)
    }

    mutating func add(_ hold: HoldRecord) {
        if holds.updateValue(hold, forKey: hold.id) == nil { holdOrder.append(hold.id) }
    }

    mutating func add(_ resolution: HoldResolution) {
        if resolutions.updateValue(resolution, forKey: resolution.holdID) == nil { resolutionOrder.append(resolution.holdID) }
    }

    mutating func save(_ account: Account) {
        if totals.updateValue(account, forKey: account.id) == nil { totalsOrder.append(account.id) }
    }

    /// The statements that write what was kept, and their values, in an order the foreign
    /// keys accept.
    func statements() -> [(sql: String, binds: [SQLValue])] {
        var out: [(String, [SQLValue])] = []
        if !idempotency.isEmpty {
            out.append(("""
                INSERT INTO ledger_idempotency (key, request_hash, transaction_id, refusal, recorded_at)
                SELECT * FROM unnest(?::text[], ?::bytea[], ?::bigint[], ?::text[], ?::bigint[])
                """, [
                    PostgresArray.texts(idempotency.map(\.key)), PostgresArray.bytes(idempotency.map(\.requestHash)),
                    PostgresArray.integers(idempotency.map(\.transactionID)), PostgresArray.texts(idempotency.map { $0.refusal?.rawValue }),
                    PostgresArray.integers(idempotency.map(\.recordedAt)),
                ]))
        }
        if !transactions.isEmpty {
            out.append(("""
                INSERT INTO ledger_transactions (id, kind, idempotency_key, ref_id, recorded_at, effective_at, memo, prev_hash, hash)
                SELECT * FROM unnest(?::bigint[], ?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::text[], ?::bytea[], ?::bytea[])
                """, [
                    PostgresArray.integers(transactions.map(\.id)), PostgresArray.texts(transactions.map(\.kind.rawValue)), PostgresArray.texts(transactions.map(\.key)),
                    PostgresArray.integers(transactions.map(\.refID)), PostgresArray.integers(transactions.map(\.recordedAt)), PostgresArray.integers(transactions.map(\.effectiveAt)),
                    PostgresArray.texts(transactions.map(\.memo)), PostgresArray.bytes(transactions.map(\.prevHash)), PostgresArray.bytes(transactions.map(\.hash)),
                ]))
        }
        for start in stride(from: 0, to: entries.count, by: 20_000) {
            let part = entries[start..<min(start + 20_000, entries.count)]
            out.append(("""
                INSERT INTO ledger_entries (transaction_id, leg, account_id, asset, side, amount, balance_after, account_seq, recorded_at)
                SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::bigint[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[])
                """, [
                    PostgresArray.integers(part.map(\.transactionID)), PostgresArray.integers(part.map { Int64($0.leg) }), PostgresArray.integers(part.map(\.accountID)),
                    PostgresArray.texts(part.map(\.asset.rawValue)), PostgresArray.integers(part.map { Int64($0.side.rawValue) }), PostgresArray.integers(part.map(\.amount)),
                    PostgresArray.integers(part.map(\.balanceAfter)), PostgresArray.integers(part.map(\.accountSeq)), PostgresArray.integers(part.map(\.recordedAt)),
                ]))
        }
        if !holdOrder.isEmpty {
            let rows = holdOrder.compactMap { holds[$0] }
            out.append(("""
                INSERT INTO ledger_holds (id, debit_account_id, credit_account_id, asset, amount, expires_at)
                SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::bigint[], ?::text[], ?::bigint[], ?::bigint[])
                """, [
                    PostgresArray.integers(rows.map(\.id)), PostgresArray.integers(rows.map(\.debitAccountID)), PostgresArray.integers(rows.map(\.creditAccountID)),
                    PostgresArray.texts(rows.map(\.asset.rawValue)), PostgresArray.integers(rows.map(\.amount)), PostgresArray.integers(rows.map(\.expiresAt)),
                ]))
        }
        if !resolutionOrder.isEmpty {
            let rows = resolutionOrder.compactMap { resolutions[$0] }
            out.append(("""
                INSERT INTO ledger_hold_resolutions (hold_id, transaction_id, outcome, amount_posted)
                SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::bigint[])
                """, [
                    PostgresArray.integers(rows.map(\.holdID)), PostgresArray.integers(rows.map(\.transactionID)),
                    PostgresArray.texts(rows.map(\.outcome.rawValue)), PostgresArray.integers(rows.map(\.amountPosted)),
                ]))
        }
        if !totalsOrder.isEmpty {
            let rows = totalsOrder.compactMap { totals[$0] }
            out.append(("""
                UPDATE ledger_accounts a SET debits_posted = t.dp, credits_posted = t.cp, debits_pending = t.dq, credits_pending = t.cq, entry_seq = t.seq
                FROM unnest(?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[]) AS t(id, dp, cp, dq, cq, seq)
                WHERE a.id = t.id
                """, [
                    PostgresArray.integers(rows.map(\.id)), PostgresArray.integers(rows.map(\.debitsPosted)), PostgresArray.integers(rows.map(\.creditsPosted)),
                    PostgresArray.integers(rows.map(\.debitsPending)), PostgresArray.integers(rows.map(\.creditsPending)), PostgresArray.integers(rows.map(\.entrySeq)),
                ]))
        }
        return out
    }
}

/// PostgreSQL array literals, sent as one text value and cast by the statement
/// (`?::bigint[]`): a column of a multi-row write in one parameter.
enum PostgresArray {
    static func integers(_ values: [Int64]) -> SQLValue {
        .text(PostgresText.integerList(values, braces: true))
    }

    static func integers(_ values: [Int64?]) -> SQLValue {
        var text: [UInt8] = [UInt8(ascii: "{")]
        text.reserveCapacity(values.count * 8 + 2)
        for (index, value) in values.enumerated() {
            if index > 0 { text.append(UInt8(ascii: ",")) }
            if let value { PostgresText.appendDecimal(value, to: &text) } else { text.append(contentsOf: "NULL".utf8) }
        }
        text.append(UInt8(ascii: "}"))
        return .text(String(decoding: text, as: UTF8.self))
    }

    /// Each element quoted, with backslashes and double quotes escaped
    /// (`PostgresText.appendArrayElement`).
    static func texts(_ values: [String?]) -> SQLValue {
        var text: [UInt8] = [UInt8(ascii: "{")]
        text.reserveCapacity(values.count * 16 + 2)
        for (index, value) in values.enumerated() {
            if index > 0 { text.append(UInt8(ascii: ",")) }
            if let value { PostgresText.appendArrayElement(value, to: &text) } else { text.append(contentsOf: "NULL".utf8) }
        }
        text.append(UInt8(ascii: "}"))
        return .text(String(decoding: text, as: UTF8.self))
    }

    static func texts(_ values: [String]) -> SQLValue { texts(values.map { Optional($0) }) }

    /// bytea elements in hex (`\x...`), the backslash escaped for the array literal.
    static func bytes(_ values: [[UInt8]]) -> SQLValue {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = [UInt8(ascii: "{")]
        for (index, value) in values.enumerated() {
            if index > 0 { text.append(UInt8(ascii: ",")) }
            text.append(UInt8(ascii: "\"")); text.append(UInt8(ascii: "\\")); text.append(UInt8(ascii: "\\")); text.append(UInt8(ascii: "x"))
            for byte in value {
                text.append(digits[Int(byte >> 4)])
                text.append(digits[Int(byte & 0x0f)])
            }
            text.append(UInt8(ascii: "\""))
        }
        text.append(UInt8(ascii: "}"))
        return .text(String(decoding: text, as: UTF8.self))
    }
}
