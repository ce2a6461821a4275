import GRDB

/// A database of one engine as the services use it: a write transaction or a read snapshot,
/// each handing out one connection for the stores. The transaction model is the engine's and
/// lives in its implementation, never in a store:
/// - SQLite (`SQLitePool`): one writer at a time (`BEGIN IMMEDIATE`, waiting up to the busy
///   timeout for the lock), so a transaction sees and changes a database nobody else writes;
///   readers see the last commit (WAL snapshots).
/// - PostgreSQL: READ COMMITTED with row locks taken by the stores (each statement sees the
///   latest commits), run again whole after a conflict the server reports.
public protocol SQLDatabase: AnyObject, Sendable {
    var dialect: SQLDialect { get }
    /// Runs `body` in one write transaction: committed when it returns, rolled back when it
    /// throws.
    func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T
    /// Runs `body` in one read-only snapshot.
    func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T
    /// Runs reads that need no one snapshot (each sees what was committed when it began)
    /// without a transaction around them: on PostgreSQL each statement is one round trip,
    /// with no BEGIN and COMMIT beside it. `body` only reads.
    func readEach<T>(_ body: (any SQLConnection) throws -> T) throws -> T
}

extension SQLDatabase {
    /// One snapshot costs nothing more here.
    public func readEach<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try read(body)
    }
}

/// SQLite through GRDB's pool: WAL, one writer, many readers.
public final class SQLitePool: SQLDatabase {
    public let pool: DatabasePool

    public init(_ pool: DatabasePool) { self.pool = pool }

    public var dialect: SQLDialect { .sqlite }

    public func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try pool.writeWithoutTransaction { db in
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(SQLiteConnection(db))
                return .commit
            }
            guard let result else { throw SQLError(.other, code: "transaction", message: "the write transaction ended without a result", sql: "COMMIT") }
            return result
        }
    }

    public func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try pool.read { db in try body(SQLiteConnection(db)) }
    }
}

extension SQLConnection {
    /// Runs `body` inside a savepoint of the current transaction: what it wrote is kept when
    /// it returns and undone when it throws, the transaction going on either way. Both
    /// engines take the same statements.
    public func savepoint<T>(_ name: String = "qdwallet", _ body: () throws -> T) throws -> T {
        try execute("SAVEPOINT \(name)", [])
        do {
            let result = try body()
            try execute("RELEASE SAVEPOINT \(name)", [])
            return result
        } catch {
            try execute("ROLLBACK TO SAVEPOINT \(name)", [])
            try execute("RELEASE SAVEPOINT \(name)", [])
            throw error
        }
    }
}
