import Foundation
import Ledger
import QDSQL

/// `qdwallet-bench ledger --db postgres://...`: the ledger's batch path on PostgreSQL against
/// a raw PostgreSQL floor that writes the same rows (idempotency keys, journal, entries,
/// account totals) with multi-row INSERTs and one UPDATE per account a batch, no checks. Each
/// round runs in a schema of its own, dropped afterwards.
struct PostgresLedgerBenchmark {
    let configuration: LedgerBenchmark.Configuration
    let url: String

    func run() throws -> LedgerBenchmark.Report {
        let sqlite = LedgerBenchmark(configuration: configuration)
        let transfers = sqlite.plan()
        var floor: [Double] = []
        var ledger: [Double] = []
        for _ in 0..<configuration.rounds {
            floor.append(try runFloor(transfers))
            ledger.append(try runLedger())
        }
        return LedgerBenchmark.Report(configuration: configuration, floorPerSecond: floor, ledgerPerSecond: ledger, peakResidentMB: 0, engine: "PostgreSQL")
    }

    /// `qdwallet-bench ledger --db URL --check`: the ledger's batch path writes
    /// `configuration.transfers` transfers into a schema of its own, then `Ledger.check()`
    /// reads it all back (through the server's cursors), timed, with the process's peak
    /// resident memory before and after the check.
    func runCheck() throws -> String {
        let database = try PostgresDatabase.inNewSchema(url: url, prefix: "check", migrations: try LedgerSchema.postgres)
        defer { try? database.dropSchema() }
        let store = SQLLedgerStore(database: database)
        _ = try LedgerBenchmark(configuration: configuration).runLedger(store: store)
        let before = Self.peakResidentMB()
        let began = DispatchTime.now().uptimeNanoseconds
        let report = try Ledger(store: store).check()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
        let after = Self.peakResidentMB()
        return """
            ledger check on PostgreSQL: \(report.entries) entries, \(report.transactions) transactions, \(report.accounts) accounts, ok \(report.ok), \(String(format: "%.2f", seconds)) s
              peak resident before the check \(before) MB, after it \(after) MB
            """
    }

    static func peakResidentMB() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Int(usage.ru_maxrss) / 1024
    }

    func runLedger() throws -> Double {
        let database = try PostgresDatabase.inNewSchema(url: url, prefix: "bench", migrations: try LedgerSchema.postgres)
        defer { try? database.dropSchema() }
        return try LedgerBenchmark(configuration: configuration).runLedger(store: SQLLedgerStore(database: database))
    }

    func runFloor(_ transfers: [(from: Int, to: Int, amount: Int64)]) throws -> Double {
        let database = try PostgresDatabase.inNewSchema(url: url, prefix: "floor", migrations: try LedgerSchema.postgres)
        defer { try? database.dropSchema() }
        let accountCount = configuration.wallets + 4
        _ = try database.write { sql in
            try sql.execute("""
                INSERT INTO ledger_accounts (id, code, asset, kind, debits_must_not_exceed_credits, credits_must_not_exceed_debits, overdraft_limit, frozen, closed, created_at)
                SELECT n, 'a' || n, 'CNY', 'user_wallet', 1, 0, 0, 0, 0, 0 FROM generate_series(1, ?) AS n
                """, [.integer(Int64(accountCount))])
        }
        let hash = "'\\x" + String(repeating: "ab", count: 32) + "'"
        let now: Int64 = 1_795_708_800_000_000
        var balance = [Int64](repeating: 0, count: accountCount + 1)
        var seq = [Int64](repeating: 0, count: accountCount + 1)
        let began = DispatchTime.now().uptimeNanoseconds
        var index = 0
        while index < transfers.count {
            let end = min(index + configuration.batch, transfers.count)
            var keys: [String] = [], journal: [String] = [], entries: [String] = []
            var debits: [Int: Int64] = [:], credits: [Int: Int64] = [:]
            for i in index..<end {
                let transfer = transfers[i]
                let id = i + 1
                let from = 5 + transfer.from, to = 2 + transfer.to
                keys.append("('bill-\(i)', \(hash), \(id), NULL, \(now))")
                journal.append("(\(id), 'transfer', 'bill-\(i)', NULL, \(now), \(now), '', \(hash), \(hash))")
                for (leg, account, side) in [(0, from, 0), (1, to, 1)] {
                    balance[account] += side == 1 ? transfer.amount : -transfer.amount
                    seq[account] += 1
                    entries.append("(\(id), \(leg), \(account), 'CNY', \(side), \(transfer.amount), \(balance[account]), \(seq[account]), \(now))")
                }
                debits[from, default: 0] += transfer.amount
                credits[to, default: 0] += transfer.amount
            }
            _ = try database.write { sql in
                guard let connection = sql as? PostgresConnection else { return }
                for part in stride(from: 0, to: keys.count, by: 1_000) {
                    let range = part..<min(part + 1_000, keys.count)
                    try connection.script("INSERT INTO ledger_idempotency (key, request_hash, transaction_id, refusal, recorded_at) VALUES " + keys[range].joined(separator: ","))
                    try connection.script("INSERT INTO ledger_transactions (id, kind, idempotency_key, ref_id, recorded_at, effective_at, memo, prev_hash, hash) VALUES " + journal[range].joined(separator: ","))
                }
                for part in stride(from: 0, to: entries.count, by: 2_000) {
                    try connection.script("INSERT INTO ledger_entries (transaction_id, leg, account_id, asset, side, amount, balance_after, account_seq, recorded_at) VALUES " + entries[part..<min(part + 2_000, entries.count)].joined(separator: ","))
                }
                let totals = Set(debits.keys).union(credits.keys).sorted().map { account in "(\(account), \(debits[account] ?? 0), \(credits[account] ?? 0))" }
                try connection.script("""
                    UPDATE ledger_accounts a SET debits_posted = a.debits_posted + t.d, credits_posted = a.credits_posted + t.c, entry_seq = a.entry_seq + 1
                    FROM (VALUES \(totals.joined(separator: ","))) AS t(id, d, c) WHERE a.id = t.id
                    """)
            }
            index = end
        }
        return Double(transfers.count) / (Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9)
    }
}
