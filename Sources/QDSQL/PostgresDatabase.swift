import CLibPQ
import Foundation

/// PostgreSQL as an `SQLDatabase`: a small pool of sessions to one server. A write is one
/// READ COMMITTED transaction (the stores take the row locks their invariants need); a
/// transaction the server aborts to stay consistent (40001 serialization failure, 40P01
/// deadlock) or that waited past `lock_timeout` is run again whole by `SQLRetry`, a bounded
/// number of times. A read is one REPEATABLE READ READ ONLY transaction: a snapshot, as a
/// WAL reader has on SQLite.
public final class PostgresDatabase: SQLDatabase, @unchecked Sendable {
    public struct Options: Sendable {
        public var connectTimeoutSeconds = 10
        public var statementTimeoutMillis = 60_000
        public var lockTimeoutMillis = 10_000
        /// Sessions kept open between transactions.
        public var idleMax = 4
        /// How many times a transaction runs at most (the first run included).
        public var attempts = SQLRetry.attemptsDefault
        /// The schema the sessions use (nil: the server's search path).
        public var schema: String?
        /// Writers take turns, as on SQLite: every write transaction first takes one
        /// transaction-scoped advisory lock. Off by default: the stores take the row locks
        /// their invariants need (README, "PostgreSQL: many writers"); on, for a comparison
        /// or a deployment that wants one writer at a time. Reads never wait for it.
        public var serializedWrites = false

        public init() {}
    }

    public let url: String
    public let options: Options
    public var dialect: SQLDialect { .postgres }
    private let lock = NSLock()
    private var idle: [PostgresConnection] = []

    /// Closes the idle sessions (before the schema they use is dropped).
    func closeIdle() {
        lock.withLock { idle.removeAll() }
    }

    /// Connects once, so that a wrong URL, a server that is down or a refused login fails
    /// here, with the URL (its password hidden) in the message.
    public init(url: String, options: Options = Options()) throws {
        self.url = url
        self.options = options
        let first = try open()
        idle.append(first)
    }

    func open() throws -> PostgresConnection {
        try PostgresConnection(url: url, connectTimeoutSeconds: options.connectTimeoutSeconds,
                               statementTimeoutMillis: options.statementTimeoutMillis, lockTimeoutMillis: options.lockTimeoutMillis, schema: options.schema)
    }

    /// A session of the pool for the length of `body`; put back only when it is idle and
    /// healthy.
    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        let taken: PostgresConnection? = lock.withLock { idle.popLast() }
        let connection = try taken ?? open()
        let result = try body(connection)
        // Writes sent without waiting outside a transaction: their answers before the
        // session goes back.
        try connection.settle()
        if PQstatus(connection.handle) == CONNECTION_OK, PQtransactionStatus(connection.handle) == PQTRANS_IDLE {
            lock.withLock {
                if idle.count < options.idleMax { idle.append(connection) }
            }
        }
        return result
    }

    /// The advisory lock key of the writers' turn (any constant; "qdwallet" in ASCII).
    public static let writersLock: Int64 = 0x7164_7761_6C6C_6574

    public func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try transaction("BEGIN ISOLATION LEVEL READ COMMITTED") { connection in
            if options.serializedWrites {
                // Waits at most lock_timeout, then fails as busy (and is retried).
                try connection.execute("SELECT pg_advisory_xact_lock(?)", [.integer(Self.writersLock)])
            }
            return try body(connection)
        }
    }

    /// A SERIALIZABLE transaction, for an invariant no row lock covers; run again whole
    /// after a serialization failure.
    public func serializable<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try transaction("BEGIN ISOLATION LEVEL SERIALIZABLE") { try body($0) }
    }

    public func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { try body($0) }
    }

    /// Each statement in its own implicit transaction (autocommit). A session that `body`
    /// left inside a transaction is not pooled again.
    public func readEach<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try withConnection { try body($0) }
    }

    /// Runs one transaction, again whole (after a short random pause) when the server refused
    /// one of its statements for a conflict with another transaction: a serialization failure,
    /// a deadlock, a lock wait past `lock_timeout`. The retry is decided by what the server
    /// said, not by the error the body made of it (a store may wrap it in its own), and is
    /// bounded by `options.attempts`; the last attempt's error is thrown as it is.
    func transaction<T>(_ begin: String, _ body: (PostgresConnection) throws -> T) throws -> T {
        var attempt = 1
        while true {
            var retryable = false
            do {
                return try withConnection { connection in
                    connection.sawRetryableFailure = false
                    try connection.begin(begin)
                    do {
                        let result = try body(connection)
                        try connection.execute("COMMIT", [])
                        return result
                    } catch {
                        retryable = connection.sawRetryableFailure
                        if PQtransactionStatus(connection.handle) != PQTRANS_IDLE {
                            _ = try? connection.execute("ROLLBACK", [])
                        }
                        throw error
                    }
                }
            } catch let error as SQLError where error.isRetryable && attempt < options.attempts {
                retryable = true
            } catch _ where retryable && attempt < options.attempts {
            }
            attempt += 1
            // Two transactions that collided should not collide again at once.
            usleep(UInt32.random(in: 500...(2_000 * UInt32(attempt))))
        }
    }
}
