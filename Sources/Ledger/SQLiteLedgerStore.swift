import GRDB
import QDSQL
import Synchronization

/// The ledger's store on SQLite (through GRDB's connection management): the embedded
/// default. Its SQL is in `LedgerSession`, shared with the server engine; what is SQLite's own
/// here is the connection pool and the transaction model (one immediate transaction a write).
public final class SQLiteLedgerStore: LedgerStore {
    /// The database, shared with the modules that write in the same transactions.
    public let pool: DatabasePool

    /// Called inside every write transaction, just before it commits (an audit trail that
    /// must commit with the change it records). Set once, before the store is used.
    private let beforeCommit = Mutex<(@Sendable (Database) throws -> Void)?>(nil)

    public init(pool: DatabasePool) {
        self.pool = pool
    }

    /// Installs the hook every write transaction calls before it commits.
    public func setBeforeCommit(_ hook: (@Sendable (Database) throws -> Void)?) {
        beforeCommit.withLock { $0 = hook }
    }

    /// Opens a database holding only the ledger's schema (tests, benchmarks).
    public convenience init(path: String) throws {
        self.init(pool: try SQLiteDatabase.open(path: path, migrator: SQLiteDatabase.ledgerMigrator()))
    }

    /// The ledger as read inside the caller's transaction or snapshot `db` (a job's summary,
    /// a report that reads other modules' tables in the same snapshot).
    public static func reader(in db: Database) throws -> any LedgerReading {
        LedgerSession(SQLiteConnection(db))
    }

    public func read<T>(_ body: (any LedgerReading) throws -> T) throws -> T {
        try Self.mapErrors {
            try pool.read { db in
                let session = LedgerSession(SQLiteConnection(db))
                return try body(session)
            }
        }
    }

    /// Runs `body` in one read-only snapshot, with the GRDB connection for the caller's own
    /// tables and the ledger's reads on the same snapshot.
    public func snapshot<T>(_ body: (Database, any LedgerReading) throws -> T) throws -> T {
        try Self.mapErrors {
            try pool.read { db in
                let session = LedgerSession(SQLiteConnection(db))
                return try body(db, session)
            }
        }
    }

    public func write<T>(_ body: (any LedgerWriting) throws -> T) throws -> T {
        try transaction { _, session in try body(session) }
    }

    /// Runs `body` in one immediate write transaction, with the GRDB connection for the
    /// caller's own tables and the ledger session on the same connection.
    public func transaction<T>(_ body: (Database, any LedgerWriting) throws -> T) throws -> T {
        try Self.mapErrors {
            try pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    let session = LedgerSession(SQLiteConnection(db))
                    result = try body(db, session)
                    if let hook = beforeCommit.withLock({ $0 }) { try hook(db) }
                    return .commit
                }
                guard let result else {
                    throw LedgerError(.storage, "the write transaction ended without a result")
                }
                return result
            }
        }
    }

    /// Turns GRDB's errors into `LedgerError`, keeping every other error as it is.
    static func mapErrors<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            if error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED {
                throw LedgerError(.busy, "the database is locked by another writer past the timeout; retry later",
                                  cause: error.message, context: error.sql)
            }
            throw LedgerError(.storage, "the ledger database refused a statement",
                              cause: "\(error.resultCode): \(error.message ?? "")", context: error.sql)
        }
    }
}

