import Foundation
import GRDB
import GRDBSQLite
import QDSQL
import Testing

/// The engines a test runs on: SQLite always, PostgreSQL when `QDWALLET_TEST_POSTGRES` names
/// a server (Tests/Postgres/with-postgres.sh starts a throwaway one).
enum Engine: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    static var postgresURL: String? { ProcessInfo.processInfo.environment["QDWALLET_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 } }
    static var available: [Engine] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }
    var testDescription: String { rawValue }
}

@Suite struct SQLLayerTests {
    /// A private database with one table of every kind the stores use: an in-memory SQLite
    /// database, or a schema of its own on the PostgreSQL server, dropped afterwards.
    /// PostgreSQL statements run in autocommit, so a refused one does not end the others.
    func connection(_ engine: Engine = .sqlite, _ body: (any SQLConnection) throws -> Void) throws {
        switch engine {
        case .sqlite:
            let queue = try DatabaseQueue()
            try queue.write { db in
                try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT, b BLOB, flag INTEGER NOT NULL DEFAULT 0, UNIQUE (s))")
                try body(SQLiteConnection(db))
            }
        case .postgres:
            let sql = try PostgresConnection(url: try #require(Engine.postgresURL))
            let schema = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            try sql.execute("CREATE SCHEMA \(schema)", [])
            defer { _ = try? sql.execute("DROP SCHEMA \(schema) CASCADE", []) }
            try sql.execute("SET search_path TO \(schema)", [])
            try sql.execute("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, n BIGINT, s TEXT, b BYTEA, flag BIGINT NOT NULL DEFAULT 0, UNIQUE (s))", [])
            try body(sql)
        }
    }

    @Test(arguments: Engine.available) func valuesGoInAndComeBackOut(engine: Engine) throws {
        try connection(engine) { sql in
            #expect(try sql.execute("INSERT INTO t (n, s, b, flag) VALUES (?, ?, ?, ?)", Int64.max, "青岛 'quoted'", [UInt8]([0, 1, 255]), true) == 1)
            #expect(try sql.execute("INSERT INTO t (n, s, b, flag) VALUES (?, ?, ?, ?)", Int64.min, Optional<String>.none, [UInt8](), false) == 1)
            let rows = try sql.all("SELECT n, s, b, flag FROM t ORDER BY id") { row in
                (try row.int64(0), try row.optionalText(1), try row.optionalData(2), try row.bool(3))
            }
            #expect(rows.count == 2)
            #expect(rows[0].0 == Int64.max && rows[0].1 == "青岛 'quoted'" && rows[0].2 == Data([0, 1, 255]) && rows[0].3)
            // An empty byte array is stored as an empty blob, not as NULL.
            #expect(rows[1].0 == Int64.min && rows[1].1 == nil && rows[1].2 == Data() && !rows[1].3)
            #expect(try sql.int64("SELECT count(*) FROM t WHERE b IS NULL") == 0)
        }
    }

