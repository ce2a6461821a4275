import Foundation
import GRDBSQLite
import Ledger

/// Batch posting through the ledger against the raw SQLite floor.
struct LedgerBenchmark {
    struct Configuration {
        var transfers: Int
        var batch: Int
        var wallets: Int
        var rounds: Int
    }

    struct Report {
        var configuration: Configuration
        var floorPerSecond: [Double]
        var ledgerPerSecond: [Double]
        var peakResidentMB: Int
        var engine = "SQLite"

        static func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted[sorted.count / 2]
        }

        var ratio: Double { Self.median(ledgerPerSecond) / Self.median(floorPerSecond) }

        var text: String {
            let f = { (value: Double) in String(Int(value.rounded())) }
            return """
                ledger batch posting on \(engine): \(configuration.transfers) two-leg transfers per round, batches of \(configuration.batch), \(configuration.wallets) wallets, \(configuration.rounds) rounds
                  raw \(engine) floor   \(floorPerSecond.map(f).joined(separator: " / ")) transfers/s (median \(f(Self.median(floorPerSecond))))
                  ledger batch path  \(ledgerPerSecond.map(f).joined(separator: " / ")) transfers/s (median \(f(Self.median(ledgerPerSecond))))
                  ratio ledger/floor \(String(format: "%.2f", ratio))
                  peak resident      \(peakResidentMB) MB
                """
        }

