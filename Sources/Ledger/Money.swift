/// An amount of Chinese yuan held as a whole number of fen (0.01 CNY).
///
/// Arithmetic is overflow-checked and throws instead of trapping, and the only way in
/// from text is `init(yuan:)`, which parses with integer arithmetic.
public struct Money: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// The amount in fen.
    public let fen: Int64

    /// Wraps a number of fen.
    public init(fen: Int64) {
        self.fen = fen
    }

    /// Zero fen.
    public static let zero = Money(fen: 0)

    /// Parses a non-negative yuan decimal ("45.2", "45.20", "0.01").
    ///
    /// Refused, each with a message that says why: empty text, signs, exponents, digit
    /// grouping, more than two fraction digits, a separator without digits, and values
    /// beyond `Int64` fen.
    public init(yuan text: String) throws(MoneyParseError) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else {
            throw MoneyParseError(text: text, reason: "the amount is empty")
        }
        var whole: Int64 = 0
        var fraction: Int64 = 0
        var fractionDigits = 0
        var wholeDigits = 0
        var seenPoint = false
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let digit = Int64(byte - UInt8(ascii: "0"))
                if seenPoint {
                    fractionDigits += 1
                    guard fractionDigits <= 2 else {
                        throw MoneyParseError(text: text, reason: "more than two digits after the decimal point (fen is the smallest unit)")
                    }
                    fraction = fraction * 10 + digit
                } else {
                    wholeDigits += 1
                    let (times10, o1) = whole.multipliedReportingOverflow(by: 10)
                    let (sum, o2) = times10.addingReportingOverflow(digit)
                    guard !o1, !o2 else {
                        throw MoneyParseError(text: text, reason: "the amount is too large")
                    }
                    whole = sum
                }
            case UInt8(ascii: "."):
                guard !seenPoint else {
                    throw MoneyParseError(text: text, reason: "more than one decimal point")
                }
                seenPoint = true
            case UInt8(ascii: "-"), UInt8(ascii: "+"):
                throw MoneyParseError(text: text, reason: "signs are not allowed; amounts are never negative")
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                throw MoneyParseError(text: text, reason: "exponents are not allowed; write the amount as plain digits")
            case UInt8(ascii: ","), UInt8(ascii: "_"), UInt8(ascii: " "):
                throw MoneyParseError(text: text, reason: "digit grouping and spaces are not allowed; write 4520.00, not 4,520.00")
            default:
                throw MoneyParseError(text: text, reason: "only digits and one '.' are allowed")
            }
        }
        guard wholeDigits > 0 else {
            throw MoneyParseError(text: text, reason: "digits are needed before the decimal point")
        }
        if seenPoint && fractionDigits == 0 {
            throw MoneyParseError(text: text, reason: "digits are needed after the decimal point")
        }
        if fractionDigits == 1 { fraction *= 10 }
        let (wholeFen, o1) = whole.multipliedReportingOverflow(by: 100)
        let (total, o2) = wholeFen.addingReportingOverflow(fraction)
        guard !o1, !o2 else {
            throw MoneyParseError(text: text, reason: "the amount is too large")
        }
        self.fen = total
    }

    /// The amount as a yuan decimal with exactly two fraction digits ("45.20", "-0.01").
    public var yuanString: String {
        // Int64.min has no positive counterpart; format its magnitude through UInt64.
        let negative = fen < 0
        let magnitude = fen.magnitude
        let whole = magnitude / 100
        let cents = magnitude % 100
        return (negative ? "-" : "") + String(whole) + "." + (cents < 10 ? "0" : "") + String(cents)
    }

    public var description: String { yuanString }

    public static func < (lhs: Money, rhs: Money) -> Bool { lhs.fen < rhs.fen }

    /// The sum, or an error when it does not fit in `Int64` fen.
    public func adding(_ other: Money) throws(MoneyOverflowError) -> Money {
        let (sum, overflow) = fen.addingReportingOverflow(other.fen)
        guard !overflow else { throw MoneyOverflowError(operation: "add") }
        return Money(fen: sum)
    }

    /// The difference, or an error when it does not fit in `Int64` fen.
    public func subtracting(_ other: Money) throws(MoneyOverflowError) -> Money {
        let (difference, overflow) = fen.subtractingReportingOverflow(other.fen)
        guard !overflow else { throw MoneyOverflowError(operation: "subtract") }
        return Money(fen: difference)
    }

    /// The product with a whole number, or an error when it does not fit in `Int64` fen.
    public func multiplied(by factor: Int64) throws(MoneyOverflowError) -> Money {
        let (product, overflow) = fen.multipliedReportingOverflow(by: factor)
        guard !overflow else { throw MoneyOverflowError(operation: "multiply") }
        return Money(fen: product)
    }
}

/// A yuan string that is not a valid amount, with the reason.
public struct MoneyParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The text that was refused.
    public let text: String
    /// Why it was refused, in words an operator can act on.
    public let reason: String

    public var description: String {
        // Bound what is echoed back: the field may have been given something long or private.
        let shown = text.count > 24 ? String(text.prefix(24)) + "…" : text
        return "invalid amount \"\(shown)\": \(reason)"
    }
}

/// An arithmetic result that does not fit in `Int64` fen.
public struct MoneyOverflowError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The operation that overflowed.
    public let operation: String

    public var description: String { "amount overflow in \(operation): the result does not fit in 64-bit fen" }
}
