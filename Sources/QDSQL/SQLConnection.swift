import Foundation

/// The engines the SQL layer speaks to. What differs between them lives here and in each
/// engine's connection, never in a store.
public enum SQLDialect: Sendable, Hashable {
    case sqlite
    case postgres

    /// The statement as the engine takes it. Stores write SQLite's placeholders, `?` in order
    /// or `?N` by number; PostgreSQL takes `$N`. Quoted text and identifiers are left alone.
    public func translate(_ sql: String) -> String {
        guard self == .postgres else { return sql }
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var next = 0
        var quote: Character?
        var index = sql.startIndex
        while index < sql.endIndex {
            let character = sql[index]
            if let open = quote {
                out.append(character)
                if character == open { quote = nil }
            } else if character == "'" || character == "\"" {
                quote = character
                out.append(character)
            } else if character == "?" {
                var digits = ""
                var after = sql.index(after: index)
                while after < sql.endIndex, let digit = sql[after].wholeNumberValue, sql[after].isASCII {
                    digits.append(String(digit))
                    after = sql.index(after: after)
                }
                if digits.isEmpty {
                    next += 1
                    out.append("$\(next)")
                } else {
                    out.append("$" + digits)
                    next = max(next, Int(digits) ?? next)
                }
                index = after
                continue
            } else {
                out.append(character)
            }
            index = sql.index(after: index)
        }
        return out
    }

    /// The larger of two expressions (SQLite's two-argument `max`, PostgreSQL's `greatest`).
    public func greatest(_ a: String, _ b: String) -> String {
        self == .postgres ? "greatest(\(a), \(b))" : "max(\(a), \(b))"
    }

    /// Texts of a group joined by commas (`group_concat`, `string_agg`).
    public func joined(_ expression: String) -> String {
        self == .postgres ? "string_agg(\(expression), ',')" : "group_concat(\(expression))"
    }
}

/// One connection inside one transaction: statements prepared once per text and kept for the
/// connection's life, values bound by type, rows read by position and type. Every store is
/// written against this, once, for both engines.
public protocol SQLConnection: AnyObject {
    var dialect: SQLDialect { get }
    /// Runs a statement that returns no rows; how many rows it changed.
    @discardableResult
    func execute(_ sql: String, _ binds: [SQLValue]) throws -> Int
    /// Runs a write whose count the caller does not need. PostgreSQL may send it without
    /// waiting (pipeline mode), in the same round trip as the next statement that waits for
    /// an answer, which then throws its error, if any; SQLite runs it at once. For writes
    /// inside a transaction, whose failure fails the transaction either way.
    func send(_ sql: String, _ binds: [SQLValue]) throws
    /// Sends a query whose rows are read later (`SQLPendingRows.get`): PostgreSQL sends it
    /// without waiting, as `send`, so several reads that do not depend on each other go in
    /// one round trip; SQLite runs it at once. A failed query fails the transaction as `send`.
    func sendQuery(_ sql: String, _ binds: [SQLValue]) throws -> SQLPendingRows
    /// Runs a query and hands each row to `body` until it returns false or the rows end.
    func query(_ sql: String, _ binds: [SQLValue], _ body: (SQLRow) throws -> Bool) throws
    /// Runs a query whose rows are read one at a time, as the caller pulls them (a report
    /// streamed to a file): memory does not grow with the rows.
    func cursor(_ sql: String, _ binds: [SQLValue]) throws -> any SQLCursor
    /// A statement prepared once and kept by the caller for the life of this connection's
    /// transaction: a hot path (the ledger's postings) runs it without looking it up by text.
    func prepare(_ sql: String) throws -> any SQLStatement
    /// Writes `rows` into `table` as fast as the engine takes new rows, with no conflict
    /// clause: PostgreSQL streams them with one `COPY ... FROM STDIN` (one statement, not a
    /// round trip a few hundred rows); SQLite runs multi-row `INSERT`s (`runRows`). A row
    /// the table refuses, or one of the wrong width, fails the call, and the caller's
    /// transaction with it: on PostgreSQL nothing of the call is written, on SQLite the
    /// groups before the refused one are, until the transaction rolls back. How many rows
    /// were written.
    @discardableResult
    func copyRows(into table: String, columns: [String], rows: [[SQLValue]]) throws -> Int
}

