import Foundation
import QDSQL
import Synchronization
import Testing

/// The PostgreSQL engine of the SQL layer against a real server: transactions, the retry of
/// a serialization failure, lock waits that end, and connection errors that never show a
/// password.
@Suite(.serialized, .enabled(if: Engine.postgresURL != nil))
struct PostgresEngineTests {
    /// A schema of its own on the server, with one table, dropped afterwards.
    func withSchema(_ body: (String, String) throws -> Void) throws {
        let url = try #require(Engine.postgresURL)
        let admin = try PostgresConnection(url: url)
        let schema = "e_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try admin.execute("CREATE SCHEMA \(schema)", [])
        defer { _ = try? admin.execute("DROP SCHEMA \(schema) CASCADE", []) }
        try admin.execute("CREATE TABLE \(schema).accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)", [])
        try admin.execute("INSERT INTO \(schema).accounts VALUES (1, 100), (2, 0)", [])
        try body(url, schema)
    }

    func database(_ url: String, _ schema: String, lockTimeoutMillis: Int = 10_000) throws -> PostgresDatabase {
        var options = PostgresDatabase.Options()
        options.schema = schema
        options.lockTimeoutMillis = lockTimeoutMillis
        return try PostgresDatabase(url: url, options: options)
    }

    @Test func aWriteCommitsWhenItReturnsAndLeavesNothingWhenItThrows() throws {
        try withSchema { url, schema in
            let database = try database(url, schema)
            try database.write { sql in
                try sql.execute("UPDATE accounts SET balance = balance - 30 WHERE id = 1")
                try sql.execute("UPDATE accounts SET balance = balance + 30 WHERE id = 2")
            }
            struct Refused: Error {}
            #expect(throws: Refused.self) {
                try database.write { sql in
                    try sql.execute("UPDATE accounts SET balance = balance - 50 WHERE id = 1")
                    throw Refused()
                }
            }
            let balances = try database.read { sql in try sql.int64s("SELECT balance FROM accounts ORDER BY id") }
            #expect(balances == [70, 30])
        }
    }

    /// `readEach` runs each statement in its own implicit transaction (PostgreSQL 15, 3.4:
    /// a statement outside BEGIN is a transaction of its own), so a later statement sees a
    /// commit made after an earlier one; `read` keeps one snapshot and does not.
    @Test func readEachSeesEachStatementsOwnStateAndReadOneSnapshot() throws {
        try withSchema { url, schema in
            let database = try database(url, schema)
            let other = try PostgresConnection(url: url, schema: schema)
            let each = try database.readEach { sql -> [Int64] in
                let before = try sql.int64("SELECT balance FROM accounts WHERE id = 1") ?? -1
                try other.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1", [])
                return [before, try sql.int64("SELECT balance FROM accounts WHERE id = 1") ?? -1]
            }
            #expect(each == [100, 101])
            let snapshot = try database.read { sql -> [Int64] in
                let before = try sql.int64("SELECT balance FROM accounts WHERE id = 1") ?? -1
                try other.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1", [])
                return [before, try sql.int64("SELECT balance FROM accounts WHERE id = 1") ?? -1]
            }
            #expect(snapshot == [101, 101])
        }
    }

    /// A SERIALIZABLE transaction whose row another session changed after its snapshot gets
    /// SQLSTATE 40001 (PostgreSQL 15, 13.2.3); it is run again, whole, and then sees the change.
    @Test func aSerializationFailureIsRunAgainWholeOnAFreshSnapshot() throws {
        try withSchema { url, schema in
            let database = try database(url, schema)
            let other = try PostgresConnection(url: url, schema: schema)
            var runs = 0
            let seen = try database.serializable { sql -> Int64 in
                runs += 1
                let balance = try sql.int64("SELECT balance FROM accounts WHERE id = 1") ?? -1
                if runs == 1 {
                    // Another session commits a change to the same row after this snapshot.
                    try other.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1")
                }
                try sql.execute("UPDATE accounts SET balance = ? WHERE id = 1", balance + 10)
                return balance
            }
            #expect(runs == 2)
            #expect(seen == 101)
            #expect(try database.read { try $0.int64("SELECT balance FROM accounts WHERE id = 1") } == 111)
        }
    }

    /// A wait for a row lock another session holds ends at lock_timeout (SQLSTATE 55P03) as a
    /// busy error, never a hang.
    @Test(.timeLimit(.minutes(1))) func aLockWaitEndsAtTheLockTimeout() throws {
        try withSchema { url, schema in
            let holder = try PostgresConnection(url: url, schema: schema)
            try holder.execute("BEGIN", [])
            try holder.execute("SELECT balance FROM accounts WHERE id = 1 FOR UPDATE")
            defer { _ = try? holder.execute("ROLLBACK", []) }
            var options = PostgresDatabase.Options()
            options.schema = schema
            options.lockTimeoutMillis = 200
            options.attempts = 2
            let waiting = try PostgresDatabase(url: url, options: options)
            let started = Date()
            do {
                _ = try waiting.write { sql in try sql.execute("UPDATE accounts SET balance = 0 WHERE id = 1") }
                Issue.record("the update did not wait for the lock")
            } catch let error as SQLError {
                #expect(error.kind == .busy)
                #expect(error.code == "SQLSTATE 55P03")
            }
            // Two attempts of 200 ms each, not the statement timeout.
            #expect(Date().timeIntervalSince(started) < 5)
        }
    }

    @Test func aServerThatIsNotThereIsAClearErrorThatHidesThePassword() throws {
        do {
            _ = try PostgresDatabase(url: "postgres://qdwallet:s3cret-pw@127.0.0.1:1/qdwallet?connect_timeout=2")
            Issue.record("connected to a closed port")
        } catch let error as SQLError {
            #expect(error.kind == .unavailable)
            #expect(!error.message.contains("s3cret-pw"))
            #expect(error.message.contains("postgres://qdwallet:***@127.0.0.1:1/qdwallet"))
        }
    }

    /// Inside a transaction a cursor is the server's (pg_cursors lists it) and is read a
    /// batch at a time: two of them interleave, each sees every row once and in order.
    @Test func cursorsInATransactionStreamFromTheServer() throws {
        try withSchema { url, schema in
            let database = try database(url, schema)
            _ = try database.write { sql in
                try sql.execute("INSERT INTO accounts (id, balance) SELECT n, n * 10 FROM generate_series(3, 5001) AS n")
            }
            let (first, second, open) = try database.read { sql -> ([Int64], [Int64], Int) in
                let a = try sql.cursor("SELECT id FROM accounts WHERE id >= ? ORDER BY id", [.integer(1)])
                let b = try sql.cursor("SELECT balance FROM accounts ORDER BY id DESC", [])
                var ids: [Int64] = [], balances: [Int64] = []
                var open = 0
                while let row = try a.next() {
                    ids.append(try row.int64(0))
                    if let other = try b.next() { balances.append(try other.int64(0)) }
                    if ids.count == 10 { open = try sql.int("SELECT count(*) FROM pg_cursors WHERE name LIKE 'qdwallet_cursor_%'") ?? 0 }
                }
                while let other = try b.next() { balances.append(try other.int64(0)) }
                return (ids, balances, open)
            }
            #expect(open == 2)
            #expect(first == Array(1...5001))
            #expect(second.count == 5001)
            #expect(second.first == 50_010 && second.last == 100)
        }
    }

    /// Prepares the statements a test sends (a statement prepared for the first time in a
    /// session waits for what was sent before it: `PQprepare` is not pipelined), and waits
    /// for what the transaction sent so far.
    func prepare(_ sql: any SQLConnection) throws {
        for text in ["UPDATE accounts SET balance = balance - 30 WHERE id = 1", "UPDATE accounts SET balance = balance + 30 WHERE id = 2",
                     "INSERT INTO accounts (id, balance) VALUES (1, 5)", "UPDATE accounts SET balance = 0 WHERE id = 2"] {
            _ = try sql.prepare(text)
        }
        // And the transaction's BEGIN, sent without waiting, answered.
        #expect(try sql.int64("SELECT 1") == 1)
    }

    /// Writes sent without waiting (libpq pipeline mode, PostgreSQL 15, 34.5) run in order
    /// and are answered together with the next statement that waits: a read in the same
    /// transaction sees them, and more of them than the pipeline's depth go in several syncs.
    @Test func writesSentWithoutWaitingAreAnsweredWithTheNextStatementThatWaits() throws {
        try withSchema { url, schema in
            let database = try database(url, schema)
            let seen = try database.write { sql -> [Int64] in
                let connection = try #require(sql as? PostgresConnection)
                try prepare(sql)
                try sql.send("UPDATE accounts SET balance = balance - 30 WHERE id = 1")
                try sql.send("UPDATE accounts SET balance = balance + 30 WHERE id = 2")
                #expect(connection.unansweredStatements == 2)
                let balances = try sql.int64s("SELECT balance FROM accounts ORDER BY id")
                #expect(connection.unansweredStatements == 0)
                for _ in 0..<150 { try sql.send("UPDATE accounts SET balance = balance + 1 WHERE id = 2") }
                #expect(connection.unansweredStatements < 150)
                return balances
            }
            #expect(seen == [70, 30])
            #expect(try database.read { try $0.int64s("SELECT balance FROM accounts ORDER BY id") } == [70, 180])
        }
    }

    /// A sent write the server refuses fails the next statement that waits (with the refused
    /// statement named), and the transaction leaves nothing; the session is whole afterwards.
    @Test func aSentWriteThatIsRefusedFailsTheNextStatementThatWaits() throws {
        try withSchema { url, schema in
            var options = PostgresDatabase.Options()
            options.schema = schema
            options.attempts = 1
            let database = try PostgresDatabase(url: url, options: options)
            var readAfter = false
            do {
                try database.write { sql in
                    try prepare(sql)
                    try sql.send("UPDATE accounts SET balance = balance - 30 WHERE id = 1")
                    try sql.send("INSERT INTO accounts (id, balance) VALUES (1, 5)")
                    try sql.send("UPDATE accounts SET balance = balance + 30 WHERE id = 2")
                    #expect((sql as? PostgresConnection)?.unansweredStatements == 3)
                    _ = try sql.int64s("SELECT balance FROM accounts ORDER BY id")
                    readAfter = true
                }
                Issue.record("a duplicate key was accepted")
            } catch let error as SQLError {
                #expect(error.kind == .constraint)
                #expect(error.code == "SQLSTATE 23505")
                #expect(error.sql.hasPrefix("INSERT INTO accounts"))
            }
            #expect(!readAfter)
            #expect(try database.read { try $0.int64s("SELECT balance FROM accounts ORDER BY id") } == [100, 0])
            // Refused at COMMIT when nothing waited before it.
            #expect(throws: SQLError.self) {
                try database.write { sql in
                    try sql.send("UPDATE accounts SET balance = balance - 30 WHERE id = 1")
                    try sql.send("INSERT INTO accounts (id, balance) VALUES (1, 5)")
                }
            }
            // A transaction that throws its own error with a refused write unanswered: the
            // caller's error, and the rollback.
            struct Refused: Error {}
            #expect(throws: Refused.self) {
                try database.write { sql in
                    try prepare(sql)
                    try sql.send("INSERT INTO accounts (id, balance) VALUES (1, 5)")
                    try sql.send("UPDATE accounts SET balance = 0 WHERE id = 2")
                    #expect((sql as? PostgresConnection)?.unansweredStatements == 2)
                    throw Refused()
                }
            }
            try database.write { sql in try sql.send("UPDATE accounts SET balance = balance + 1 WHERE id = 2") }
            #expect(try database.read { try $0.int64s("SELECT balance FROM accounts ORDER BY id") } == [100, 1])
        }
    }

    /// A refused write sent inside a savepoint is undone with it (PostgreSQL 15, ROLLBACK TO
    /// SAVEPOINT); what was sent before and after the savepoint commits.
    @Test func aSentWriteRefusedInsideASavepointUndoesOnlyTheSavepoint() throws {
        try withSchema { url, schema in
            let database = try database(url, schema)
            try database.write { sql in
                try prepare(sql)
                try sql.send("UPDATE accounts SET balance = balance - 30 WHERE id = 1")
                let inner: Void? = try? sql.savepoint {
                    try sql.send("UPDATE accounts SET balance = balance + 30 WHERE id = 2")
                    try sql.send("INSERT INTO accounts (id, balance) VALUES (1, 5)")
                }
                #expect(inner == nil)
                try sql.send("UPDATE accounts SET balance = balance + 30 WHERE id = 2")
            }
            #expect(try database.read { try $0.int64s("SELECT balance FROM accounts ORDER BY id") } == [70, 30])
        }
    }

    @Test func placeholdersAndRowsCountAsOnSQLite() throws {
        try withSchema { url, schema in
            let database = try database(url, schema)
            let changed = try database.write { sql in
                try sql.execute("INSERT INTO accounts (id, balance) VALUES (?, ?), (?, ?) ON CONFLICT (id) DO NOTHING", 2, 5, 3, 7)
            }
            #expect(changed == 1)
            let ids = try database.read { sql in try sql.int64s("SELECT id FROM accounts WHERE balance >= ?1 AND id <> ?2 ORDER BY id", [Int64(7), Int64(1)]) }
            #expect(ids == [3])
        }
    }
}
