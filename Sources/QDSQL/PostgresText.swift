/// The text forms PostgreSQL takes and gives values in, written into and read from bytes
/// directly: a night sends millions of values, and a `String` made for each (`String(n)`, a
/// text's bytes iterated one at a time) cost more than the rest of the value's way to the
/// server.
public enum PostgresText {
    /// `value` in decimal, as `String(value)` spells it (a minus sign, no plus sign, no
    /// leading zero), appended to `buffer`.
    public static func appendDecimal(_ value: Int64, to buffer: inout [UInt8]) {
        if value < 0 { buffer.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        // 20 digits hold UInt64.max; written from the end.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { raw in
            var start = raw.count
            repeat {
                start -= 1
                raw[start] = UInt8(truncatingIfNeeded: magnitude % 10) &+ UInt8(ascii: "0")
                magnitude /= 10
            } while magnitude > 0
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start...]))
        }
    }

    /// Integers joined by commas, inside braces as an array literal (`{1,2,3}`, cast by the
    /// statement: `?::bigint[]`) or bare (`1,2,3`, for `string_to_array`).
    public static func integerList(_ values: [Int64], braces: Bool) -> String {
        var text: [UInt8] = braces ? [UInt8(ascii: "{")] : []
        text.reserveCapacity(values.count * 8 + 2)
        for (index, value) in values.enumerated() {
            if index > 0 { text.append(UInt8(ascii: ",")) }
            appendDecimal(value, to: &text)
        }
        if braces { text.append(UInt8(ascii: "}")) }
        return String(decoding: text, as: UTF8.self)
    }

    /// The UTF-8 bytes of `text`, copied at once.
    public static func appendUTF8(_ text: String, to buffer: inout [UInt8]) {
        var text = text
        text.withUTF8 { buffer.append(contentsOf: $0) }
    }

    /// `text` with each byte for which `special` gives a character written as a backslash and
    /// that character; the runs between are copied at once.
    static func appendEscaped(_ text: String, to buffer: inout [UInt8], special: (UInt8) -> UInt8?) {
        var text = text
        text.withUTF8 { bytes in
            var run = 0
            for index in 0..<bytes.count {
                guard let escaped = special(bytes[index]) else { continue }
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<index]))
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(escaped)
                run = index + 1
            }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...]))
        }
    }

    /// A text value of COPY's text format (PostgreSQL, COPY, "Text Format"): a backslash,
    /// tab, line feed and carriage return escaped with a backslash.
    public static func appendCopyText(_ text: String, to buffer: inout [UInt8]) {
        appendEscaped(text, to: &buffer) { byte in
            switch byte {
            case UInt8(ascii: "\\"): UInt8(ascii: "\\")
            case 0x09: UInt8(ascii: "t")
            case 0x0A: UInt8(ascii: "n")
            case 0x0D: UInt8(ascii: "r")
            default: nil
            }
        }
    }

    /// An element of an array literal, quoted, its backslashes and double quotes escaped
    /// (PostgreSQL, "Array Value Input"): any text, commas and braces included. Both escaped
    /// characters are ASCII, never a byte of a longer sequence.
    public static func appendArrayElement(_ text: String, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        appendEscaped(text, to: &buffer) { byte in
            byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\"") ? byte : nil
        }
        buffer.append(UInt8(ascii: "\""))
    }

    /// An integer as the server writes one in text (int2, int4, int8, or a numeric without a
    /// fraction): an optional minus sign and decimal digits. Nil for anything else (a plus
    /// sign too, which the server never writes) and for a number outside Int64: the caller
    /// keeps such a value as text.
    public static func integer(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        guard !bytes.isEmpty else { return nil }
        let negative = bytes[0] == UInt8(ascii: "-")
        let first = negative ? 1 : 0
        guard bytes.count > first else { return nil }
        // Accumulated as a negative number: Int64.min has no positive counterpart.
        var value: Int64 = 0
        for index in first..<bytes.count {
            let digit = Int64(bytes[index]) - 48
            guard digit >= 0, digit <= 9 else { return nil }
            let (times, overflowTimes) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowMinus) = times.subtractingReportingOverflow(digit)
            guard !overflowTimes, !overflowMinus else { return nil }
            value = next
        }
        if negative { return value }
        return value == Int64.min ? nil : -value
    }
}
