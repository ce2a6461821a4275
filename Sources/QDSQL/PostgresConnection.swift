import CLibPQ
import Foundation

/// The PostgreSQL engine of the SQL layer, through libpq (synchronous, like the rest of
/// qdwallet). One connection is one server session: statements are prepared once per text
/// (`PQprepare`, named by their position in the cache) and run with `PQexecPrepared`.
/// Values go as text, bytes as binary; results come back as text and are read by the column's
/// type: integers (int2, int4, int8, numeric sums) as `Int64`, bytea (hex) as bytes,
/// everything else as text. A flag is an integer column on both engines.
public final class PostgresConnection: SQLConnection {
    let handle: OpaquePointer
    public var dialect: SQLDialect { .postgres }
    /// Prepared statement names by the SQLite-style text the stores wrote.
    private var prepared: [String: Prepared] = [:]
    private var preparedCount = 0
    private var cursorCount = 0
    /// How long a statement may run before the server cancels it (0: no limit).
    public let statementTimeoutMillis: Int
    /// Set when the server refused a statement in a way that running the whole transaction
    /// again may cure, whatever error the caller made of it; cleared when a transaction
    /// begins. A serialization failure, a deadlock, a lock timeout; and a unique violation:
    /// under READ COMMITTED two transactions may both find a key absent and insert it, and
    /// the one that loses sees the winner's row when it runs again (a replay, a refusal).
    var sawRetryableFailure = false
    /// The statements sent without waiting (`send`, `sendQuery`: libpq's pipeline mode)
    /// whose results have not been read yet: their texts, for the errors, and where a query's
    /// rows go.
    private var inFlight: [(sql: String, rows: SQLPendingRows?)] = []
    /// How many statements may wait unread: results are small, and the server's are held
    /// until a sync, so the sockets' buffers never fill both ways.
    static let pipelineDepth = 64
    /// How many statements were sent without waiting and are not answered yet.
    public var unansweredStatements: Int { inFlight.count }