    /// A write's texts and blobs are bound where they lie in a buffer of the call's own, not
    /// copied by SQLite: what is stored is each call's values, and the statement SQLite keeps
    /// for the next call is left holding no pointer into a buffer that is gone.
    @Test func aWritesValuesAreItsOwnAndNotLeftBoundAfterIt() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, b BLOB)")
            let sql = SQLiteConnection(db)
            let insert = "INSERT INTO t (s, b) VALUES (?, ?)"
            let long = String(repeating: "青岛", count: 500)
            let values: [[SQLValue]] = [[.text(long), .bytes([1, 2, 3])], [.text(""), .bytes([])], [.text("short"), .null], [.null, .bytes(Array(repeating: 7, count: 5_000))],
                                        [.text("a\u{0}b"), .bytes([0])]]
            for row in values { #expect(try sql.execute(insert, row) == 1) }
            let back = try sql.all("SELECT s, b FROM t ORDER BY id") { row in
                [try row.optionalText(0).map { SQLValue.text($0) } ?? .null, try row.optionalData(1).map { SQLValue.bytes([UInt8]($0)) } ?? .null]
            }
            #expect(back == values)
            let handle = try db.cachedStatement(sql: insert).sqliteStatement
            let expanded = sqlite3_expanded_sql(handle)
            defer { sqlite3_free(expanded) }
            #expect(expanded.map { String(cString: $0) } == "INSERT INTO t (s, b) VALUES (NULL, NULL)")
            // A refused write leaves none bound either.
            #expect(throws: SQLError.self) { try sql.execute("INSERT INTO t (id, s) VALUES (?, ?)", [.integer(1), .text(long)]) }
            let refused = sqlite3_expanded_sql(try db.cachedStatement(sql: "INSERT INTO t (id, s) VALUES (?, ?)").sqliteStatement)
            defer { sqlite3_free(refused) }
            #expect(refused.map { String(cString: $0) } == "INSERT INTO t (id, s) VALUES (NULL, NULL)")
        }
    }

    @Test(arguments: Engine.available) func aNullWhereAValueIsExpectedIsAnErrorThatNamesTheColumnAndTheStatement(engine: Engine) throws {
        try connection(engine) { sql in
            try sql.execute("INSERT INTO t (n) VALUES (NULL)")
            do {
                _ = try sql.one("SELECT n FROM t") { try $0.int64(0) }
                Issue.record("a NULL was read as an integer")
            } catch let error as SQLError {
                #expect(error.kind == .column)
                #expect(error.message == "column 0 holds NULL, not an integer")
                #expect(error.sql == "SELECT n FROM t")
            }
        }
    }

    @Test(arguments: Engine.available) func constraintsAndWrongBindCountsAreRefusedWithTheirStatement(engine: Engine) throws {
        try connection(engine) { sql in
            try sql.execute("INSERT INTO t (s) VALUES (?)", "a")
            #expect(throws: SQLError.self) { try sql.execute("INSERT INTO t (s) VALUES (?)", "a") }
            do {
                try sql.execute("INSERT INTO t (s) VALUES (?)", "a")
            } catch let error as SQLError {
                #expect(error.kind == .constraint)
                #expect(error.sql == "INSERT INTO t (s) VALUES (?)")
            }
            do {
                try sql.execute("INSERT INTO t (s, n) VALUES (?, ?)", "b")
                Issue.record("a missing value was bound as NULL")
            } catch let error as SQLError {
                #expect(error.code == "bind")
            }
            // Upserts as both engines write them; the changed-row count is the engine's.
            #expect(try sql.execute("INSERT INTO t (s, n) VALUES (?, ?) ON CONFLICT (s) DO NOTHING", "a", 5) == 0)
            #expect(try sql.execute("INSERT INTO t (s, n) VALUES (?, ?) ON CONFLICT (s) DO UPDATE SET n = excluded.n", "a", 5) == 1)
            #expect(try sql.int64("SELECT n FROM t WHERE s = ?", ["a"]) == 5)
        }
    }

    /// 273 rows go as one statement of 256, one of 16 and one of 1: every row lands once,
    /// with its own values, a duplicate key is left out by the upsert's tail, and an
    /// update from a VALUES list touches exactly its rows.
    @Test(arguments: Engine.available) func manyRowsGoInAFewStatementsOfFixedSizes(engine: Engine) throws {
        try connection(engine) { sql in
            let rows: [[any SQLBindable]] = (0..<273).map { [Int64($0), "s\($0)"] }
            #expect(try sql.runRows("INSERT INTO t (n, s) VALUES", row: "(?, ?)", rows: rows) == 273)
            #expect(try sql.int("SELECT count(*) FROM t") == 273)
            #expect(try sql.int("SELECT sum(n) FROM t") == 273 * 272 / 2)
            #expect(try sql.texts("SELECT s FROM t WHERE n = 272") == ["s272"])
            // Two new rows and one already there (one statement of 2 rows, one of 1).
            #expect(try sql.runRows("INSERT INTO t (n, s) VALUES", row: "(?, ?)", "ON CONFLICT (s) DO NOTHING", rows: [[Int64(1_000), "s0"], [Int64(1_001), "x"], [Int64(1_002), "y"]]) == 2)
            #expect(try sql.int("SELECT n FROM t WHERE s = 's0'") == 0)
            let changed = try sql.runRows("UPDATE t SET n = v.column2, flag = 1 FROM (VALUES", row: "(?, CAST(? AS BIGINT))", ") AS v WHERE t.s = v.column1",
                                          rows: (0..<17).map { ["s\($0 * 2)", Int64(-$0)] })
            #expect(changed == 17)
            #expect(try sql.int("SELECT count(*) FROM t WHERE flag = 1") == 17)
            #expect(try sql.int("SELECT n FROM t WHERE s = 's32'") == -16)
            #expect(try sql.int("SELECT n FROM t WHERE s = 's33'") == 33)
            #expect(try sql.runRows("INSERT INTO t (n, s) VALUES", row: "(?, ?)", rows: []) == 0)
        }
    }

    /// `copyRows` writes every value as it was given, whatever it holds: COPY's text format
    /// (PostgreSQL 15, COPY, "Text Format") makes a backslash, tab, line feed and carriage
    /// return inside a value special, and `\N` the NULL marker, so each must be escaped; a
    /// text that reads `\N` is still a text. More rows than one CopyData message holds arrive
    /// whole. A row the table refuses (a repeated unique key, a row of the wrong width) writes
    /// nothing of the call, and the connection goes on.
    @Test(arguments: Engine.available) func rowsCopiedInComeBackAsTheyWereWhateverTheyHold(engine: Engine) throws {
        try connection(engine) { sql in
            let tricky = ["a\tb", "line\nnext", "cr\rlf\r\n", "back\\slash\\", "\\N", "\\.", "", "青岛 \u{1F600}", "tab\t\\t"]
            var rows: [[SQLValue]] = tricky.enumerated().map { [.integer(Int64($0.offset)), .text($0.element), .bytes([0, 92, 9, 255])] }
            rows.append([.integer(Int64.min), .null, .null])
            rows.append([.integer(Int64.max), .text("max"), .bytes([])])
            // About 200 KiB more: several messages of 64 KiB.
            rows += (0..<3_000).map { [.integer(Int64(100 + $0)), .text("row \($0) " + String(repeating: "x", count: 60)), .null] }
            #expect(try sql.copyRows(into: "t", columns: ["n", "s", "b"], rows: rows) == rows.count)
            let back = try sql.all("SELECT n, s, b FROM t WHERE n < 100 OR n = ? ORDER BY n", [Int64.max]) { row in
                [SQLValue.integer(try row.int64(0)), try row.optionalText(1).map { .text($0) } ?? .null, try row.optionalData(2).map { .bytes([UInt8]($0)) } ?? .null]
            }
            #expect(back == [rows[tricky.count]] + rows[..<tricky.count] + [rows[tricky.count + 1]])
            #expect(try sql.int("SELECT count(*) FROM t") == rows.count)
            #expect(try sql.int64("SELECT sum(n) FROM t WHERE n >= 100 AND n < ?", [Int64.max]) == (0..<3_000).reduce(0) { $0 + 100 + Int64($1) })
            #expect(try sql.int("SELECT count(*) FROM t WHERE s IS NULL") == 1)

            // "max" is there already: none of these three is written.
            let refused = #expect(throws: SQLError.self) {
                try sql.copyRows(into: "t", columns: ["n", "s"], rows: [[.integer(-1), .text("new")], [.integer(-2), .text("max")], [.integer(-3), .text("newer")]])
            }
            #expect(refused?.kind == .constraint)
            #expect(throws: SQLError.self) {
                try sql.copyRows(into: "t", columns: ["n", "s"], rows: [[.integer(-4), .text("fine")], [.integer(-5)]])
            }
            #expect(try sql.int("SELECT count(*) FROM t WHERE n BETWEEN -9 AND -1") == 0)
            #expect(try sql.copyRows(into: "t", columns: ["n", "s"], rows: []) == 0)
            #expect(try sql.copyRows(into: "t", columns: ["n", "s"], rows: [[.integer(-6), .text("after")]]) == 1)
            #expect(try sql.int("SELECT count(*) FROM t") == rows.count + 1)
        }
    }

    /// A COPY that qdwallet ends itself (a row of the wrong width) is reported by the server as
    /// a cancel (SQLSTATE 57014, which a lock or statement timeout also gives): the transaction
    /// around it is still a refusal, run once, not a conflict worth running again.
    @Test(.enabled(if: Engine.postgresURL != nil)) func aCopyEndedForAWrongRowIsNotRunAgain() throws {
        let database = try PostgresDatabase.inNewSchema(url: try #require(Engine.postgresURL), prefix: "c", migrations: [SQLMigration("t", "CREATE TABLE t (n BIGINT, s TEXT)")])
        defer { try? database.dropSchema() }
        var runs = 0
        let refused = #expect(throws: SQLError.self) {
            try database.write { sql in
                runs += 1
                _ = try sql.copyRows(into: "t", columns: ["n", "s"], rows: [[.integer(1), .text("a")], [.integer(2)]])
            }
        }
        #expect(refused?.code == "copy")
        #expect(runs == 1)
        #expect(try database.read { try $0.int("SELECT count(*) FROM t") } == 0)
    }

    /// 141 ids (and a repeated one) read in groups of 128, 8 and 1: each id's row comes
    /// back once, with the binds before and after the list in their places; a correlated
    /// count over a VALUES list (the monitoring's form) answers for every id asked.
    @Test(arguments: Engine.available) func aListOfIdsIsReadInGroupsOfFixedSizes(engine: Engine) throws {
        try connection(engine) { sql in
            _ = try sql.runRows("INSERT INTO t (n, s) VALUES", row: "(?, ?)", rows: (0..<300).map { [Int64($0), "s\($0)"] })
            var seen: [Int64: String] = [:]
            var rows = 0
            let ids = (0..<141).map { Int64($0 * 2) } + [4]
            try sql.forEachRow("SELECT n, s FROM t WHERE n >= ? AND n IN ({ids}) AND n < ?", ids: ids, before: [Int64(2)], after: [Int64(250)]) { row in
                seen[try row.int64(0)] = try row.text(1)
                rows += 1
            }
            // 0 is under the lower bound; 250 and above over the upper one.
            #expect(rows == 124 && seen.count == 124)
            #expect(seen[2] == "s2" && seen[248] == "s248" && seen[0] == nil && seen[250] == nil && seen[3] == nil)
            var counts: [Int64: Int] = [:]
            try sql.forEachRow("SELECT w.column1, (SELECT count(*) FROM (SELECT 1 FROM t WHERE t.n < w.column1 LIMIT ?) AS c) FROM (VALUES {ids}) AS w",
                               ids: [3, 10, 500], mark: "(CAST(? AS BIGINT))", before: [Int64(50)], group: 64) { row in
                counts[try row.int64(0)] = try row.int(1)
            }
            #expect(counts == [3: 3, 10: 10, 500: 50])
            var none = 0
            try sql.forEachRow("SELECT n FROM t WHERE n IN ({ids})", ids: []) { _ in none += 1 }
            #expect(none == 0)
        }
    }

    @Test(arguments: Engine.available) func aQueryStopsWhenTheReaderSaysSo(engine: Engine) throws {
        try connection(engine) { sql in
            for index in 1...10 { try sql.execute("INSERT INTO t (n) VALUES (?)", index) }
            var seen: [Int64] = []
            try sql.query("SELECT n FROM t ORDER BY n", []) { row in
                seen.append(try row.int64(0))
                return seen.count < 3
            }
            #expect(seen == [1, 2, 3])
            // The statement was reset: it runs again from the start.
            #expect(try sql.one("SELECT n FROM t ORDER BY n", []) { try $0.int64(0) } == 1)
        }
    }

    /// Queries sent ahead (libpq pipeline mode on PostgreSQL, PostgreSQL 15, 34.5; run at once
    /// on SQLite) answer in order, each seeing what was sent before it, in one round trip; a
    /// refused one throws its error, and one sent after it, which the server never ran,
    /// throws too instead of answering no rows.
    @Test(arguments: Engine.available) func queriesSentAheadAnswerInOrderAndAFailureIsNeverNoRows(engine: Engine) throws {
        try connection(engine) { sql in
            let insert = "INSERT INTO t (s) VALUES (?) RETURNING id"
            // A statement prepared for the first time waits for what was sent before it
            // (`PQprepare` is not pipelined): these are prepared first.
            for text in ["INSERT INTO t (n) VALUES (?)", "SELECT n FROM t ORDER BY n", "UPDATE t SET n = n * 10", "SELECT sum(n) FROM t", "SELECT n FROM t WHERE n = 7",
                         insert, "SELECT count(*) FROM t"] {
                _ = try sql.prepare(text)
            }
            for index in 1...3 { try sql.send("INSERT INTO t (n) VALUES (?)", index) }
            let before = try sql.sendAll("SELECT n FROM t ORDER BY n") { try $0.int64(0) }
            try sql.send("UPDATE t SET n = n * 10")
            let sum = try sql.sendOne("SELECT sum(n) FROM t") { try $0.int64(0) }
            let none = try sql.sendOne("SELECT n FROM t WHERE n = 7") { try $0.int64(0) }
            if engine == .postgres { #expect((sql as? PostgresConnection)?.unansweredStatements == 7) }
            #expect(try sum.get() == 60)
            if engine == .postgres { #expect((sql as? PostgresConnection)?.unansweredStatements == 0) }
            #expect(try before.get() == [1, 2, 3])
            #expect(try none.get() == nil)
            #expect(try sum.map { $0.map { $0 / 10 } }.get() == 6)

            var refused: SQLError?
            var second: SQLPending<Int64?>?
            var after: SQLPending<Int64?>?
            do {
                _ = try sql.sendOne(insert, ["once"]) { try $0.int64(0) }
                second = try sql.sendOne(insert, ["once"]) { try $0.int64(0) }
                after = try sql.sendOne("SELECT count(*) FROM t") { try $0.int64(0) }
                _ = try after?.get()
                Issue.record("a duplicate key was accepted")
            } catch let error as SQLError {
                refused = error
            }
            #expect(refused?.kind == .constraint)
            #expect(refused?.sql == insert)
            if engine == .postgres {
                // Sent, then refused at the sync: each pending query keeps its error.
                let own = #expect(throws: SQLError.self) { try second?.get() }
                #expect(own?.kind == .constraint)
                #expect(throws: SQLError.self) { try after?.get() }
            } else {
                #expect(second == nil)
            }
            // The connection goes on.
            #expect(try sql.int64("SELECT count(*) FROM t WHERE n IS NOT NULL") == 3)
        }
    }

    /// PostgreSQL numbers its placeholders; the stores write SQLite's. Text inside quotes is
    /// never touched.
    @Test(arguments: [
        ("SELECT 1", "SELECT 1"),
        ("a = ? AND b = ?", "a = $1 AND b = $2"),
        ("a = ?1 OR b = ?1 OR c = ?2", "a = $1 OR b = $1 OR c = $2"),
        ("x = '?' AND y = ? AND \"q?\" = ?", "x = '?' AND y = $1 AND \"q?\" = $2"),
        ("v = 'it''s ?' AND w = ?", "v = 'it''s ?' AND w = $1"),
    ])
    func placeholdersAreNumberedForPostgres(sql: String, expected: String) {
        #expect(SQLDialect.postgres.translate(sql) == expected)
        #expect(SQLDialect.sqlite.translate(sql) == sql)
    }

    @Test func aSerializationFailureRunsTheWholeTransactionAgainAFewTimesOnly() throws {
        var runs = 0
        let value = try SQLRetry.run(attempts: 3) { () -> Int in
            runs += 1
            if runs < 3 { throw SQLError(.serialization, code: "40001", message: "could not serialize access", sql: "UPDATE") }
            return 7
        }
        #expect(value == 7 && runs == 3)
        runs = 0
        #expect(throws: SQLError.self) {
            try SQLRetry.run(attempts: 3) { () -> Int in
                runs += 1
                throw SQLError(.serialization, code: "40001", message: "could not serialize access", sql: "UPDATE")
            }
        }
        #expect(runs == 3)
        runs = 0
        // A refusal is not retried.
        #expect(throws: SQLError.self) {
            try SQLRetry.run { () -> Int in
                runs += 1
                throw SQLError(.constraint, code: "23505", message: "duplicate key", sql: "INSERT")
            }
        }
        #expect(runs == 1)
    }
}

