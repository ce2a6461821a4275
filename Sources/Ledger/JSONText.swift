/// Compact JSON text for the small, flat documents written once per payment (outbox payloads,
/// campaign explanations): the documents `JSONEncoder` with sorted keys gives for these
/// shapes (`/` is not escaped), at a fraction of its cost on the nightly path.
public struct JSONText: Sendable {
    public private(set) var text: String = ""
    private var first = true

    public init() {}

    /// A JSON string literal: quotes, backslashes and control characters escaped, `/` kept.
    public static func quoted(_ value: String) -> String {
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        var plain = true
        for byte in value.utf8 where byte < 0x20 || byte == 0x22 || byte == 0x5C {
            plain = false
            break
        }
        if plain {
            out += value
        } else {
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case "\u{08}": out += "\\b"
                case "\u{0C}": out += "\\f"
                default:
                    if scalar.value < 0x20 {
                        let hex = String(scalar.value, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
        }
        out += "\""
        return out
    }

    /// An object of string values with its keys sorted.
    public static func object(_ fields: [String: String]) -> String {
        var out = "{"
        for (index, key) in fields.keys.sorted().enumerated() {
            if index > 0 { out += "," }
            out += quoted(key) + ":" + quoted(fields[key]!)
        }
        return out + "}"
    }

    // Building an object field by field, in the caller's (sorted) order. A nil value leaves
    // its field out, as a synthesized `Encodable` conformance does.

    private mutating func key(_ name: String) {
        text += first ? "{" : ","
        first = false
        text += Self.quoted(name) + ":"
    }

    public mutating func field(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        text += Self.quoted(value)
    }

    public mutating func field(_ name: String, _ value: Int64?) {
        guard let value else { return }
        key(name)
        text += String(value)
    }

    public mutating func field(_ name: String, _ value: Bool) {
        key(name)
        text += value ? "true" : "false"
    }

    public mutating func field(_ name: String, strings: [String]) {
        key(name)
        text += "[" + strings.map(Self.quoted).joined(separator: ",") + "]"
    }

    /// A value that is already JSON text.
    public mutating func field(_ name: String, json: String) {
        key(name)
        text += json
    }

    /// The finished object.
    public func finish() -> String { first ? "{}" : text + "}" }
}