/// A prepared statement of one connection, run many times with new values.
public protocol SQLStatement: AnyObject {
    var sql: String { get }
    /// Runs it; how many rows it changed.
    @discardableResult
    func execute(_ binds: [SQLValue]) throws -> Int
    /// Runs it without needing its count: as `SQLConnection.send`.
    func send(_ binds: [SQLValue]) throws
    /// Runs it and hands each row to `body` until it returns false.
    func query(_ binds: [SQLValue], _ body: (SQLRow) throws -> Bool) throws
}

extension SQLStatement {
    public func send(_ binds: [SQLValue]) throws {
        try execute(binds)
    }
}

/// The rows of a query sent ahead (`SQLConnection.sendQuery`), answered when the connection
/// next waits, or when they are asked for. A query that failed, or was never run because one
/// sent before it failed, throws its error here: never rows taken for empty.
public final class SQLPendingRows {
    public let sql: String
    private var rows: [SQLValues]?
    private var error: (any Error)?
    private let settle: () throws -> Void

    init(sql: String, settle: @escaping () throws -> Void) {
        self.sql = sql
        self.settle = settle
    }

    var isAnswered: Bool { rows != nil || error != nil }

    func answer(_ rows: [SQLValues]) {
        if !isAnswered { self.rows = rows }
    }

    func fail(_ error: any Error) {
        if !isAnswered { self.error = error }
    }

    /// The rows (waiting for them if they have not come yet).
    public func get() throws -> [SQLValues] {
        if !isAnswered { try settle() }
        if let error { throw error }
        guard let rows else { throw SQLError(.other, code: "pipeline", message: "a query sent ahead was never answered", sql: sql) }
        return rows
    }
}

/// A query sent ahead and what its rows will be read as.
public struct SQLPending<T> {
    let rows: SQLPendingRows
    let read: ([SQLValues]) throws -> T

    public init(rows: SQLPendingRows, read: @escaping ([SQLValues]) throws -> T) {
        self.rows = rows
        self.read = read
    }

    /// What the rows say, waiting for them if they have not come yet.
    public func get() throws -> T {
        try read(rows.get())
    }

    /// The same rows read further.
    public func map<U>(_ transform: @escaping (T) throws -> U) -> SQLPending<U> {
        let read = self.read
        return SQLPending<U>(rows: rows) { try transform(read($0)) }
    }
}

/// Rows pulled one at a time; the row handed out is valid until the next call.
public protocol SQLCursor: AnyObject {
    func next() throws -> SQLRow?
}

extension SQLConnection {
    public func send(_ sql: String, _ binds: [SQLValue]) throws {
        try execute(sql, binds)
    }

    public func sendQuery(_ sql: String, _ binds: [SQLValue]) throws -> SQLPendingRows {
        var rows: [SQLValues] = []
        try query(sql, binds) { row in
            rows.append(row.values)
            return true
        }
        let pending = SQLPendingRows(sql: sql) {}
        pending.answer(rows)
        return pending
    }

    /// `sendQuery`, each row read by `read` when the rows are asked for.
    public func sendAll<T>(_ sql: String, _ binds: [any SQLBindable] = [], _ read: @escaping (SQLRow) throws -> T) throws -> SQLPending<[T]> {
        SQLPending(rows: try sendQuery(sql, binds.map(\.sqlValue))) { rows in try rows.map { try read($0.row) } }
    }

    /// `sendQuery` for at most one row.
    public func sendOne<T>(_ sql: String, _ binds: [any SQLBindable] = [], _ read: @escaping (SQLRow) throws -> T) throws -> SQLPending<T?> {
        SQLPending(rows: try sendQuery(sql, binds.map(\.sqlValue))) { rows in try rows.first.map { try read($0.row) } }
    }

