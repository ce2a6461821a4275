/// Compact JSON text for the small, flat documents written once per payment (outbox payloads,
/// campaign explanations): the documents `JSONEncoder` with sorted keys gives for these
/// shapes (`/` is not escaped), at a fraction of its cost on the nightly path.
public struct JSONText: Sendable {
    public private(set) var text: String = ""
    private var first = true

    public init() {}

    /// A JSON string literal: quotes, backslashes and control characters escaped, `/` kept.
    public static func quoted(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count + 2)
        appendQuoted(value, to: &out)
        return out
    }

    /// `quoted(value)` written at the end of `out` (no string of its own).
    static func appendQuoted(_ value: String, to out: inout String) {
        out.append("\"")
        var plain = true
        for byte in value.utf8 where byte < 0x20 || byte == 0x22 || byte == 0x5C {
            plain = false
            break
        }
        if plain {
            out.append(value)
        } else {
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": out.append("\\\"")
                case "\\": out.append("\\\\")
                case "\n": out.append("\\n")
                case "\r": out.append("\\r")
                case "\t": out.append("\\t")
                case "\u{08}": out.append("\\b")
                case "\u{0C}": out.append("\\f")
                default:
                    if scalar.value < 0x20 {
                        let hex = String(scalar.value, radix: 16)
                        out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
        }
        out.append("\"")
    }

    /// An object of string values with its keys sorted.
    public static func object(_ fields: [String: String]) -> String {
        var out = "{"
        out.reserveCapacity(fields.reduce(2) { $0 + $1.key.utf8.count + $1.value.utf8.count + 6 })
        for (index, field) in fields.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { out.append(",") }
            appendQuoted(field.key, to: &out)
            out.append(":")
            appendQuoted(field.value, to: &out)
        }
        out.append("}")
        return out
    }

    // Building an object field by field, in the caller's (sorted) order. A nil value leaves
    // its field out, as a synthesized `Encodable` conformance does.

    private mutating func key(_ name: String) {
        text.append(first ? "{" : ",")
        first = false
        Self.appendQuoted(name, to: &text)
        text.append(":")
    }

    public mutating func field(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        Self.appendQuoted(value, to: &text)
    }

    public mutating func field(_ name: String, _ value: Int64?) {
        guard let value else { return }
        key(name)
        text.append(String(value))
    }

    public mutating func field(_ name: String, _ value: Bool) {
        key(name)
        text.append(value ? "true" : "false")
    }

    public mutating func field(_ name: String, strings: [String]) {
        key(name)
        text.append("[")
        for (index, string) in strings.enumerated() {
            if index > 0 { text.append(",") }
            Self.appendQuoted(string, to: &text)
        }
        text.append("]")
    }

    /// A value that is already JSON text.
    public mutating func field(_ name: String, json: String) {
        key(name)
        text.append(json)
    }

    /// The finished object.
    public func finish() -> String { first ? "{}" : text + "}" }
}