/// The text forms values travel in to and from PostgreSQL, written and read as bytes
/// (`PostgresText`): each as the server reads it (PostgreSQL 15: "Numeric Types" for the
/// integers' decimal form, COPY "Text Format" for COPY's escapes, "Array Value Input" for an
/// array element's quoting) and as Swift's own conversions spell it.
@Suite struct PostgresTextTests {
    static let integers: [Int64] = [0, 1, -1, 7, -7, 9, 10, -10, 99, 100, 1_000_000, 123_456_789_012, -987_654_321,
                                    Int64.max, Int64.max - 1, Int64.min, Int64.min + 1]
        + (0..<19).map { power(10, $0) } + (1..<19).map { -power(10, $0) + 1 }

    static func power(_ base: Int64, _ exponent: Int) -> Int64 { (0..<exponent).reduce(1) { product, _ in product * base } }

    @Test func integersAreWrittenInDecimalAsSwiftSpellsThem() {
        for value in Self.integers {
            var buffer: [UInt8] = [UInt8(ascii: "x")]
            PostgresText.appendDecimal(value, to: &buffer)
            #expect(String(decoding: buffer, as: UTF8.self) == "x" + String(value), "\(value)")
        }
        #expect(PostgresText.integerList([1, -2, Int64.min], braces: true) == "{1,-2,-9223372036854775808}")
        #expect(PostgresText.integerList([1, -2, 30], braces: false) == "1,-2,30")
        #expect(PostgresText.integerList([], braces: true) == "{}")
        #expect(PostgresText.integerList([], braces: false) == "")
    }