        var json: String {
            "{\"engine\":\"\(engine)\",\"transfers\":\(configuration.transfers),\"batch\":\(configuration.batch),\"floor_per_s\":\(Int(Self.median(floorPerSecond))),\"ledger_per_s\":\(Int(Self.median(ledgerPerSecond))),\"ratio\":\(String(format: "%.3f", ratio)),\"peak_resident_mb\":\(peakResidentMB)}"
        }
    }

    let configuration: Configuration

    func run() throws -> Report {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        var floor: [Double] = []
        var ledger: [Double] = []
        for round in 0..<configuration.rounds {
            floor.append(try runFloor(path: directory.appendingPathComponent("floor-\(round).sqlite").path))
            ledger.append(try runLedger(path: directory.appendingPathComponent("ledger-\(round).sqlite").path))
        }
        return Report(configuration: configuration, floorPerSecond: floor, ledgerPerSecond: ledger, peakResidentMB: peakResidentMB())
    }

    /// The same pseudo-random transfers for both sides: wallet -> one of three billers.
    func plan() -> [(from: Int, to: Int, amount: Int64)] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        return (0..<configuration.transfers).map { _ in
            (from: Int(next() % UInt64(configuration.wallets)), to: Int(next() % 3), amount: Int64(1 + next() % 50_000))
        }
    }

    // MARK: The ledger

    func runLedger(path: String) throws -> Double {
        try runLedger(store: try SQLiteLedgerStore(path: path))
    }

    /// The timed batches through the ledger on `store` (either engine): accounts opened and
    /// funded first, untimed.
    func runLedger(store: any LedgerStore) throws -> Double {
        let ledger = Ledger(store: store)
        let bank = try ledger.openAccount(AccountSpec(code: "bank", asset: .cny, kind: .bankClearing, rules: .unrestricted)).id
        var billers: [AccountID] = []
        for i in 0..<3 {
            billers.append(try ledger.openAccount(AccountSpec(code: "biller:\(i)", asset: .cny, kind: .billerSettlement, rules: .unrestricted)).id)
        }
        var wallets: [AccountID] = []
        try ledger.store.write { tx in
            for i in 0..<configuration.wallets {
                wallets.append(try ledger.openAccount(AccountSpec(code: "wallet:\(i)", asset: .cny, kind: .userWallet, rules: .noOverdraft), in: tx).id)
            }
        }
        // Fund every wallet generously (not timed).
        for start in stride(from: 0, to: wallets.count, by: configuration.batch) {
            let slice = wallets[start..<min(start + configuration.batch, wallets.count)]
            _ = try ledger.post(slice.map { PostingRequest.transfer(key: "fund-\($0)", from: bank, to: $0, amount: 1_000_000_000) })
        }
        let transfers = plan()
        let began = DispatchTime.now().uptimeNanoseconds
        var index = 0
        while index < transfers.count {
            let end = min(index + configuration.batch, transfers.count)
            var requests: [PostingRequest] = []
            requests.reserveCapacity(end - index)
            for i in index..<end {
                let transfer = transfers[i]
                requests.append(.transfer(key: "bill-\(i)", from: wallets[transfer.from], to: billers[transfer.to], amount: transfer.amount))
            }
            let results = try ledger.post(requests)
            precondition(results.allSatisfy { $0.transactionID != nil }, "a benchmark transfer was refused")
            index = end
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
        return Double(transfers.count) / seconds
    }

    // MARK: The floor

    func runFloor(path: String) throws -> Double {
        // The same schema, from the same migration; then nothing but prepared statements.
        _ = try SQLiteLedgerStore(path: path)
        var connection: OpaquePointer?
        guard sqlite3_open_v2(path, &connection, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK, let db = connection else {
            throw LedgerError(.storage, "cannot open the floor database", context: path)
        }
        defer { sqlite3_close_v2(db) }
        try exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL")
        let accountCount = configuration.wallets + 4
        try exec(db, "BEGIN")
        let insertAccount = try prepare(db, "INSERT INTO ledger_accounts (id, code, asset, kind, debits_must_not_exceed_credits, credits_must_not_exceed_debits, overdraft_limit, frozen, closed, created_at) VALUES (?, ?, 'CNY', 'user_wallet', 1, 0, 0, 0, 0, 0)")
        for id in 1...accountCount {
            sqlite3_bind_int64(insertAccount, 1, Int64(id))
            sqlite3_bind_text(insertAccount, 2, "a\(id)", -1, transient)
            try stepDone(db, insertAccount)
        }
        sqlite3_finalize(insertAccount)
        try exec(db, "COMMIT")

        let insertKey = try prepare(db, "INSERT INTO ledger_idempotency (key, request_hash, transaction_id, refusal, recorded_at) VALUES (?, ?, ?, NULL, ?)")
        let insertTransaction = try prepare(db, "INSERT INTO ledger_transactions (id, kind, idempotency_key, ref_id, recorded_at, effective_at, memo, prev_hash, hash) VALUES (?, 'transfer', ?, NULL, ?, ?, '', ?, ?)")
        let insertEntry = try prepare(db, "INSERT INTO ledger_entries (transaction_id, leg, account_id, asset, side, amount, balance_after, account_seq, recorded_at) VALUES (?, ?, ?, 'CNY', ?, ?, ?, ?, ?)")
        let updateDebit = try prepare(db, "UPDATE ledger_accounts SET debits_posted = debits_posted + ?, entry_seq = entry_seq + 1 WHERE id = ?")
        let updateCredit = try prepare(db, "UPDATE ledger_accounts SET credits_posted = credits_posted + ?, entry_seq = entry_seq + 1 WHERE id = ?")
        defer {
            for statement in [insertKey, insertTransaction, insertEntry, updateDebit, updateCredit] { sqlite3_finalize(statement) }
        }
        let hash = [UInt8](repeating: 0xAB, count: 32)
        var balance = [Int64](repeating: 0, count: accountCount + 1)
        var seq = [Int64](repeating: 0, count: accountCount + 1)
        let transfers = plan()
        let now: Int64 = 1_795_708_800_000_000
        let began = DispatchTime.now().uptimeNanoseconds
        var index = 0
        while index < transfers.count {
            let end = min(index + configuration.batch, transfers.count)
            try exec(db, "BEGIN IMMEDIATE")
            for i in index..<end {
                let transfer = transfers[i]
                let id = Int64(i + 1)
                let from = 5 + transfer.from
                let to = 2 + transfer.to
                let key = "bill-\(i)"
                sqlite3_bind_text(insertKey, 1, key, -1, transient)
                hash.withUnsafeBytes { _ = sqlite3_bind_blob(insertKey, 2, $0.baseAddress, 32, transient) }
                sqlite3_bind_int64(insertKey, 3, id)
                sqlite3_bind_int64(insertKey, 4, now)
                try stepDone(db, insertKey)
                sqlite3_bind_int64(insertTransaction, 1, id)
                sqlite3_bind_text(insertTransaction, 2, key, -1, transient)
                sqlite3_bind_int64(insertTransaction, 3, now)
                sqlite3_bind_int64(insertTransaction, 4, now)
                hash.withUnsafeBytes { _ = sqlite3_bind_blob(insertTransaction, 5, $0.baseAddress, 32, transient) }
                hash.withUnsafeBytes { _ = sqlite3_bind_blob(insertTransaction, 6, $0.baseAddress, 32, transient) }
                try stepDone(db, insertTransaction)
                for (leg, account, side) in [(0, from, 0), (1, to, 1)] {
                    balance[account] += side == 1 ? transfer.amount : -transfer.amount
                    seq[account] += 1
                    sqlite3_bind_int64(insertEntry, 1, id)
                    sqlite3_bind_int64(insertEntry, 2, Int64(leg))
                    sqlite3_bind_int64(insertEntry, 3, Int64(account))
                    sqlite3_bind_int64(insertEntry, 4, Int64(side))
                    sqlite3_bind_int64(insertEntry, 5, transfer.amount)
                    sqlite3_bind_int64(insertEntry, 6, balance[account])
                    sqlite3_bind_int64(insertEntry, 7, seq[account])
                    sqlite3_bind_int64(insertEntry, 8, now)
                    try stepDone(db, insertEntry)
                }
                sqlite3_bind_int64(updateDebit, 1, transfer.amount)
                sqlite3_bind_int64(updateDebit, 2, Int64(from))
                try stepDone(db, updateDebit)
                sqlite3_bind_int64(updateCredit, 1, transfer.amount)
                sqlite3_bind_int64(updateCredit, 2, Int64(to))
                try stepDone(db, updateCredit)
            }
            try exec(db, "COMMIT")
            index = end
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
        return Double(transfers.count) / seconds
    }

    private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    private func exec(_ db: OpaquePointer, _ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
            throw LedgerError(.storage, "floor statement failed", cause: String(cString: sqlite3_errmsg(db)), context: sql)
        }
    }

    private func prepare(_ db: OpaquePointer, _ sql: String) throws -> OpaquePointer {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw LedgerError(.storage, "floor statement failed to prepare", cause: String(cString: sqlite3_errmsg(db)), context: sql)
        }
        return statement
    }

    private func stepDone(_ db: OpaquePointer, _ statement: OpaquePointer) throws {
        let code = sqlite3_step(statement)
        sqlite3_reset(statement)
        guard code == SQLITE_DONE else {
            throw LedgerError(.storage, "floor statement failed", cause: String(cString: sqlite3_errmsg(db)))
        }
    }

    private func peakResidentMB() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Int(usage.ru_maxrss) / 1024
    }
}
