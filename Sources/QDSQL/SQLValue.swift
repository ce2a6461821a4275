import Foundation

/// A value bound to a statement or read from a column: the four kinds both engines store the
/// same way. A flag is an integer 0 or 1 on both (schemas declare such columns as integers
/// with a check), so no store ever meets an engine's boolean.
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case text(String)
    case bytes([UInt8])
}

/// What can be bound to a placeholder.
public protocol SQLBindable {
    var sqlValue: SQLValue { get }
}

extension Int64: SQLBindable { public var sqlValue: SQLValue { .integer(self) } }
extension Int: SQLBindable { public var sqlValue: SQLValue { .integer(Int64(self)) } }
extension String: SQLBindable { public var sqlValue: SQLValue { .text(self) } }
extension Bool: SQLBindable { public var sqlValue: SQLValue { .integer(self ? 1 : 0) } }
extension Data: SQLBindable { public var sqlValue: SQLValue { .bytes([UInt8](self)) } }
extension Array: SQLBindable where Element == UInt8 { public var sqlValue: SQLValue { .bytes(self) } }
extension SQLValue: SQLBindable { public var sqlValue: SQLValue { self } }
extension Optional: SQLBindable where Wrapped: SQLBindable {
    public var sqlValue: SQLValue {
        // Not `map(\.sqlValue)`: a key path on a generic type is built at run time, on every call.
        switch self {
        case .some(let value): value.sqlValue
        case .none: .null
        }
    }
}

/// Why the database refused or failed a statement, with the statement itself.
public struct SQLError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// A unique, foreign key, check or not-null constraint refused the change.
        case constraint
        /// Another writer holds the lock past the wait allowed (SQLite BUSY or LOCKED).
        case busy
        /// The engine aborted the transaction to keep it serialisable (PostgreSQL 40001,
        /// 40P01): running the whole transaction again is safe.
        case serialization
        /// A column held NULL or another type than the store reads.
        case column
        /// The server cannot be reached, or the connection broke.
        case unavailable
        case other
    }

    public var kind: Kind
    /// The engine's own code (SQLite's extended result code, PostgreSQL's SQLSTATE).
    public var code: String
    public var message: String
    public var sql: String

    public init(_ kind: Kind, code: String, message: String, sql: String) {
        self.kind = kind
        self.code = code
        self.message = message
        self.sql = sql
    }

    /// Whether running the transaction again may succeed.
    public var isRetryable: Bool { kind == .serialization || kind == .busy }

    public var description: String { "\(message) (\(code)) [\(sql.prefix(200))]" }
}
