import Foundation
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
    /// Helper threads SQLite's sorter may use on each connection (`PRAGMA threads`).
    public static let sortHelperThreads = 1

    /// How a command may treat the database file it is given.
    public enum OpenMode: Sendable {
        /// Create it (mode 0600) when missing, then migrate: `init`, the demo, tests.
        case create
        /// It must exist and hold qdwallet's schema; pending migrations are applied.
        case existing
        /// It must exist and hold qdwallet's schema; opened read-only when this user may not
        /// write it, so reading commands still work on a read-only copy.
        case existingForReading
    }

    /// Opens (and creates, mode 0600) the database at `path` and runs `migrator` on it.
    public static func open(
        path: String,
        migrator: DatabaseMigrator,
        mode: OpenMode = .create,
        busyTimeoutSeconds: Double = busyTimeoutSecondsDefault,
        cacheKiB: Int = cacheKiBDefault
    ) throws -> DatabasePool {
        var readOnly = false
        switch mode {
        case .create:
            if access(path, F_OK) == 0 {
                try requireWritable(path: path)
            } else {
                try createPrivately(path: path)
            }
        case .existing, .existingForReading:
            try requireExisting(path: path)
            if mode == .existingForReading {
                readOnly = access(path, W_OK) != 0 || access((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent, W_OK) != 0
            } else {
                try requireWritable(path: path)
            }
        }
        var configuration = Configuration()
        configuration.readonly = readOnly
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -\(max(2_048, cacheKiB))")
            // A large sort (a feed's move into `bills` in wallet order, a payment report's
            // items, an index built on a staged feed) may use one helper thread: the writer's
            // thread is the only busy one then, and this machine class has two cores.
            try db.execute(sql: "PRAGMA threads = \(sortHelperThreads)")
        }
        configuration.busyMode = .timeout(busyTimeoutSeconds)
        configuration.foreignKeysEnabled = true
        configuration.label = "qdwallet"
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            if mode != .create {
                // A file that is not qdwallet's (an empty file, another program's database) is
                // never turned into one by a command that only meant to use it.
                guard try pool.read({ try $0.tableExists("grdb_migrations") }) else {
                    throw LedgerError(.storage, "this file is not a qdwallet database; create one with `qdwallet init --db PATH`", context: path)
                }
            }
            // A database a newer qdwallet has upgraded is never written (or read) by an older
            // one: its rows follow rules this version does not know.
            let unknown = try pool.read { db in try migrator.appliedIdentifiers(db).subtracting(migrator.migrations) }
            if !unknown.isEmpty {
                throw LedgerError.upgradedByANewerVersion(unknown, context: path)
            }
            if readOnly {
                guard try pool.read({ try migrator.hasCompletedMigrations($0) }) else {
                    throw LedgerError(.storage, "the database is read-only for this user and needs an upgrade: run `qdwallet init` as its owner", context: path)
                }
                return pool
            }
            // DatabasePool chooses synchronous=NORMAL for WAL; a ledger wants every commit on
            // disk before it answers, so set FULL on the writer and read it back.
            let synchronous = try pool.writeWithoutTransaction { db -> Int in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                return try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
            }
            guard synchronous == 2 else {
                throw LedgerError(.storage, "could not set synchronous=FULL on the database", context: path)
            }
            do {
                try migrator.migrate(pool)
            } catch let error as DatabaseError where error.resultCode != .SQLITE_BUSY && error.resultCode != .SQLITE_LOCKED {
                // Each step is its own transaction: the refused one is rolled back, and none
                // after it is taken. A database held by another program is not a refusal: it
                // gets the message below.
                throw LedgerError(.storage, "the database could not be upgraded to this version's schema: an upgrade step was refused and left undone, and the steps after it were not taken; correct what the cause names, then run again", cause: String(describing: error), context: path)
            }
        } catch let error as LedgerError {
            throw error
        } catch {
            if readOnly {
                throw LedgerError(.storage, "the database is read-only for this user, and so is its folder: SQLite must create its shared-memory file (-shm) beside a WAL database even to read it; run as the database's owner, or make the folder writable", cause: String(describing: error), context: path)
            }
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

    /// Only `init` and the demo create a database: a typo in `--db` must not become an empty
    /// world that reports "ok".
    static func requireExisting(path: String) throws {
        guard access(path, F_OK) == 0 else {
            throw LedgerError(.databaseNotFound, "no database at this path; create it with `qdwallet init --db PATH`, or check --db and QDWALLET_DB for a typo", context: path)
        }
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw LedgerError(.storage, "the database path is not a regular file", context: path)
        }
        // Read the header before SQLite touches the file: opening would write to an empty
        // one (and switch another program's database to WAL).
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw LedgerError(.storage, "the database file cannot be read by this user (permissions)", context: path)
        }
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 16)) ?? Data()
        guard header == Data("SQLite format 3\u{0}".utf8) else {
            throw LedgerError(.storage, "this file is not a qdwallet database (not even SQLite); create one with `qdwallet init --db PATH`", context: path)
        }
    }

    /// A command that writes needs write access to the file and its folder (SQLite keeps its
    /// write-ahead log beside it): say so instead of "cannot create the database file".
    static func requireWritable(path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        if access(path, W_OK) != 0 {
            throw LedgerError(.storage, "the database file is read-only for this user (permissions): this command writes; run it as the database's owner or fix the file's mode (reading commands such as balance and ledger check still work)", cause: String(cString: strerror(errno)), context: path)
        }
        if access(folder, W_OK) != 0 {
            throw LedgerError(.storage, "the database's folder is read-only for this user: SQLite writes its log beside the database; fix the folder's permissions", cause: String(cString: strerror(errno)), context: folder)
        }
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
