import Foundation
import GRDBSQLite
import Ledger

/// The raw SQLite floor of the nightly run: the rows the run left in its database (every row
/// it added or changed, in every table) written again into a copy of the city as it was
/// before the run, same schema and indexes, with one plain prepared statement a table, no
/// logic, in as many transactions as the run's chunks, WAL and synchronous=FULL as the
/// run. Only the writes are timed: the rows are read from the run's database in groups
/// between them. It is a floor, not a replay: each row is written once in its final state
/// (the run updates an account once a bill, the floor once), table after table.
struct StoreFloor {
    /// The city's database before the run, and after it.
    var before: String
    var after: String
    /// Where the floor writes (a copy of `before`, replaced).
    var path: String
    /// Transactions to spread the rows over: the run's chunks.
    var transactions: Int
    /// More settings for the floor's connection (`qdwallet-bench floor --pragmas`), to see
    /// what one would change before trying it in qdwallet.
    var pragmas = ""

    struct Result {
        var seconds: Double
        var rows: Int
        /// Rows by table, most first, with the seconds their statements took (the commits'
        /// apart).
        var tables: [(name: String, rows: Int, seconds: Double)] = []
        /// The commits' seconds.
        var commitSeconds: Double = 0

        var tablesText: String {
            tables.map { "\($0.name) \($0.rows) \(String(format: "%.2f s", $0.seconds))" }.joined(separator: ", ")
                + String(format: "; commits %.2f s", commitSeconds)
        }
    }

    func run() throws -> Result {
        let files = FileManager.default
        for suffix in ["", "-wal", "-shm"] { try? files.removeItem(atPath: path + suffix) }
        try files.copyItem(atPath: before, toPath: path)
        if files.fileExists(atPath: before + "-wal") { try files.copyItem(atPath: before + "-wal", toPath: path + "-wal") }

        let source = try open(after, flags: SQLITE_OPEN_READONLY)
        defer { sqlite3_close_v2(source) }
        try exec(source, "ATTACH DATABASE '\(before.replacingOccurrences(of: "'", with: "''"))' AS before")
        let target = try open(path, flags: SQLITE_OPEN_READWRITE)
        defer { sqlite3_close_v2(target) }
        try exec(target, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF")
        if !pragmas.isEmpty { try exec(target, pragmas.split(separator: ";").map { "PRAGMA " + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "; ")) }
        // No logic: the append-only triggers go (an insert would not fire them anyway).
        for trigger in try strings(target, "SELECT name FROM sqlite_master WHERE type = 'trigger'") {
            try exec(target, "DROP TRIGGER \"\(trigger)\"")
        }

        let tables = try strings(source, "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        let existing = Set(try strings(source, "SELECT name FROM before.sqlite_master WHERE type = 'table'"))
        func changed(_ table: String) -> String {
            existing.contains(table) ? "SELECT * FROM main.\"\(table)\" EXCEPT SELECT * FROM before.\"\(table)\"" : "SELECT * FROM main.\"\(table)\""
        }
        var counts: [(name: String, rows: Int)] = []
        for table in tables {
            let rows = try strings(source, "SELECT count(*) FROM (\(changed(table)))").first.flatMap { Int($0) } ?? 0
            if rows > 0 { counts.append((table, rows)) }
        }
        let total = counts.reduce(0) { $0 + $1.rows }
        let perTransaction = max(1, (total + max(1, transactions) - 1) / max(1, transactions))

        var written = 0
        var inTransaction = 0
        var nanoseconds: UInt64 = 0
        // Rows' time by table; the commits' (each writes the transaction's pages to the log,
        // and a checkpoint may follow) apart.
        var spent: [String: UInt64] = [:]
        var committed: UInt64 = 0
        var committedBefore: UInt64 = 0
        for (table, _) in counts {
            let read = try prepare(source, changed(table))
            defer { sqlite3_finalize(read) }
            let columns = Int(sqlite3_column_count(read))
            let insert = try prepare(target, "INSERT OR REPLACE INTO \"\(table)\" VALUES (\(Array(repeating: "?", count: columns).joined(separator: ", ")))")
            defer { sqlite3_finalize(insert) }
            var done = false
            while !done {
                // A group of rows read (untimed), as the SQLite values themselves: no
                // conversion on either side.
                var group: [[OpaquePointer]] = []
                while group.count < 10_000 {
                    let code = sqlite3_step(read)
                    if code == SQLITE_DONE { done = true; break }
                    guard code == SQLITE_ROW else { throw failure(source, "reading \(table)") }
                    group.append((0..<columns).map { sqlite3_value_dup(sqlite3_column_value(read, Int32($0)))! })
                }
                defer { for row in group { row.forEach { sqlite3_value_free($0) } } }
                let start = DispatchTime.now().uptimeNanoseconds
                for row in group {
                    if inTransaction == 0 { try exec(target, "BEGIN IMMEDIATE") }
                    for (index, value) in row.enumerated() { sqlite3_bind_value(insert, Int32(index + 1), value) }
                    let code = sqlite3_step(insert)
                    sqlite3_reset(insert)
                    guard code == SQLITE_DONE else { throw failure(target, "writing \(table)") }
                    written += 1
                    inTransaction += 1
                    if inTransaction == perTransaction {
                        let committing = DispatchTime.now().uptimeNanoseconds
                        try exec(target, "COMMIT")
                        committed += DispatchTime.now().uptimeNanoseconds - committing
                        inTransaction = 0
                    }
                }
                let took = DispatchTime.now().uptimeNanoseconds - start
                nanoseconds += took
                spent[table, default: 0] += took - (committed - committedBefore)
                committedBefore = committed
            }
        }
        if inTransaction > 0 {
            let start = DispatchTime.now().uptimeNanoseconds
            try exec(target, "COMMIT")
            let took = DispatchTime.now().uptimeNanoseconds - start
            nanoseconds += took
            committed += took
        }
        let timed = counts.map { (name: $0.name, rows: $0.rows, seconds: Double(spent[$0.name] ?? 0) / 1e9) }
        return Result(seconds: Double(nanoseconds) / 1e9, rows: written, tables: timed.sorted { $0.rows > $1.rows }, commitSeconds: Double(committed) / 1e9)
    }

    private func open(_ path: String, flags: Int32) throws -> OpaquePointer {
        var connection: OpaquePointer?
        guard sqlite3_open_v2(path, &connection, flags, nil) == SQLITE_OK, let connection else {
            throw LedgerError(.storage, "cannot open a database of the store floor", context: path)
        }
        return connection
    }

    private func failure(_ db: OpaquePointer, _ what: String) -> LedgerError {
        LedgerError(.storage, "store floor: \(what) failed", cause: String(cString: sqlite3_errmsg(db)))
    }

    private func exec(_ db: OpaquePointer, _ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw failure(db, sql) }
    }

    private func prepare(_ db: OpaquePointer, _ sql: String) throws -> OpaquePointer {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else { throw failure(db, "preparing \(sql)") }
        return statement
    }

    /// The first column of every row, as text.
    private func strings(_ db: OpaquePointer, _ sql: String) throws -> [String] {
        let statement = try prepare(db, sql)
        defer { sqlite3_finalize(statement) }
        var out: [String] = []
        while true {
            let code = sqlite3_step(statement)
            if code == SQLITE_DONE { return out }
            guard code == SQLITE_ROW else { throw failure(db, sql) }
            out.append(sqlite3_column_text(statement, 0).map { String(cString: $0) } ?? "")
        }
    }
}