    @Test func integersAreReadFromTheServersDigitsAndNothingElse() {
        func read(_ text: String) -> Int64? { Array(text.utf8).withUnsafeBytes { PostgresText.integer($0) } }
        for value in Self.integers {
            #expect(read(String(value)) == value, "\(value)")
        }
        #expect(read("-0") == 0)
        #expect(read("007") == 7)
        // Outside Int64, or not an integer as the server writes one: nil, and the value is
        // then kept as text.
        for text in ["9223372036854775808", "-9223372036854775809", "99999999999999999999", "", "-", "--1", "1.5", "12a", " 1", "1 ", "+5", "1e3", "٣"] {
            #expect(read(text) == nil, "\(text)")
        }
    }

    @Test func textsAreCopiedWholeAndEscapedWhereTheirFormSaysSo() {
        func copyText(_ text: String) -> String {
            var buffer: [UInt8] = []
            PostgresText.appendCopyText(text, to: &buffer)
            return String(decoding: buffer, as: UTF8.self)
        }
        func element(_ text: String) -> String {
            var buffer: [UInt8] = []
            PostgresText.appendArrayElement(text, to: &buffer)
            return String(decoding: buffer, as: UTF8.self)
        }
        var plain: [UInt8] = [1]
        PostgresText.appendUTF8("青岛 \u{1F600} 'q'", to: &plain)
        #expect(plain == [1] + Array("青岛 \u{1F600} 'q'".utf8))
        PostgresText.appendUTF8("", to: &plain)
        #expect(plain.count == 1 + "青岛 \u{1F600} 'q'".utf8.count)

        #expect(copyText("plain 青岛") == "plain 青岛")
        #expect(copyText("") == "")
        #expect(copyText("a\tb\\c\nd\re") == "a\\tb\\\\c\\nd\\re")
        #expect(copyText("\\N") == "\\\\N")
        #expect(copyText("\t\t") == "\\t\\t")
        #expect(copyText("end\\") == "end\\\\")

        #expect(element("plain") == "\"plain\"")
        #expect(element("") == "\"\"")
        #expect(element("a\"b\\c,{}NULL") == "\"a\\\"b\\\\c,{}NULL\"")
        #expect(element("\"") == "\"\\\"\"")
        #expect(element("青岛\\") == "\"青岛\\\\\"")
    }

