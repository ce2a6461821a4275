/// Compact JSON text for the small, flat documents written once per payment (outbox payloads,
/// campaign explanations): the documents `JSONEncoder` with sorted keys gives for these
/// shapes (`/` is not escaped), at a fraction of its cost on the nightly path. The text is
/// built as UTF-8 bytes and made a `String` once, when it is finished.
public struct JSONText: Sendable {
    private var bytes: [UInt8] = []
    private var first = true

    public init() {}

    /// A JSON string literal: quotes, backslashes and control characters escaped, `/` kept.
    public static func quoted(_ value: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count + 2)
        appendQuoted(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
    private static let trueText = Array("true".utf8)
    private static let falseText = Array("false".utf8)

    /// `quoted(value)` written at the end of `out`. Escapes go byte by byte: every byte of a
    /// multi-byte UTF-8 sequence is 0x80 or above, so none is taken for a quote, a backslash or
    /// a control character.
    static func appendQuoted(_ value: String, to out: inout [UInt8]) {
        out.append(0x22)
        var value = value
        value.withUTF8 { utf8 in
            var plainFrom = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == 0x22 || byte == 0x5C else { continue }
                if plainFrom < index { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[plainFrom..<index])) }
                plainFrom = index + 1
                out.append(0x5C)
                switch byte {
                case 0x22, 0x5C: out.append(byte)
                case 0x0A: out.append(0x6E)  // n
                case 0x0D: out.append(0x72)  // r
                case 0x09: out.append(0x74)  // t
                case 0x08: out.append(0x62)  // b
                case 0x0C: out.append(0x66)  // f
                default:
                    out.append(contentsOf: [0x75, 0x30, 0x30, hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0F)]])  // u00XX
                }
            }
            if plainFrom < utf8.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[plainFrom...])) }
        }
        out.append(0x22)
    }

    /// An integer's decimal digits (a minus sign first when negative) at the end of `out`.
    static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(0x2D) }
        var magnitude = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = 20
            repeat {
                start -= 1
                digits[start] = 0x30 + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start..<20]))
        }
    }

    /// An object of string values with its keys sorted.
    public static func object(_ fields: [String: String]) -> String {
        var out: [UInt8] = [0x7B]
        out.reserveCapacity(fields.reduce(2) { $0 + $1.key.utf8.count + $1.value.utf8.count + 6 })
        for (index, field) in fields.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { out.append(0x2C) }
            appendQuoted(field.key, to: &out)
            out.append(0x3A)
            appendQuoted(field.value, to: &out)
        }
        out.append(0x7D)
        return String(decoding: out, as: UTF8.self)
    }

    // Building an object field by field, in the caller's (sorted) order. A nil value leaves
    // its field out, as a synthesized `Encodable` conformance does.

    private mutating func key(_ name: String) {
        if first { bytes.reserveCapacity(256) }
        bytes.append(first ? 0x7B : 0x2C)
        first = false
        Self.appendQuoted(name, to: &bytes)
        bytes.append(0x3A)
    }

    public mutating func field(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        Self.appendQuoted(value, to: &bytes)
    }

    public mutating func field(_ name: String, _ value: Int64?) {
        guard let value else { return }
        key(name)
        Self.appendInteger(value, to: &bytes)
    }

    public mutating func field(_ name: String, _ value: Bool) {
        key(name)
        bytes.append(contentsOf: value ? Self.trueText : Self.falseText)
    }

    public mutating func field(_ name: String, strings: [String]) {
        key(name)
        bytes.append(0x5B)
        for (index, string) in strings.enumerated() {
            if index > 0 { bytes.append(0x2C) }
            Self.appendQuoted(string, to: &bytes)
        }
        bytes.append(0x5D)
    }

    /// A value that is already JSON text.
    public mutating func field(_ name: String, json: String) {
        key(name)
        bytes.append(contentsOf: json.utf8)
    }

    /// The finished object.
    public func finish() -> String {
        guard !first else { return "{}" }
        return String(unsafeUninitializedCapacity: bytes.count + 1) { buffer in
            _ = buffer.initialize(from: bytes)
            buffer[bytes.count] = 0x7D
            return bytes.count + 1
        }
    }
}