    public func send(_ sql: String, _ binds: any SQLBindable...) throws {
        try send(sql, binds.map { $0.sqlValue })
    }

    @discardableResult
    public func execute(_ sql: String, _ binds: any SQLBindable...) throws -> Int {
        try execute(sql, binds.map { $0.sqlValue })
    }

    /// Every row, read with `read`.
    public func all<T>(_ sql: String, _ binds: [any SQLBindable] = [], _ read: (SQLRow) throws -> T) throws -> [T] {
        var rows: [T] = []
        try query(sql, binds.map { $0.sqlValue }) { row in
            rows.append(try read(row))
            return true
        }
        return rows
    }

    /// The first row, read with `read`; nil when there is none.
    public func one<T>(_ sql: String, _ binds: [any SQLBindable] = [], _ read: (SQLRow) throws -> T) throws -> T? {
        var found: T?
        try query(sql, binds.map { $0.sqlValue }) { row in
            found = try read(row)
            return false
        }
        return found
    }

    /// Whether the query returns a row.
    public func exists(_ sql: String, _ binds: [any SQLBindable] = []) throws -> Bool {
        try one(sql, binds) { _ in true } ?? false
    }

    /// The first column of the first row as an integer; nil without a row or for NULL.
    public func int64(_ sql: String, _ binds: [any SQLBindable] = []) throws -> Int64? {
        try one(sql, binds) { try $0.optionalInt64(0) } ?? nil
    }
}

/// The current row of a query, read by column position. A NULL or a value of another kind
/// where the store expects one is an error that names the column and the statement, never a
/// crash and never a silent zero.
public struct SQLRow {
    let source: any SQLRowSource
    public let sql: String

    public init(source: any SQLRowSource, sql: String) {
        self.source = source
        self.sql = sql
    }

    public var count: Int { source.columnCount }

    public func value(_ column: Int) -> SQLValue { source.value(column) }

    func mismatch(_ column: Int, _ wanted: String) -> SQLError {
        SQLError(.column, code: "column", message: "column \(column) holds \(describe(value(column))), not \(wanted)", sql: sql)
    }

    private func describe(_ value: SQLValue) -> String {
        switch value {
        case .null: "NULL"
        case .integer: "an integer"
        case .text: "text"
        case .bytes: "bytes"
        }
    }

    public func int64(_ column: Int) throws -> Int64 {
        guard case .integer(let value) = value(column) else { throw mismatch(column, "an integer") }
        return value
    }

    public func optionalInt64(_ column: Int) throws -> Int64? {
        switch value(column) {
        case .null: nil
        case .integer(let value): value
        default: throw mismatch(column, "an integer or NULL")
        }
    }

    public func int(_ column: Int) throws -> Int { Int(try int64(column)) }

    public func optionalInt(_ column: Int) throws -> Int? { try optionalInt64(column).map { Int($0) } }

    public func bool(_ column: Int) throws -> Bool { try int64(column) != 0 }

    public func text(_ column: Int) throws -> String {
        guard case .text(let value) = value(column) else { throw mismatch(column, "text") }
        return value
    }

    public func optionalText(_ column: Int) throws -> String? {
        switch value(column) {
        case .null: nil
        case .text(let value): value
        default: throw mismatch(column, "text or NULL")
        }
    }

    public func bytes(_ column: Int) throws -> [UInt8] {
        switch value(column) {
        case .bytes(let value): value
        default: throw mismatch(column, "bytes")
        }
    }

    public func data(_ column: Int) throws -> Data { Data(try bytes(column)) }

    public func optionalData(_ column: Int) throws -> Data? {
        switch value(column) {
        case .null: nil
        case .bytes(let value): Data(value)
        default: throw mismatch(column, "bytes or NULL")
        }
    }
}

/// Where a row's values come from: the engine's current row.
public protocol SQLRowSource {
    var columnCount: Int { get }
    func value(_ column: Int) -> SQLValue
    /// The column's name as the statement gave it (`AS` or the column's own).
    func name(_ column: Int) -> String
}

