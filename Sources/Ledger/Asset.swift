/// What a ledger account holds.
public enum Asset: String, Sendable, Hashable, Codable, CaseIterable {
    /// Chinese yuan, counted in fen.
    case cny = "CNY"
    /// Campaign points, counted in whole points.
    case pts = "PTS"

    /// The name of the smallest unit, for messages.
    public var unitName: String {
        switch self {
        case .cny: "fen"
        case .pts: "points"
        }
    }
}

/// The side of a ledger entry.
public enum Side: Int, Sendable, Hashable, Codable {
    /// Takes value out of the account (balance = credits - debits goes down).
    case debit = 0
    /// Puts value into the account.
    case credit = 1
}

/// Microseconds since 1970-01-01T00:00:00Z; the ledger's only time type.
public typealias TimestampMicros = Int64