    /// The same forms read back by a server: an array of texts that need every escape, and of
    /// the integers at Int64's ends, come back element for element.
    @Test(.enabled(if: Engine.postgresURL != nil)) func theServerReadsTheFormsBackAsTheyWereWritten() throws {
        let sql = try PostgresConnection(url: try #require(Engine.postgresURL))
        let texts = ["plain", "", "a\"b", "back\\slash\\", "{brace},comma", "NULL", "青岛 \u{1F600}", " spaced ", "tab\there"]
        var literal: [UInt8] = [UInt8(ascii: "{")]
        for (index, text) in texts.enumerated() {
            if index > 0 { literal.append(UInt8(ascii: ",")) }
            PostgresText.appendArrayElement(text, to: &literal)
        }
        literal.append(UInt8(ascii: "}"))
        let back = try sql.all("SELECT x FROM unnest(?::text[]) WITH ORDINALITY AS u(x, i) ORDER BY i", [SQLValue.text(String(decoding: literal, as: UTF8.self))]) { try $0.text(0) }
        #expect(back == texts)
        let numbers = try sql.all("SELECT x FROM unnest(?::bigint[]) WITH ORDINALITY AS u(x, i) ORDER BY i", [SQLValue.text(PostgresText.integerList(Self.integers, braces: true))]) { try $0.int64(0) }
        #expect(numbers == Self.integers)
        // Read as integers from each of the server's integer types, and a sum (numeric).
        #expect(try sql.one("SELECT ?::bigint, (-32768)::smallint, (-2147483648)::integer, sum(x) FROM (VALUES (9223372036854775807::bigint), (-1::bigint)) v(x)", [SQLValue.integer(Int64.min)]) { row in
            [try row.int64(0), try row.int64(1), try row.int64(2), try row.int64(3)]
        } == [Int64.min, -32768, -2147483648, Int64.max - 1])
    }
}
