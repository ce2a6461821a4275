import Foundation
import Testing
@testable import Ledger

/// The compact JSON of outbox payloads and campaign explanations is the text `JSONEncoder`
/// gives with sorted keys and unescaped slashes (RFC 8259 §7: quotes, backslashes and
/// control characters escaped), byte for byte, whatever the strings hold.
@Suite struct JSONTextTests {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// Strings of every kind the payloads carry: ASCII, Chinese, masked phones, quotes,
    /// backslashes, slashes, every control character, an emoji.
    static func strings(seed: UInt64, count: Int) -> [String] {
        var state = seed
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        let pieces = ["a", "Z", "0", " ", "\"", "\\", "/", "张", "水费", "138****0001", "\u{7F}", "é", "🙂", ":", ",", "{", "}"]
            + (0..<0x20).map { String(UnicodeScalar(UInt8($0))) }
        return (0..<count).map { _ in
            String((0..<Int(next() % 12)).map { _ in pieces[Int(next() % UInt64(pieces.count))] }.joined())
        }
    }

    @Test func objectsAreTheTextJSONEncoderGives() throws {
        let keys = Self.strings(seed: 7, count: 400)
        let values = Self.strings(seed: 11, count: 400)
        for start in stride(from: 0, to: 400, by: 8) {
            var fields: [String: String] = [:]
            for index in start..<start + 8 { fields[keys[index]] = values[index] }
            let expected = String(decoding: try Self.encoder.encode(fields), as: UTF8.self)
            #expect(JSONText.object(fields) == expected)
        }
        #expect(JSONText.object([:]) == "{}")
        #expect(JSONText.quoted("a\"b\\c/d\n\u{01}") == "\"a\\\"b\\\\c/d\\n\\u0001\"")
    }

    struct Shape: Encodable {
        var amount: Int64?
        var flag: Bool
        var list: [String]
        var name: String?
        var note: String?
    }

    @Test func fieldByFieldIsTheTextOfTheSameShape() throws {
        let strings = Self.strings(seed: 3, count: 300)
        for index in stride(from: 0, to: 300, by: 5) {
            let amounts: [Int64?] = [nil, Int64(index) * -7, 0, Int64.min, Int64.max, 9, -10, 1_000_000_007]
            let shape = Shape(amount: amounts[index / 5 % amounts.count], flag: index % 2 == 0, list: Array(strings[index..<index + 3]),
                              name: strings[index + 3], note: index % 4 == 0 ? nil : strings[index + 4])
            var text = JSONText()
            text.field("amount", shape.amount)
            text.field("flag", shape.flag)
            text.field("list", strings: shape.list)
            text.field("name", shape.name)
            text.field("note", shape.note)
            #expect(text.finish() == String(decoding: try Self.encoder.encode(shape), as: UTF8.self))
        }
        #expect(JSONText().finish() == "{}")
    }
}
