import Ledger

/// Checks and masks for the personal data a wallet takes in.
public enum Validation {
    /// A mainland mobile number: 11 ASCII digits starting with 1.
    public static func phone(_ text: String) throws(WalletRefusal) -> String {
        let bytes = Array(text.utf8)
        guard bytes.count == 11, bytes[0] == UInt8(ascii: "1"), bytes.allSatisfy(isDigit) else {
            throw .invalidPhone
        }
        return text
    }

    /// A person's name: 1 to 50 characters, no control or format characters, trimmed.
    public static func name(_ text: String) throws(WalletRefusal) -> String {
        guard let valid = Self.text(text, charactersMax: 50) else { throw .invalidName }
        return valid
    }

    /// Text taken in from an operator or a resident (names, categories, cities, reasons),
    /// trimmed: 1 to `charactersMax` characters (grapheme clusters), at most 4 bytes of UTF-8
    /// per character allowed (so unbounded combining marks cannot hide in one character), and
    /// no control or format characters (no terminal escapes, no bidirectional overrides).
    /// Nil when the text does not qualify.
    public static func text(_ text: String, charactersMax: Int) -> String? {
        let trimmed = text.trimmingSpaces
        guard !trimmed.isEmpty, trimmed.utf8.count <= charactersMax * 4, trimmed.count <= charactersMax,
              !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format })
        else { return nil }
        return trimmed
    }

    /// The first two digits of a resident ID number's address code (GB 11643-1999 §5.1,
    /// address codes of GB/T 2260): the provinces, autonomous regions and municipalities,
    /// Taiwan (71), and the residence permits of Hong Kong (81), Macao (82) and Taiwan (83)
    /// residents, which follow GB 11643 with these codes.
    public static let provinceCodes: Set<Int> = [
        11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37,
        41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
    ]

    /// An 18-character resident ID number (GB 11643-1999): an address code whose province is
    /// one of GB/T 2260, a date of birth that exists and is not in the future, a sequence
    /// code, and the ISO 7064 MOD 11-2 check character; a lower-case x is read as X.
    public static func residentID(_ text: String, today: ShanghaiCalendar.Date) throws(WalletRefusal) -> String {
        let upper = text.uppercased()
        let bytes = Array(upper.utf8)
        guard bytes.count == 18, bytes[0..<17].allSatisfy(isDigit),
              isDigit(bytes[17]) || bytes[17] == UInt8(ascii: "X")
        else { throw .invalidIDNumber }
        guard provinceCodes.contains(Int(bytes[0] - 48) * 10 + Int(bytes[1] - 48)) else { throw .invalidIDNumber }
        guard let check = residentIDCheckCharacter(String(decoding: bytes[0..<17], as: UTF8.self)), check.asciiValue == bytes[17] else { throw .invalidIDNumber }
        let birth = String(decoding: bytes[6..<14], as: UTF8.self)
        let iso = String(birth.prefix(4)) + "-" + String(birth.dropFirst(4).prefix(2)) + "-" + String(birth.suffix(2))
        guard let born = ShanghaiCalendar.Date(iso: iso), born.year >= 1900, born <= today else {
            throw .invalidIDNumber
        }
        return upper
    }

    /// The check character of GB 11643-1999 §5.4 (ISO 7064 MOD 11-2) of the first 17
    /// digits of a resident ID number; nil unless given exactly 17 ASCII digits.
    public static func residentIDCheckCharacter(_ body: String) -> Character? {
        let bytes = Array(body.utf8)
        guard bytes.count == 17, bytes.allSatisfy(isDigit) else { return nil }
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        let sum = zip(bytes, weights).reduce(0) { $0 + Int($1.0 - 48) * $1.1 }
        return Array("10X98765432")[sum % 11]
    }

    /// A bank card number (ISO/IEC 7812-1 PAN): 16 to 19 digits, the lengths UnionPay debit
    /// and credit cards have (ISO/IEC 7812 allows 8 to 19; no card a resident binds is shorter
    /// than 16). The Luhn check digit (ISO/IEC 7812-1 Annex B) is required: it catches a
    /// mistyped digit or two swapped ones before a card is bound, and binding has no bank
    /// round trip here that would catch them later. Spaces and dashes between digits, as
    /// printed on cards and typed by people, are removed.
    public static func cardNumber(_ text: String) throws(WalletRefusal) -> String {
        let trimmed = text.trimmingSpaces
        guard let first = trimmed.utf8.first, let last = trimmed.utf8.last, isDigit(first), isDigit(last) else { throw .invalidCardNumber }
        let compact = String(trimmed.filter { $0 != " " && $0 != "-" })
        let bytes = Array(compact.utf8)
        guard (16...19).contains(bytes.count), bytes.allSatisfy(isDigit) else { throw .invalidCardNumber }
        guard passesLuhn(bytes) else { throw .invalidCardNumber }
        return compact
    }

    /// ISO/IEC 7812-1 Annex B: the Luhn formula over ASCII digits.
    static func passesLuhn(_ bytes: [UInt8]) -> Bool {
        var sum = 0
        for (index, byte) in bytes.reversed().enumerated() {
            var digit = Int(byte - UInt8(ascii: "0"))
            if index % 2 == 1 {
                digit *= 2
                if digit > 9 { digit -= 9 }
            }
            sum += digit
        }
        return sum % 10 == 0
    }

    /// A bank code such as ICBC: 2 to 16 ASCII letters or digits, upper-cased.
    public static func bank(_ text: String) throws(WalletRefusal) -> String {
        let upper = text.uppercased()
        guard (2...16).contains(upper.utf8.count), upper.utf8.allSatisfy({ isDigit($0) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }) else {
            throw .invalidBank
        }
        return upper
    }

    /// A payment password: exactly 6 ASCII digits.
    public static func password(_ text: String) throws(WalletRefusal) -> String {
        let bytes = Array(text.utf8)
        guard bytes.count == 6, bytes.allSatisfy(isDigit) else { throw .invalidPassword }
        return text
    }

    /// An idempotency key chosen by the caller: 1 to 64 printable ASCII characters.
    public static func idempotencyKey(_ text: String) throws(WalletRefusal) -> String {
        let bytes = Array(text.utf8)
        guard (1...64).contains(bytes.count), bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .invalidIdempotencyKey
        }
        return text
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}

/// How personal data is shown: never whole.
public enum Mask {
    /// 138****0001
    public static func phone(_ phone: String) -> String {
        guard phone.count == 11 else { return "***" }
        return String(phone.prefix(3)) + "****" + String(phone.suffix(4))
    }

    /// 张* (first character, then one star per further character, at most three).
    public static func name(_ name: String) -> String {
        guard let first = name.first else { return "*" }
        return String(first) + String(repeating: "*", count: max(1, min(3, name.count - 1)))
    }

    /// 3702**********123X
    public static func residentID(_ id: String) -> String {
        guard id.count == 18 else { return "******************" }
        return String(id.prefix(4)) + String(repeating: "*", count: 10) + String(id.suffix(4))
    }

    /// 6222 **** **** 1234
    public static func card(_ number: String) -> String {
        guard number.count >= 8 else { return "**** ****" }
        return String(number.prefix(4)) + " **** **** " + String(number.suffix(4))
    }
}

extension String {
    var trimmingSpaces: String {
        var scalars = Substring.UnicodeScalarView(unicodeScalars)
        while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
