import GRDB
import QDSQL
import Synchronization

/// The ledger's store on either engine: its statements are `LedgerSession`'s, its
/// transactions the database's (`SQLDatabase`: on SQLite one immediate transaction a write,
/// on PostgreSQL the server's, with the writers' lock and the retry the engine needs).
/// `SQLiteLedgerStore` is this store on a SQLite file, with its pool for the migrations.
public class SQLLedgerStore: LedgerStore, @unchecked Sendable {
    /// The database, shared with the modules that write in the same transactions.
    public let database: any SQLDatabase

    /// Called inside every write transaction, just before it commits (an audit trail that
    /// must commit with the change it records). Set once, before the store is used. Kept in
    /// a box: a function value read out of the mutex's generic storage through `inout` comes
    /// back wrapped in one more conversion each time, and a process calling it millions of
    /// times would call it through millions of frames.
    private let beforeCommit = Mutex<CommitHook?>(nil)

    private final class CommitHook: Sendable {
        let body: @Sendable (any SQLConnection) throws -> Void

        init(_ body: @escaping @Sendable (any SQLConnection) throws -> Void) {
            self.body = body
        }
    }

    public init(database: any SQLDatabase) {
        self.database = database
    }

    /// Installs the hook every write transaction calls before it commits.
    public func setBeforeCommit(_ hook: (@Sendable (any SQLConnection) throws -> Void)?) {
        let box = hook.map(CommitHook.init)
        beforeCommit.withLock { $0 = box }
    }

    public func read<T>(_ body: (any LedgerReading) throws -> T) throws -> T {
        try Self.mapErrors {
            try database.read { db in try body(LedgerSession(db)) }
        }
    }

    /// Runs `body` in one read-only snapshot, with the connection for the caller's own
    /// stores and the ledger's reads on the same snapshot.
    public func snapshot<T>(_ body: (any SQLConnection, any LedgerReading) throws -> T) throws -> T {
        try Self.mapErrors {
            try database.read { db in try body(db, LedgerSession(db)) }
        }
    }

    public func write<T>(_ body: (any LedgerWriting) throws -> T) throws -> T {
        try transaction { _, session in try body(session) }
    }

    /// Runs `body` in one write transaction, with the connection for the caller's own stores
    /// and the ledger session on it.
    public func transaction<T>(_ body: (any SQLConnection, any LedgerWriting) throws -> T) throws -> T {
        try Self.mapErrors {
            try database.write { db in
                let session = LedgerSession(db)
                let result = try body(db, session)
                if let hook = beforeCommit.withLock({ $0 }) { try hook.body(db) }
                try session.sealOnCommit()
                return result
            }
        }
    }

    /// Seals every committed journal row still waiting for its seal (PostgreSQL; waits for
    /// the chain's lock as long as `lock_timeout`). Before a check or an anchor is read.
    public func sealPending() throws {
        guard database.dialect == .postgres else { return }
        _ = try Self.mapErrors {
            try database.write { db in try LedgerSession(db).sealQueued() }
        }
    }

    /// Turns the engines' errors from outside the ledger's statements (opening, beginning or
    /// committing a transaction, waiting for the writers' lock) into `LedgerError`, keeping
    /// every other error as it is.
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
        } catch let error as SQLError where error.kind == .busy || error.kind == .unavailable || error.kind == .serialization {
            throw LedgerSession.ledgerError(error)
        }
    }
}

/// The ledger's store on a SQLite file (through GRDB's connection management): the embedded
/// default.
public final class SQLiteLedgerStore: SQLLedgerStore, @unchecked Sendable {
    /// The GRDB pool under `database`: the migrations and the file's own checks use it.
    public let pool: DatabasePool

    public init(pool: DatabasePool) {
        self.pool = pool
        super.init(database: SQLitePool(pool))
    }

    /// Opens a database holding only the ledger's schema (tests, benchmarks).
    public convenience init(path: String) throws {
        self.init(pool: try SQLiteDatabase.open(path: path, migrator: SQLiteDatabase.ledgerMigrator()))
    }
}
