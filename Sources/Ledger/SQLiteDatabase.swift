import GRDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opens qdwallet's SQLite database the one way the ledger relies on: WAL, synchronous FULL
/// (checked after opening), foreign keys on, a bounded busy timeout, and a file that only its
/// owner can read.
public enum SQLiteDatabase {
    /// How long a writer waits for another process's write transaction before giving up.
    public static let busyTimeoutSecondsDefault: Double = 10

    /// SQLite's page cache per connection, in KiB: a fixed size, so that the nightly run's
    /// memory does not grow with the size of the night. Measured on a night of a million
    /// bills, 64 MB ran no faster than 2 MB (the lookups are served from the kernel's file
    /// cache either way) and only raised the peak.
    public static let cacheKiBDefault = 2_048

    /// Opens (and creates, mode 0600) the database at `path` and runs `migrator` on it.
    public static func open(
        path: String,
        migrator: DatabaseMigrator,
        busyTimeoutSeconds: Double = busyTimeoutSecondsDefault,
        cacheKiB: Int = cacheKiBDefault
    ) throws -> DatabasePool {
        try createPrivately(path: path)
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -\(max(2_048, cacheKiB))")
        }
        configuration.busyMode = .timeout(busyTimeoutSeconds)
        configuration.foreignKeysEnabled = true
        configuration.label = "qdwallet"
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // DatabasePool chooses synchronous=NORMAL for WAL; a ledger wants every commit on
            // disk before it answers, so set FULL on the writer and read it back.
            let synchronous = try pool.writeWithoutTransaction { db -> Int in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                return try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
            }
            guard synchronous == 2 else {
                throw LedgerError(.storage, "could not set synchronous=FULL on the database", context: path)
            }
            try migrator.migrate(pool)
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError(.storage, "cannot open the database; check the path and that no other program holds it", cause: String(describing: error), context: path)
        }
        return pool
    }

    /// A migrator holding the ledger's schema alone.
    public static func ledgerMigrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        LedgerSchema.register(in: &migrator)
        return migrator
    }

    /// Creates the file with mode 0600 when it does not exist, so the database (and the WAL
    /// and shared-memory files SQLite derives from it) are never readable by others.
    static func createPrivately(path: String) throws {
        let descriptor = openFile(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw LedgerError(.storage, "cannot create the database file; check that its folder exists and is writable",
                              cause: String(cString: strerror(errno)), context: path)
        }
        close(descriptor)
    }
}

#if canImport(Glibc)
private func openFile(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { Glibc.open(path, flags, mode) }
#else
private func openFile(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { Darwin.open(path, flags, mode) }
#endif
