import Foundation
import GRDB
import GRDBSQLite

/// The SQLite engine of the SQL layer, inside a GRDB transaction or snapshot: GRDB keeps the
/// connection, its pool, the migrations and the statement cache (prepared once per text and
/// connection); binding, stepping and reading go straight through the SQLite C API.
public final class SQLiteConnection: SQLConnection {
    public let db: Database
    public var dialect: SQLDialect { .sqlite }

    public init(_ db: Database) { self.db = db }

    private func prepared(_ sql: String, _ binds: [SQLValue]) throws -> OpaquePointer {
        let handle = try cached(sql)
        try bind(handle, binds, sql: sql)
        return handle
    }

    private func cached(_ sql: String) throws -> OpaquePointer {
        do {
            return try db.cachedStatement(sql: sql).sqliteStatement
        } catch let error as DatabaseError {
            throw Self.error(error, sql: sql)
        }
    }

    /// Binds `binds` and steps the statement to its end; how many rows it changed. The texts
    /// and blobs are bound where they lie in one buffer made for this call (`SQLITE_STATIC`:
    /// SQLite copies none of them, where a binding of its own would allocate and copy each);
    /// the statement is reset and its bindings cleared before the buffer goes, so that no
    /// pointer into it outlives the call (as GRDB's own temporary bindings do).
    func runBound(_ handle: OpaquePointer, _ binds: [SQLValue], sql: String) throws -> Int {
        var bytes = 0
        for value in binds {
            switch value {
            case .text(let text): bytes += text.utf8.count
            case .bytes(let blob): bytes += blob.count
            case .null, .integer: break
            }
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes, 1), alignment: 1)
        defer {
            sqlite3_reset(handle)
            sqlite3_clear_bindings(handle)
            buffer.deallocate()
        }
        try bind(handle, binds, sql: sql, arena: buffer.baseAddress!)
        return try run(handle, sql: sql)
    }

    /// Binds `binds` to a statement. Every parameter is bound each time (the count must
    /// match), so nothing of the last run is left to clear. Without `arena`, SQLite copies
    /// each text and blob (`SQLITE_TRANSIENT`); with it, they are copied into the arena one
    /// after the other and bound where they lie there (`SQLITE_STATIC`: the caller keeps the
    /// arena until the statement's bindings are cleared, and makes it large enough).
    func bind(_ handle: OpaquePointer, _ binds: [SQLValue], sql: String, arena: UnsafeMutableRawPointer? = nil) throws {
        sqlite3_reset(handle)
        guard Int(sqlite3_bind_parameter_count(handle)) == binds.count else {
            throw SQLError(.other, code: "bind", message: "the statement takes \(sqlite3_bind_parameter_count(handle)) values, \(binds.count) were given", sql: sql)
        }
        var offset = 0
        for (index, value) in binds.enumerated() {
            let position = Int32(index + 1)
            let code: Int32
            switch value {
            case .null: code = sqlite3_bind_null(handle, position)
            case .integer(let number): code = sqlite3_bind_int64(handle, position, number)
            case .text(var text):
                code = text.withUTF8 { utf8 in
                    guard let arena else { return sqlite3_bind_text(handle, position, utf8.baseAddress, Int32(utf8.count), Self.transient) }
                    // Never a null pointer: an empty text is bound as empty, not as NULL.
                    let start = arena + offset
                    if let from = utf8.baseAddress { start.copyMemory(from: from, byteCount: utf8.count) }
                    offset += utf8.count
                    return sqlite3_bind_text(handle, position, start.assumingMemoryBound(to: CChar.self), Int32(utf8.count), nil /* SQLITE_STATIC */)
                }
            case .bytes(let blob):
                // An empty array binds an empty blob, not NULL (a NULL pointer would bind NULL).
                code = blob.isEmpty ? sqlite3_bind_zeroblob(handle, position, 0) : blob.withUnsafeBytes { raw in
                    guard let arena else { return sqlite3_bind_blob(handle, position, raw.baseAddress, Int32(raw.count), Self.transient) }
                    let start = arena + offset
                    start.copyMemory(from: raw.baseAddress!, byteCount: raw.count)
                    offset += raw.count
                    return sqlite3_bind_blob(handle, position, start, Int32(raw.count), nil /* SQLITE_STATIC */)
                }
            }
            guard code == SQLITE_OK else { throw failure(code, sql: sql) }
        }
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    @discardableResult
    public func execute(_ sql: String, _ binds: [SQLValue]) throws -> Int {
        try runBound(try cached(sql), binds, sql: sql)
    }

    /// Multi-row `INSERT`s: in process, a statement costs what its rows cost.
    @discardableResult
    public func copyRows(into table: String, columns: [String], rows: [[SQLValue]]) throws -> Int {
        if let wrong = rows.first(where: { $0.count != columns.count }) {
            throw SQLError(.other, code: "bind", message: "a row of \(wrong.count) values for \(columns.count) columns", sql: "INSERT INTO \(table)")
        }
        return try runRows("INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES",
                           row: "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")", values: rows)
    }

    public func query(_ sql: String, _ binds: [SQLValue], _ body: (SQLRow) throws -> Bool) throws {
        try rows(try prepared(sql, binds), sql: sql, body)
    }

    /// Steps a bound statement to its end; how many rows it changed.
    func run(_ handle: OpaquePointer, sql: String) throws -> Int {
        defer { sqlite3_reset(handle) }
        var code = sqlite3_step(handle)
        while code == SQLITE_ROW { code = sqlite3_step(handle) }
        guard code == SQLITE_DONE else { throw failure(code, sql: sql) }
        return Int(sqlite3_changes(db.sqliteConnection))
    }

    /// Steps a bound statement, handing each row to `body` until it returns false.
    func rows(_ handle: OpaquePointer, sql: String, _ body: (SQLRow) throws -> Bool) throws {
        defer { sqlite3_reset(handle) }
        let row = SQLRow(source: Source(handle: handle), sql: sql)
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return }
            guard code == SQLITE_ROW else { throw failure(code, sql: sql) }
            guard try body(row) else { return }
        }
    }

    public func prepare(_ sql: String) throws -> any SQLStatement {
        var handle: OpaquePointer?
        let code = sqlite3_prepare_v3(db.sqliteConnection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
        guard code == SQLITE_OK, let handle else {
            sqlite3_finalize(handle)
            throw failure(code, sql: sql)
        }
        return Prepared(handle: handle, connection: self, sql: sql)
    }

    /// A statement of its own (outside GRDB's cache), finalized when released; the caller
    /// keeps it no longer than the transaction it was prepared in.
    final class Prepared: SQLStatement {
        let handle: OpaquePointer
        let connection: SQLiteConnection
        let sql: String

        init(handle: OpaquePointer, connection: SQLiteConnection, sql: String) {
            self.handle = handle
            self.connection = connection
            self.sql = sql
        }

        deinit { sqlite3_finalize(handle) }

        func execute(_ binds: [SQLValue]) throws -> Int {
            try connection.runBound(handle, binds, sql: sql)
        }

        func query(_ binds: [SQLValue], _ body: (SQLRow) throws -> Bool) throws {
            try connection.bind(handle, binds, sql: sql)
            try connection.rows(handle, sql: sql, body)
        }
    }

    public func cursor(_ sql: String, _ binds: [SQLValue]) throws -> any SQLCursor {
        Cursor(handle: try prepared(sql, binds), connection: self, sql: sql)
    }

    final class Cursor: SQLCursor {
        let handle: OpaquePointer
        let connection: SQLiteConnection
        let sql: String
        var done = false

        init(handle: OpaquePointer, connection: SQLiteConnection, sql: String) {
            self.handle = handle
            self.connection = connection
            self.sql = sql
        }

        func next() throws -> SQLRow? {
            guard !done else { return nil }
            let code = sqlite3_step(handle)
            if code == SQLITE_ROW { return SQLRow(source: Source(handle: handle), sql: sql) }
            done = true
            sqlite3_reset(handle)
            if code == SQLITE_DONE { return nil }
            throw connection.failure(code, sql: sql)
        }

        deinit {
            if !done { sqlite3_reset(handle) }
        }
    }

    /// The current row of a stepped statement.
    struct Source: SQLRowSource {
        let handle: OpaquePointer
        var columnCount: Int { Int(sqlite3_column_count(handle)) }
        func name(_ column: Int) -> String { sqlite3_column_name(handle, Int32(column)).map { String(cString: $0) } ?? "" }
        func value(_ column: Int) -> SQLValue {
            let index = Int32(column)
            switch sqlite3_column_type(handle, index) {
            case SQLITE_NULL: return .null
            case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, index))
            case SQLITE_TEXT:
                let count = Int(sqlite3_column_bytes(handle, index))
                guard let pointer = sqlite3_column_text(handle, index) else { return .text("") }
                return .text(String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self))
            case SQLITE_BLOB:
                let count = Int(sqlite3_column_bytes(handle, index))
                guard count > 0, let pointer = sqlite3_column_blob(handle, index) else { return .bytes([]) }
                return .bytes(Array(UnsafeRawBufferPointer(start: pointer, count: count)))
            default:
                // A REAL: qdwallet stores none; read it as the text SQLite gives for it.
                guard let pointer = sqlite3_column_text(handle, index) else { return .null }
                return .text(String(cString: pointer))
            }
        }
    }

    func failure(_ code: Int32, sql: String) -> SQLError {
        let message = String(cString: sqlite3_errmsg(db.sqliteConnection))
        let extended = sqlite3_extended_errcode(db.sqliteConnection)
        return SQLError(Self.kind(code), code: "SQLite \(extended)", message: message, sql: sql)
    }

    static func kind(_ code: Int32) -> SQLError.Kind {
        switch code & 0xFF {
        case SQLITE_CONSTRAINT: .constraint
        case SQLITE_BUSY, SQLITE_LOCKED: .busy
        default: .other
        }
    }

    static func error(_ error: DatabaseError, sql: String) -> SQLError {
        SQLError(kind(error.resultCode.primaryResultCode.rawValue), code: "SQLite \(error.extendedResultCode.rawValue)", message: error.message ?? "\(error)", sql: sql)
    }
}