    /// Opens a session. `url` is a libpq connection URI (`postgres://user@host:port/db?...`);
    /// the password comes from `PGPASSFILE`/`~/.pgpass` or `PGPASSWORD`, never from the URL
    /// in messages. `connectTimeoutSeconds` bounds the connect, `statementTimeoutMillis` each
    /// statement and `lockTimeoutMillis` each wait for a row lock; `schema`, when given, is
    /// the only schema the session sees (tests give each their own).
    public init(url: String, connectTimeoutSeconds: Int = 10, statementTimeoutMillis: Int = 60_000, lockTimeoutMillis: Int = 10_000, schema: String? = nil, applicationName: String = "qdwallet") throws {
        let keywords = ["dbname", "connect_timeout", "application_name", "options"]
        let values = [url, String(max(1, connectTimeoutSeconds)), applicationName,
                      "-c statement_timeout=\(statementTimeoutMillis) -c lock_timeout=\(lockTimeoutMillis) -c idle_in_transaction_session_timeout=\(max(statementTimeoutMillis, 60_000)) -c TimeZone=UTC -c client_encoding=UTF8 -c client_min_messages=warning"
                          + (schema.map { " -c search_path=\($0)" } ?? "")]
        // expand_dbname=1: the URI in `dbname` is parsed, and the other keywords win over it.
        let connection = withCStrings(keywords) { keys in
            withCStrings(values) { vals in PQconnectdbParams(keys, vals, 1) }
        }
        guard let connection else {
            throw SQLError(.other, code: "connect", message: "libpq could not allocate a connection", sql: "")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.redact(String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines), url: url)
            PQfinish(connection)
            throw SQLError(.unavailable, code: "connect", message: "cannot connect to PostgreSQL at \(Self.redact(url)): \(message)", sql: "")
        }
        self.handle = connection
        self.statementTimeoutMillis = statementTimeoutMillis
    }

    deinit { PQfinish(handle) }

    /// The URL without its password, for messages and logs.
    public static func redact(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "postgres://…" }
        if components.password != nil { components.password = "***" }
        var items = components.queryItems ?? []
        for index in items.indices where items[index].name == "password" { items[index].value = "***" }
        components.queryItems = items.isEmpty ? nil : items
        return components.string ?? "postgres://…"
    }

    static func redact(_ message: String, url: String) -> String {
        guard let password = URLComponents(string: url)?.password, !password.isEmpty else { return message }
        return message.replacingOccurrences(of: password, with: "***")
    }

    // MARK: Statements

    /// A statement prepared in this session under a name of its own.
    final class Prepared: SQLStatement {
        let name: String
        let sql: String
        let parameters: Int
        unowned let connection: PostgresConnection

        init(name: String, sql: String, parameters: Int, connection: PostgresConnection) {
            self.name = name
            self.sql = sql
            self.parameters = parameters
            self.connection = connection
        }

        func execute(_ binds: [SQLValue]) throws -> Int {
            let result = try connection.run(self, binds)
            defer { PQclear(result) }
            return Int(String(cString: PQcmdTuples(result))) ?? 0
        }

        func send(_ binds: [SQLValue]) throws {
            try connection.send(self, binds)
        }

        func query(_ binds: [SQLValue], _ body: (SQLRow) throws -> Bool) throws {
            let result = try connection.run(self, binds)
            defer { PQclear(result) }
            let rows = Int(PQntuples(result))
            var source = ResultRow(result: result, row: 0)
            for row in 0..<rows {
                source.row = Int32(row)
                guard try body(SQLRow(source: source, sql: sql)) else { return }
            }
        }
    }

    public func prepare(_ sql: String) throws -> any SQLStatement {
        if let known = prepared[sql] { return known }
        try settle()
        let text = dialect.translate(sql)
        preparedCount += 1
        let name = "qd\(preparedCount)"
        guard let result = PQprepare(handle, name, text, 0, nil) else {
            throw failure(nil, sql: sql)
        }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COMMAND_OK else { throw failure(result, sql: sql) }
        let statement = Prepared(name: name, sql: sql, parameters: Self.parameterCount(text), connection: self)
        prepared[sql] = statement
        return statement
    }

    /// The highest `$N` of a translated statement.
    static func parameterCount(_ text: String) -> Int {
        var highest = 0
        var digits = 0
        var inNumber = false
        for byte in text.utf8 {
            if inNumber, byte >= 48, byte <= 57 {
                digits = digits * 10 + Int(byte - 48)
                continue
            }
            if inNumber { highest = max(highest, digits) }
            inNumber = byte == 36  // "$"
            digits = 0
        }
        if inNumber { highest = max(highest, digits) }
        return highest
    }

    func run(_ statement: Prepared, _ binds: [SQLValue]) throws -> OpaquePointer {
        guard binds.count == statement.parameters else {
            throw SQLError(.other, code: "bind", message: "the statement takes \(statement.parameters) values, \(binds.count) were given", sql: statement.sql)
        }
        if !inFlight.isEmpty {
            // One round trip for the writes sent before and this statement.
            try send(statement, binds)
            guard let result = try settle(keepingLast: true) else { throw failure(nil, sql: statement.sql) }
            return result
        }
        let result = Self.withParameters(binds) { count, pointers, lengths, formats in
            PQexecPrepared(handle, statement.name, count, pointers, lengths, formats, 0)
        }
        guard let result else { throw failure(nil, sql: statement.sql) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
            return result
        default:
            defer { PQclear(result) }
            throw failure(result, sql: statement.sql)
        }
    }

    /// Hands libpq the values: text for integers and text, binary for bytes, NULL as a null
    /// pointer. Every value goes into one buffer, each text ended by a NUL, and libpq gets a
    /// pointer into it for each: one allocation a statement, not a few a value (a chunk's
    /// multi-row statements bind thousands of values each).
    static func withParameters<T>(_ binds: [SQLValue], _ body: (Int32, [UnsafePointer<CChar>?], [Int32], [Int32]) -> T) -> T {
        var buffer: [UInt8] = []
        var offsets: [Int] = []
        var lengths = [Int32](repeating: 0, count: binds.count)
        var formats = [Int32](repeating: 0, count: binds.count)
        offsets.reserveCapacity(binds.count)
        buffer.reserveCapacity(binds.count * 12)
        for (index, value) in binds.enumerated() {
            switch value {
            case .null:
                offsets.append(-1)
            case .integer(let number):
                offsets.append(buffer.count)
                PostgresText.appendDecimal(number, to: &buffer)
                buffer.append(0)
            case .text(let text):
                offsets.append(buffer.count)
                PostgresText.appendUTF8(text, to: &buffer)
                buffer.append(0)
            case .bytes(let bytes):
                // Binary, its length given; an empty value still needs a pointer (a null one
                // would bind NULL): the NUL after it.
                offsets.append(buffer.count)
                buffer.append(contentsOf: bytes)
                buffer.append(0)
                lengths[index] = Int32(bytes.count)
                formats[index] = 1
            }
        }
        if buffer.isEmpty { buffer.append(0) }
        return buffer.withUnsafeBytes { raw in
            // UInt8 and CChar are the same bytes (related integer types may alias).
            let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
            let pointers: [UnsafePointer<CChar>?] = offsets.map { $0 < 0 ? nil : UnsafePointer(base + $0) }
            return body(Int32(binds.count), pointers, lengths, formats)
        }
    }

    /// Runs `text` (already in PostgreSQL's placeholders) unprepared, through the extended
    /// protocol: for statements PostgreSQL does not prepare, such as DECLARE.
    func runUnprepared(_ text: String, _ binds: [SQLValue], sql: String) throws -> OpaquePointer {
        try settle()
        let result = Self.withParameters(binds) { count, pointers, lengths, formats in
            PQexecParams(handle, text, count, nil, pointers, lengths, formats, 0)
        }
        guard let result else { throw failure(nil, sql: sql) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
            return result
        default:
            defer { PQclear(result) }
            throw failure(result, sql: sql)
        }
    }

    @discardableResult
    public func execute(_ sql: String, _ binds: [SQLValue]) throws -> Int {
        if binds.isEmpty && Self.isControl(sql) {
            if !inFlight.isEmpty {
                if sql.hasPrefix("ROLLBACK") {
                    // What was sent is being undone: its errors no longer matter.
                    _ = try? settle()
                } else {
                    // COMMIT, RELEASE, SAVEPOINT: in the same round trip as the writes before.
                    let sent = PQsendQueryParams(handle, sql, 0, nil, nil, nil, nil, 0)
                    guard sent == 1 else { throw abandonPipeline(sql: sql) }
                    inFlight.append((sql, nil))
                    if let result = try settle(keepingLast: true) { PQclear(result) }
                    return 0
                }
            }
            // Transaction control and savepoints: the simple protocol, never prepared.
            guard let result = PQexec(handle, sql) else { throw failure(nil, sql: sql) }
            defer { PQclear(result) }
            guard PQresultStatus(result) == PGRES_COMMAND_OK else { throw failure(result, sql: sql) }
            return 0
        }
        return try prepare(sql).execute(binds)
    }

    /// Runs statements separated by semicolons (DDL, function bodies) through the simple
    /// protocol, unprepared, with no values.
    public func script(_ sql: String) throws {
        try settle()
        guard let result = PQexec(handle, sql) else { throw failure(nil, sql: sql) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK: return
        default: throw failure(result, sql: sql)
        }
    }

    static func isControl(_ sql: String) -> Bool {
        let head = sql.prefix(10).uppercased()
        return head.hasPrefix("BEGIN") || head.hasPrefix("COMMIT") || head.hasPrefix("ROLLBACK") || head.hasPrefix("SAVEPOINT") || head.hasPrefix("RELEASE") || head.hasPrefix("SET ")
    }

    public func query(_ sql: String, _ binds: [SQLValue], _ body: (SQLRow) throws -> Bool) throws {
        try prepare(sql).query(binds, body)
    }

    /// The rows of the query, one by one. Inside a transaction through a server-side cursor
    /// fetched `cursorBatch` rows at a time, so memory stays bounded however many rows there
    /// are (several may be open at once); outside one (autocommit), fetched whole.
    public func cursor(_ sql: String, _ binds: [SQLValue]) throws -> any SQLCursor {
        try settle()
        if PQtransactionStatus(handle) == PQTRANS_INTRANS {
            cursorCount += 1
            let name = "qdwallet_cursor_\(cursorCount)"
            let result = try runUnprepared("DECLARE \(name) NO SCROLL CURSOR FOR " + dialect.translate(sql), binds, sql: sql)
            PQclear(result)
            return ServerCursor(name: name, connection: self, sql: sql)
        }
        var rows: [SQLValues] = []
        try query(sql, binds) { row in
            rows.append(row.values)
            return true
        }
        return Rows(rows: rows, sql: sql)
    }

    /// How many rows a server-side cursor fetches at a time.
    static let cursorBatch = 2_000

    /// A cursor declared in the current transaction. It is closed when read to its end, and
    /// with the transaction otherwise (never from `deinit`: the session may be in another
    /// transaction by then, which a failed CLOSE would abort).
    final class ServerCursor: SQLCursor {
        let name: String
        unowned let connection: PostgresConnection
        let sql: String
        var buffer: [SQLValues] = []
        var position = 0
        var exhausted = false

        init(name: String, connection: PostgresConnection, sql: String) {
            self.name = name
            self.connection = connection
            self.sql = sql
        }

        func next() throws -> SQLRow? {
            if position == buffer.count {
                guard !exhausted else { return nil }
                let fetch = "FETCH \(PostgresConnection.cursorBatch) FROM \(name)"
                try connection.settle()
                guard let result = PQexec(connection.handle, fetch) else { throw connection.failure(nil, sql: sql) }
                defer { PQclear(result) }
                guard PQresultStatus(result) == PGRES_TUPLES_OK else { throw connection.failure(result, sql: sql) }
                let count = Int(PQntuples(result))
                var source = ResultRow(result: result, row: 0)
                buffer = (0..<count).map { row in
                    source.row = Int32(row)
                    return SQLRow(source: source, sql: sql).values
                }
                position = 0
                if count < PostgresConnection.cursorBatch {
                    exhausted = true
                    try connection.script("CLOSE \(name)")
                }
                guard !buffer.isEmpty else { return nil }
            }
            defer { position += 1 }
            return SQLRow(source: SQLValues.Values(values: buffer[position].values, names: buffer[position].names), sql: sql)
        }
    }

    final class Rows: SQLCursor {
        var rows: [SQLValues]
        var position = 0
        let sql: String

        init(rows: [SQLValues], sql: String) {
            self.rows = rows
            self.sql = sql
        }

        func next() throws -> SQLRow? {
            guard position < rows.count else { return nil }
            defer { position += 1 }
            return SQLRow(source: SQLValues.Values(values: rows[position].values, names: rows[position].names), sql: sql)
        }
    }

    /// One row of a result, read by the column's type.
    struct ResultRow: SQLRowSource {
        let result: OpaquePointer
        var row: Int32

        var columnCount: Int { Int(PQnfields(result)) }
        func name(_ column: Int) -> String { PQfname(result, Int32(column)).map { String(cString: $0) } ?? "" }

        func value(_ column: Int) -> SQLValue {
            let index = Int32(column)
            if PQgetisnull(result, row, index) != 0 { return .null }
            let length = Int(PQgetlength(result, row, index))
            guard let pointer = PQgetvalue(result, row, index) else { return .null }
            let bytes = UnsafeRawBufferPointer(start: pointer, count: length)
            switch PQftype(result, index) {
            case 20, 21, 23, 1700:  // int8, int2, int4, numeric (a sum of int8)
                if let number = PostgresText.integer(bytes) { return .integer(number) }
                return .text(String(decoding: bytes, as: UTF8.self))
            case 16:  // bool: as the integer flag SQLite gives
                return .integer(length > 0 && bytes[0] == UInt8(ascii: "t") ? 1 : 0)
            case 17:  // bytea, hex output: "\x0a1b..."
                return .bytes(Self.hex(bytes))
            default:
                return .text(String(decoding: bytes, as: UTF8.self))
            }
        }

        static func hex(_ text: UnsafeRawBufferPointer) -> [UInt8] {
            guard text.count >= 2, text[0] == UInt8(ascii: "\\"), text[1] == UInt8(ascii: "x") else { return Array(text) }
            func nibble(_ c: UInt8) -> UInt8 {
                switch c {
                case 48...57: c - 48
                case 97...102: c - 87
                case 65...70: c - 55
                default: 0
                }
            }
            var out: [UInt8] = []
            out.reserveCapacity((text.count - 2) / 2)
            var index = 2
            while index + 1 < text.count {
                out.append(nibble(text[index]) << 4 | nibble(text[index + 1]))
                index += 2
            }
            return out
        }
    }

    // MARK: Writes sent without waiting

    /// Sends a write whose count the caller does not need without waiting for it (libpq's
    /// pipeline mode): the server runs it in order, and its error, if any, is thrown by the
    /// next statement that waits for an answer (a read, a count, COMMIT), which goes in the
    /// same round trip. Inside a transaction the outcome is the same as waiting: a failed
    /// statement fails the transaction either way.
    public func send(_ sql: String, _ binds: [SQLValue]) throws {
        if binds.isEmpty && Self.isControl(sql) {
            try execute(sql, binds)
            return
        }
        try send(prepare(sql) as! Prepared, binds)
    }

    /// Sends a query without waiting, as `send`: its rows are read with the next statement
    /// that waits, or when they are asked for (one round trip for all sent before).
    public func sendQuery(_ sql: String, _ binds: [SQLValue]) throws -> SQLPendingRows {
        let pending = SQLPendingRows(sql: sql) { [weak self] in try self?.settle() }
        try send(prepare(sql) as! Prepared, binds, rows: pending)
        return pending
    }

    func send(_ statement: Prepared, _ binds: [SQLValue], rows: SQLPendingRows? = nil) throws {
        guard binds.count == statement.parameters else {
            throw SQLError(.other, code: "bind", message: "the statement takes \(statement.parameters) values, \(binds.count) were given", sql: statement.sql)
        }
        if inFlight.count >= Self.pipelineDepth { try settle() }
        if PQpipelineStatus(handle) == PQ_PIPELINE_OFF, PQenterPipelineMode(handle) != 1 {
            throw failure(nil, sql: statement.sql)
        }
        let sent = Self.withParameters(binds) { count, pointers, lengths, formats in
            PQsendQueryPrepared(handle, statement.name, count, pointers, lengths, formats, 0)
        }
        guard sent == 1 else {
            if let rows { inFlight.append((statement.sql, rows)) }
            throw abandonPipeline(sql: statement.sql, inFlight)
        }
        inFlight.append((statement.sql, rows))
    }

    /// `COPY table (columns) FROM STDIN` in the text format (PostgreSQL's COPY, "Text
    /// Format"): one row a line, columns separated by tabs, `\N` for NULL, and a backslash,
    /// tab, line feed or carriage return inside a value escaped with a backslash; bytes as
    /// bytea's hex form. The rows go in messages of about 64 KiB; the server answers once, at
    /// the end. Statements sent without waiting are answered first (COPY cannot join a
    /// pipeline). A row of the wrong width ends the COPY with an error, and nothing is written.
    @discardableResult
    public func copyRows(into table: String, columns: [String], rows: [[SQLValue]]) throws -> Int {
        guard !rows.isEmpty else { return 0 }
        let sql = "COPY \(table) (\(columns.joined(separator: ", "))) FROM STDIN"
        try settle()
        guard let start = PQexec(handle, sql) else { throw failure(nil, sql: sql) }
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            defer { PQclear(start) }
            throw failure(start, sql: sql)
        }
        PQclear(start)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(Self.copyMessage + 4096)
        var refusal: String?
        for row in rows {
            guard row.count == columns.count else {
                refusal = "a row of \(row.count) values for \(columns.count) columns"
                break
            }
            Self.appendCopyLine(row, to: &buffer)
            if buffer.count >= Self.copyMessage {
                try putCopyData(buffer, sql: sql)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        if refusal == nil, !buffer.isEmpty { try putCopyData(buffer, sql: sql) }
        // With an error message, the server fails the COPY and writes none of it.
        let ended = refusal.map { reason in reason.withCString { PQputCopyEnd(handle, $0) } } ?? PQputCopyEnd(handle, nil)
        guard ended == 1 else { throw failure(nil, sql: sql) }
        var written: Int?
        var error: SQLError?
        while let result = PQgetResult(handle) {
            if PQresultStatus(result) == PGRES_COMMAND_OK {
                written = Int(String(cString: PQcmdTuples(result)))
            } else if error == nil, refusal == nil {
                // Not for a COPY ended by the refusal above: the server reports that as a
                // cancel (57014), which would mark the transaction worth running again.
                error = failure(result, sql: sql)
            }
            PQclear(result)
        }
        if let refusal { throw SQLError(.other, code: "copy", message: refusal, sql: sql) }
        if let error { throw error }
        guard let written else { throw failure(nil, sql: sql) }
        return written
    }

    /// About how many bytes of rows go in one CopyData message.
    static let copyMessage = 1 << 16

    private func putCopyData(_ bytes: [UInt8], sql: String) throws {
        let sent = bytes.withUnsafeBytes { raw in
            PQputCopyData(handle, raw.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(raw.count))
        }
        guard sent == 1 else { throw failure(nil, sql: sql) }
    }

    /// One row of COPY's text format, with its line feed.
    static func appendCopyLine(_ row: [SQLValue], to buffer: inout [UInt8]) {
        let backslash = UInt8(ascii: "\\")
        for (index, value) in row.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: "\t")) }
            switch value {
            case .null:
                buffer.append(backslash); buffer.append(UInt8(ascii: "N"))
            case .integer(let number):
                PostgresText.appendDecimal(number, to: &buffer)
            case .text(let text):
                PostgresText.appendCopyText(text, to: &buffer)
            case .bytes(let bytes):
                // bytea's input `\x` and hex digits; the backslash itself escaped for COPY.
                buffer.append(backslash); buffer.append(backslash); buffer.append(UInt8(ascii: "x"))
                let digits = Array("0123456789abcdef".utf8)
                for byte in bytes {
                    buffer.append(digits[Int(byte >> 4)]); buffer.append(digits[Int(byte & 0x0F)])
                }
            }
        }
        buffer.append(0x0A)
    }

    /// Sends BEGIN without waiting: the transaction's first statement that waits (or its
    /// COMMIT) is answered in the same round trip.
    func begin(_ text: String) throws {
        try settle()
        if PQpipelineStatus(handle) == PQ_PIPELINE_OFF, PQenterPipelineMode(handle) != 1 {
            throw failure(nil, sql: text)
        }
        guard PQsendQueryParams(handle, text, 0, nil, nil, nil, nil, 0) == 1 else { throw abandonPipeline(sql: text) }
        inFlight.append((text, nil))
    }

    /// Reads the results of the statements sent without waiting and leaves pipeline mode;
    /// throws the first error among them. With `keepingLast`, the last statement's result is
    /// returned (the caller clears it).
    @discardableResult
    func settle(keepingLast: Bool = false) throws -> OpaquePointer? {
        guard !inFlight.isEmpty else { return nil }
        let texts = inFlight
        inFlight = []
        guard PQpipelineSync(handle) == 1 else { throw abandonPipeline(sql: texts[0].sql, texts) }
        var firstError: SQLError?
        var kept: OpaquePointer?
        // Queries sent ahead that were not answered (an earlier statement failed, the session
        // broke) keep an error: their rows are never taken for empty.
        defer { for entry in texts where entry.rows?.isAnswered == false { entry.rows?.fail(firstError ?? failure(nil, sql: entry.sql)) } }
        for (index, (text, pending)) in texts.enumerated() {
            // Each statement's results, then a null.
            var any = false
            while let result = PQgetResult(handle) {
                any = true
                let status = PQresultStatus(result)
                if status == PGRES_FATAL_ERROR {
                    let error = failure(result, sql: text)
                    if firstError == nil { firstError = error }
                    pending?.fail(error)
                }
                if let pending, status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK {
                    var source = ResultRow(result: result, row: 0)
                    pending.answer((0..<Int(PQntuples(result))).map { row in
                        source.row = Int32(row)
                        return SQLRow(source: source, sql: text).values
                    })
                }
                if keepingLast, index == texts.count - 1, status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK {
                    if let kept { PQclear(kept) }
                    kept = result
                } else {
                    PQclear(result)
                }
            }
            if !any, PQstatus(handle) != CONNECTION_OK {
                if let kept { PQclear(kept) }
                throw failure(nil, sql: text)
            }
        }
        // The sync point's own result.
        while let result = PQgetResult(handle) {
            let status = PQresultStatus(result)
            PQclear(result)
            if status == PGRES_PIPELINE_SYNC { break }
        }
        if PQexitPipelineMode(handle) != 1, firstError == nil { firstError = failure(nil, sql: texts[texts.count - 1].sql) }
        if let firstError {
            if let kept { PQclear(kept) }
            throw firstError
        }
        return kept
    }

    /// A pipeline that could not be sent: the session is broken (the pool drops it). The
    /// queries sent ahead among `entries` keep the error.
    private func abandonPipeline(sql: String, _ entries: [(sql: String, rows: SQLPendingRows?)]? = nil) -> SQLError {
        let error = failure(nil, sql: sql)
        for entry in entries ?? inFlight { entry.rows?.fail(error) }
        inFlight = []
        return error
    }

    // MARK: Errors

    func failure(_ result: OpaquePointer?, sql: String) -> SQLError {
        guard let result else {
            let message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
            return SQLError(PQstatus(handle) == CONNECTION_OK ? .other : .unavailable, code: "libpq", message: message, sql: sql)
        }
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
        let message = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
            ?? String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
        let error = SQLError(Self.kind(state), code: state.isEmpty ? "libpq" : "SQLSTATE \(state)", message: message, sql: sql)
        if error.isRetryable || state == "23505" { sawRetryableFailure = true }
        return error
    }

    /// SQLSTATE classes (PostgreSQL Appendix A).
    static func kind(_ state: String) -> SQLError.Kind {
        switch state {
        case "40001", "40P01": .serialization
        case "55P03", "57014": .busy  // lock_not_available (lock_timeout), query_canceled (statement_timeout)
        case let code where code.hasPrefix("23"): .constraint
        case let code where code.hasPrefix("08"): .unavailable
        default: .other
        }
    }
}

/// C strings for libpq, alive for the call.
private func withCStrings<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> T) -> T {
    let buffers = strings.map { Array($0.utf8CString) }
    return withPointers(buffers.map { Optional($0) }) { pointers in
        var terminated = pointers
        terminated.append(nil)
        return terminated.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// Pointers to each buffer (nil for a missing one), valid inside `body`.
private func withPointers<T>(_ buffers: [[CChar]?], _ body: ([UnsafePointer<CChar>?]) -> T) -> T {
    var pointers: [UnsafePointer<CChar>?] = []
    pointers.reserveCapacity(buffers.count)
    func next(_ index: Int) -> T {
        if index == buffers.count { return body(pointers) }
        guard let buffer = buffers[index] else {
            pointers.append(nil)
            return next(index + 1)
        }
        return buffer.withUnsafeBufferPointer { pointer in
            pointers.append(pointer.baseAddress)
            return next(index + 1)
        }
    }
    return next(0)
}
