/// A fault of the ledger that is not a refusal of one request: storage, limits, corruption.
public struct LedgerError: Error, Sendable, CustomStringConvertible {
    /// What kind of fault.
    public enum Code: String, Sendable, Hashable {
        /// The database could not be opened, read or written.
        case storage
        /// There is no database at the path given (only `init` creates one).
        case databaseNotFound = "database_not_found"
        /// A newer qdwallet has upgraded the database: this older version must not use it.
        case databaseNewer = "database_newer"
        /// The database is locked by another writer past the busy timeout.
        case busy
        /// A batch has more requests than `LedgerLimits.batchSizeMax`.
        case batchTooLarge
        /// An account with that code already exists with a different specification.
        case accountCodeTaken
        /// No account with that id or code.
        case accountNotFound
        /// An account specification is not acceptable.
        case invalidAccount
        /// Stored data contradicts itself (found while reading, not by `check`).
        case corrupt
    }

    public var code: Code
    /// What went wrong and how to fix it.
    public var message: String
    /// The underlying error's description, if any.
    public var cause: String?
    /// Where: the database path, the SQL, the account code.
    public var context: String?

    public init(_ code: Code, _ message: String, cause: String? = nil, context: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
        self.context = context
    }

    /// The database holds schema steps (`migrations`) this version does not know: a newer
    /// qdwallet upgraded it, and an older one must not write it or read it.
    public static func upgradedByANewerVersion(_ migrations: Set<String>, context: String) -> LedgerError {
        LedgerError(.databaseNewer, "a newer qdwallet has upgraded this database (schema steps this version does not know: \(migrations.sorted().joined(separator: ", "))); run the version that upgraded it, never an older one", context: context)
    }

    public var description: String {
        var text = message
        if let context { text += " [\(context)]" }
        if let cause { text += " (cause: \(cause))" }
        return text
    }
}