/// A type a column is read as by position, `try row[0]`, the type given by the context.
public protocol SQLColumnDecodable {
    static func decode(_ row: SQLRow, _ column: Int) throws -> Self
}

extension Int64: SQLColumnDecodable { public static func decode(_ row: SQLRow, _ column: Int) throws -> Int64 { try row.int64(column) } }
extension Int: SQLColumnDecodable { public static func decode(_ row: SQLRow, _ column: Int) throws -> Int { try row.int(column) } }
extension Bool: SQLColumnDecodable { public static func decode(_ row: SQLRow, _ column: Int) throws -> Bool { try row.bool(column) } }
extension String: SQLColumnDecodable { public static func decode(_ row: SQLRow, _ column: Int) throws -> String { try row.text(column) } }
extension Data: SQLColumnDecodable { public static func decode(_ row: SQLRow, _ column: Int) throws -> Data { try row.data(column) } }
extension Optional: SQLColumnDecodable where Wrapped: SQLColumnDecodable {
    public static func decode(_ row: SQLRow, _ column: Int) throws -> Wrapped? {
        row.value(column) == .null ? nil : try Wrapped.decode(row, column)
    }
}

extension SQLRow {
    /// The column as the type the context asks for; NULL only into an optional.
    public subscript<T: SQLColumnDecodable>(_ column: Int) -> T {
        get throws { try T.decode(self, column) }
    }
}

/// A row read whole, its columns kept: for stores that map rows after the query.
public struct SQLValues: Sendable {
    public var values: [SQLValue]
    public let sql: String
    /// The columns' names, as the statement gave them.
    public var names: [String] = []

    /// The row, read as a query hands it out.
    public var row: SQLRow { SQLRow(source: Values(values: values, names: names), sql: sql) }

    public subscript<T: SQLColumnDecodable>(_ column: Int) -> T {
        get throws { try T.decode(row, column) }
    }

    /// The column of that name (tests and tools; stores read by position).
    public subscript<T: SQLColumnDecodable>(_ name: String) -> T {
        get throws {
            guard let column = names.firstIndex(of: name) else {
                throw SQLError(.column, code: "column", message: "no column named \(name) (the row has \(names))", sql: sql)
            }
            return try T.decode(row, column)
        }
    }

    struct Values: SQLRowSource {
        let values: [SQLValue]
        var names: [String] = []
        var columnCount: Int { values.count }
        func value(_ column: Int) -> SQLValue { column < values.count ? values[column] : .null }
        func name(_ column: Int) -> String { column < names.count ? names[column] : "" }
    }
}

extension SQLRow {
    /// The row's values, kept after the statement moves on.
    public var values: SQLValues { SQLValues(values: (0..<count).map(value), sql: sql, names: (0..<count).map(source.name)) }
}

extension SQLConnection {
    /// Runs a statement with an array of values; how many rows it changed.
    @discardableResult
    public func run(_ sql: String, _ binds: [any SQLBindable] = []) throws -> Int {
        try execute(sql, binds.map { $0.sqlValue })
    }

    /// Every row, kept whole.
    public func allRows(_ sql: String, _ binds: [any SQLBindable] = []) throws -> [SQLValues] {
        try all(sql, binds) { $0.values }
    }

    /// The first row, kept whole; nil when there is none.
    public func oneRow(_ sql: String, _ binds: [any SQLBindable] = []) throws -> SQLValues? {
        try one(sql, binds) { $0.values }
    }

    /// The first column of the first row as an integer count or amount.
    public func int(_ sql: String, _ binds: [any SQLBindable] = []) throws -> Int? {
        try int64(sql, binds).map { Int($0) }
    }

    /// The first column of every row, as text.
    public func texts(_ sql: String, _ binds: [any SQLBindable] = []) throws -> [String] {
        try all(sql, binds) { try $0.text(0) }
    }

    /// The first column of every row, as integers.
    public func int64s(_ sql: String, _ binds: [any SQLBindable] = []) throws -> [Int64] {
        try all(sql, binds) { try $0.int64(0) }
    }

    /// The first column of the first row, as bytes; nil without a row or for NULL.
    public func dataValue(_ sql: String, _ binds: [any SQLBindable] = []) throws -> Data? {
        try one(sql, binds) { try $0.optionalData(0) } ?? nil
    }
}

extension SQLConnection {
    /// Runs one statement over many rows as a few multi-row statements: `head`, then the
    /// rows as `row` (one placeholder tuple, such as "(?, ?, CAST(? AS BIGINT))") joined by
    /// commas, then `tail`. The rows go in groups of fixed sizes (256, 16, 2, 1), so each
    /// engine prepares at most four texts of a statement however many rows come (and the
    /// two rows a payment often writes go in one). Each
    /// row's values fill its tuple in order. How many rows the statements changed.
    @discardableResult
    public func runRows(_ head: String, row: String, _ tail: String = "", rows: [[any SQLBindable]]) throws -> Int {
        try runRows(head, row: row, tail, values: rows.map { $0.map { $0.sqlValue } })
    }

    /// `runRows` for writes whose count the caller does not need: each statement goes as
    /// `send` (on PostgreSQL without waiting, its error thrown by the next statement that waits).
    public func sendRows(_ head: String, row: String, _ tail: String = "", rows: [[any SQLBindable]]) throws {
        try sendRows(head, row: row, tail, values: rows.map { $0.map { $0.sqlValue } })
    }

    /// `runRows` with rows of values made by the caller, with nothing to convert (the
    /// night's largest writes go this way).
    @discardableResult
    public func runRows(_ head: String, row: String, _ tail: String = "", values rows: [[SQLValue]]) throws -> Int {
        var changed = 0
        try forEachGroup(head, row: row, tail, rows: rows) { changed += try execute($0, $1) }
        return changed
    }

    /// `sendRows` with rows of values made by the caller.
    public func sendRows(_ head: String, row: String, _ tail: String = "", values rows: [[SQLValue]]) throws {
        try forEachGroup(head, row: row, tail, rows: rows) { try send($0, $1) }
    }

    private func forEachGroup(_ head: String, row: String, _ tail: String, rows: [[SQLValue]], _ body: (String, [SQLValue]) throws -> Void) throws {
        var start = 0
        for size in [256, 16, 2, 1] where rows.count - start >= size {
            let text = head + " " + Array(repeating: row, count: size).joined(separator: ", ") + (tail.isEmpty ? "" : " " + tail)
            while rows.count - start >= size {
                var binds: [SQLValue] = []
                binds.reserveCapacity(size * rows[start].count)
                for values in rows[start..<start + size] { binds.append(contentsOf: values) }
                try body(text, binds)
                start += size
            }
        }
    }
}

extension SQLConnection {
    /// Runs a query over a list of ids (duplicates dropped) in groups of fixed sizes (`group`,
    /// 8, 1), so that each engine prepares at most three texts however many ids come:
    /// `{ids}` in the text becomes one copy of `mark` a group member (a placeholder, such as
    /// "?" or "(CAST(? AS BIGINT))") joined by commas. `before` fills the placeholders ahead
    /// of `{ids}`, `after` those behind it. Each row goes to `body`.
    public func forEachRow(_ sql: String, ids: [Int64], mark: String = "?", before: [any SQLBindable] = [], after: [any SQLBindable] = [], group: Int = 128,
                           _ body: (SQLRow) throws -> Void) throws {
        let unique = Array(Set(ids)).sorted()
        let head = before.map(\.sqlValue), tail = after.map(\.sqlValue)
        var start = 0
        for size in [max(group, 8), 8, 1] {
            guard unique.count - start >= size else { continue }
            let text = sql.replacingOccurrences(of: "{ids}", with: Array(repeating: mark, count: size).joined(separator: ", "))
            while unique.count - start >= size {
                try query(text, head + unique[start..<start + size].map { SQLValue.integer($0) } + tail) { row in
                    try body(row)
                    return true
                }
                start += size
            }
        }
    }
}
