import Ledger

/// EMVCo merchant-presented QR payloads (EMV QRCPS Merchant-Presented Mode v1.1):
/// tag-length-value data objects closed by a CRC-16/CCITT (poly 0x1021, init 0xFFFF) over
/// everything up to and including "6304".
///
/// Tag 59 (Merchant Name) and tag 60 (Merchant City) are in the Common Character Set
/// (printable ASCII), at most 25 and 15 characters; the Chinese name and city go into the
/// Merchant Information—Language Template (tag 64, language `ZH`).
public struct MerchantQR: Sendable, Hashable {
    /// The globally unique identifier of qdwallet's merchant account template (tag 26).
    public static let guid = "cn.qdwallet"
    /// Tag 59: at most 25 characters (EMV QRCPS MPM, Merchant Name).
    public static let merchantNameCharactersMax = 25
    /// Tag 60: at most 15 characters (EMV QRCPS MPM, Merchant City).
    public static let cityCharactersMax = 15
    /// Tag 54: at most 13 characters (EMV QRCPS MPM, Transaction Amount).
    public static let amountCharactersMax = 13
    /// The largest amount whose text fits tag 54: 9999999999.99 yuan.
    public static let amountFenMax: Int64 = 999_999_999_999
    /// A payload longer than this is no QR code a phone can scan (QR version 40 holds 4,296
    /// alphanumeric characters; EMVCo codes stay far below 512).
    public static let payloadCharactersMax = 512

    public var merchantID: String
    /// Tag 59, printable ASCII.
    public var merchantName: String
    /// Tag 60, printable ASCII.
    public var city: String
    public var mcc: String
    /// A fixed amount (dynamic code), or nil for a static code where the payer enters it.
    public var amountFen: Int64?
    /// Tag 64 01: the merchant's name in Chinese, when it has one.
    public var localName: String?
    /// Tag 64 02: the city in Chinese, when known.
    public var localCity: String?

    public init(merchantID: String, merchantName: String, city: String, mcc: String, amountFen: Int64?, localName: String? = nil, localCity: String? = nil) {
        self.merchantID = merchantID
        self.merchantName = merchantName
        self.city = city
        self.mcc = mcc
        self.amountFen = amountFen
        self.localName = localName
        self.localCity = localCity
    }

    /// The payload text; refuses what the EMVCo specification does not allow in a code.
    public func encode() throws(QRRefusal) -> String {
        guard Self.isCommonCharacterSet(merchantName), (1...Self.merchantNameCharactersMax).contains(merchantName.unicodeScalars.count) else {
            throw QRRefusal(.qrMalformed, clause: "Merchant Name (ID 59) is 1 to 25 characters of the Common Character Set (printable ASCII)")
        }
        guard Self.isCommonCharacterSet(city), (1...Self.cityCharactersMax).contains(city.unicodeScalars.count) else {
            throw QRRefusal(.qrMalformed, clause: "Merchant City (ID 60) is 1 to 15 characters of the Common Character Set (printable ASCII)")
        }
        guard mcc.utf8.count == 4, mcc.utf8.allSatisfy(Validation.isDigit) else {
            throw QRRefusal(.qrMalformed, clause: "Merchant Category Code (ID 52) is 4 digits")
        }
        let account = Self.field("00", Self.guid) + Self.field("01", merchantID)
        guard (1...99).contains(merchantID.unicodeScalars.count), account.unicodeScalars.count <= 99 else {
            throw QRRefusal(.qrMalformed, clause: "a data object's value is 1 to 99 characters")
        }
        var text = Self.field("00", "01")
        text += Self.field("01", amountFen == nil ? "11" : "12")
        text += Self.field("26", account)
        text += Self.field("52", mcc)
        text += Self.field("53", "156")
        if let amountFen {
            guard amountFen > 0, amountFen <= Self.amountFenMax else {
                throw QRRefusal(.qrAmountTooLarge, clause: "Transaction Amount (ID 54) is at most 13 characters: 9999999999.99")
            }
            text += Self.field("54", Money(fen: amountFen).yuanString)
        }
        text += Self.field("58", "CN")
        text += Self.field("59", merchantName)
        text += Self.field("60", city)
        if let localName, !localName.isEmpty {
            guard (1...Self.merchantNameCharactersMax).contains(localName.unicodeScalars.count),
                  localCity.map({ (1...Self.cityCharactersMax).contains($0.unicodeScalars.count) }) ?? true
            else {
                throw QRRefusal(.qrMalformed, clause: "Merchant Name—Alternate Language (ID 64 01) is at most 25 characters, Merchant City—Alternate Language (ID 64 02) at most 15")
            }
            var template = Self.field("00", "ZH") + Self.field("01", localName)
            if let localCity, !localCity.isEmpty { template += Self.field("02", localCity) }
            text += Self.field("64", template)
        }
        text += "6304"
        return text + Self.crcHex(text)
    }

    /// Decodes a payload by the EMVCo specification, then checks that it is a code of
    /// qdwallet's scheme in CNY. A refusal names the clause the payload breaks.
    public static func parse(_ payload: String) throws(QRRefusal) -> MerchantQR {
        let code = try EMVCode.decode(payload)
        guard let account = code.merchantAccounts.first(where: { $0.guid.lowercased() == guid }) else {
            throw QRRefusal(.qrUnknownMerchant, clause: "no Merchant Account Information template (IDs 02-51) of qdwallet (\(guid))")
        }
        guard let merchantID = account.fields["01"], !merchantID.isEmpty else {
            throw QRRefusal(.qrMalformed, clause: "qdwallet's Merchant Account Information (ID 26) carries the merchant id in its ID 01")
        }
        guard code.fields["53"] == "156" else {
            throw QRRefusal(.qrCurrencyUnsupported, clause: "Transaction Currency (ID 53) must be 156 (CNY, ISO 4217)")
        }
        var amountFen: Int64?
        if let amount = code.fields["54"] {
            let fen = try transactionAmountFen(amount)
            // Valid by the specification, but beyond what any payment here may move.
            guard fen <= amountFenMax else {
                throw QRRefusal(.qrAmountTooLarge, clause: "Transaction Amount (ID 54) above 9999999999.99")
            }
            amountFen = fen
        }
        let language = code.languageTemplate
        return MerchantQR(
            merchantID: merchantID, merchantName: code.fields["59"] ?? "", city: code.fields["60"] ?? "", mcc: code.fields["52"] ?? "",
            amountFen: amountFen, localName: language?["01"], localCity: language?["02"])
    }

    /// The ASCII merchant name of tag 59 derived from a name: its printable ASCII characters,
    /// spaces folded, at most 25; a name with none (a Chinese name) gives the merchant id.
    public static func asciiName(from name: String, merchantID: String) -> String {
        var result = ""
        var lastWasSpace = true
        for scalar in name.unicodeScalars where scalar.isASCII && scalar.value >= 0x20 && scalar.value < 0x7F {
            if scalar == " " {
                if lastWasSpace { continue }
                lastWasSpace = true
            } else {
                lastWasSpace = false
            }
            result.unicodeScalars.append(scalar)
        }
        while result.hasSuffix(" ") { result.removeLast() }
        if result.isEmpty { result = merchantID }
        return String(String.UnicodeScalarView(result.unicodeScalars.prefix(merchantNameCharactersMax)))
    }

    /// The Common Character Set of EMV QRCPS: printable ASCII, 0x20 to 0x7E.
    public static func isCommonCharacterSet(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value <= 0x7E }
    }

    /// Transaction Amount (ID 54): at most 13 characters, digits with at most one "." as the
    /// decimal mark, which may end the value ("98." is valid), at most as many decimals as
    /// the currency's exponent (2 for CNY), and not zero.
    static func transactionAmountFen(_ text: String) throws(QRRefusal) -> Int64 {
        let clause = "Transaction Amount (ID 54) is at most 13 characters: digits with at most one \".\" and at most 2 decimals, not zero"
        let bytes = Array(text.utf8)
        guard (1...amountCharactersMax).contains(bytes.count) else { throw QRRefusal(.qrMalformed, clause: clause) }
        let dot = bytes.firstIndex(of: UInt8(ascii: "."))
        let integer = bytes[..<(dot ?? bytes.endIndex)]
        let decimals = dot.map { bytes[($0 + 1)...] } ?? []
        guard !integer.isEmpty, integer.allSatisfy(Validation.isDigit), decimals.count <= 2, decimals.allSatisfy(Validation.isDigit) else {
            throw QRRefusal(.qrMalformed, clause: clause)
        }
        // 13 characters hold at most 13 digits: 10^13 yuan in fen fits an Int64 with room to spare.
        var yuan: Int64 = 0
        for byte in integer { yuan = yuan * 10 + Int64(byte - UInt8(ascii: "0")) }
        var fen: Int64 = 0
        for (index, byte) in decimals.enumerated() { fen += Int64(byte - UInt8(ascii: "0")) * (index == 0 ? 10 : 1) }
        let total = yuan * 100 + fen
        guard total > 0 else { throw QRRefusal(.qrMalformed, clause: clause) }
        return total
    }

    static func field(_ tag: String, _ value: String) -> String {
        let length = value.unicodeScalars.count
        return tag + (length < 10 ? "0" : "") + String(length) + value
    }

    /// CRC-16/CCITT-FALSE over the UTF-8 bytes, as four upper-case hex digits.
    public static func crcHex(_ text: String) -> String {
        var crc: UInt16 = 0xFFFF
        for byte in text.utf8 {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 {
                crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1
            }
        }
        let hex = String(crc, radix: 16, uppercase: true)
        return String(repeating: "0", count: 4 - hex.count) + hex
    }
}

/// A QR payload refused, with the clause of EMV QRCPS (or of qdwallet's scheme) it breaks.
public struct QRRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    public var refusal: WalletRefusal
    /// What the payload breaks, in the specification's words; never the payload itself.
    public var clause: String

    public init(_ refusal: WalletRefusal, clause: String) {
        self.refusal = refusal
        self.clause = clause
    }

    public var description: String { refusal.explanation + ": " + clause }
}

/// A payload decoded by EMV QRCPS Merchant-Presented Mode alone, whatever its scheme.
struct EMVCode {
    /// Data objects under the root, by ID.
    var fields: [String: String]
    /// The Merchant Account Information templates (IDs 26-51) with their Globally Unique
    /// Identifier (their ID 00); IDs 02-25 are primitive and reserved to card schemes.
    var merchantAccounts: [(guid: String, fields: [String: String])]
    /// The Merchant Information—Language Template (ID 64), when present.
    var languageTemplate: [String: String]?

    static func decode(_ payload: String) throws(QRRefusal) -> EMVCode {
        let scalars = Array(payload.unicodeScalars)
        guard !scalars.isEmpty, scalars.count <= MerchantQR.payloadCharactersMax else {
            throw QRRefusal(.qrMalformed, clause: "a payload is 1 to \(MerchantQR.payloadCharactersMax) characters")
        }
        let objects = try tlv(scalars[...], context: "the payload")
        // Payload Format Indicator: "shall be the first data object", value "01".
        guard let first = objects.first, first.tag == "00" else {
            throw QRRefusal(.qrMalformed, clause: "the Payload Format Indicator (ID 00) shall be the first data object")
        }
        guard first.value == "01" else {
            throw QRRefusal(.qrMalformed, clause: "the Payload Format Indicator (ID 00) has the value 01")
        }
        // CRC: "shall be the last data object", 4 hex digits over everything before them.
        guard let last = objects.last, last.tag == "63", last.value.unicodeScalars.count == 4 else {
            throw QRRefusal(.qrMalformed, clause: "the CRC (ID 63, length 04) shall be the last data object")
        }
        let body = String(String.UnicodeScalarView(scalars[..<(scalars.count - 4)]))
        guard last.value.uppercased() == MerchantQR.crcHex(body) else {
            throw QRRefusal(.qrBadChecksum, clause: "the CRC (ID 63) is CRC-16/CCITT over the payload up to and including \"6304\"")
        }
        var fields: [String: String] = [:]
        for object in objects {
            guard fields[object.tag] == nil else {
                throw QRRefusal(.qrMalformed, clause: "data object ID \(object.tag) appears twice")
            }
            fields[object.tag] = object.value
        }
        if let method = fields["01"], method != "11", method != "12" {
            throw QRRefusal(.qrMalformed, clause: "the Point of Initiation Method (ID 01) is 11 (static) or 12 (dynamic)")
        }
        var accounts: [(guid: String, fields: [String: String])] = []
        var anyAccount = false
        for tag in 2...51 {
            let id = (tag < 10 ? "0" : "") + String(tag)
            guard let value = fields[id] else { continue }
            anyAccount = true
            if tag >= 26 {
                let inner = try tlv(Array(value.unicodeScalars)[...], context: "Merchant Account Information (ID \(id))")
                var innerFields: [String: String] = [:]
                for object in inner { innerFields[object.tag] = object.value }
                guard let guid = innerFields["00"] else {
                    throw QRRefusal(.qrMalformed, clause: "a Merchant Account Information template (ID \(id)) starts with its Globally Unique Identifier (ID 00)")
                }
                accounts.append((guid, innerFields))
            }
        }
        guard anyAccount else {
            throw QRRefusal(.qrMalformed, clause: "at least one Merchant Account Information data object (IDs 02-51) is present")
        }
        for (id, name, digits) in [("52", "Merchant Category Code", 4), ("53", "Transaction Currency", 3)] {
            guard let value = fields[id], value.utf8.count == digits, value.utf8.allSatisfy(Validation.isDigit) else {
                throw QRRefusal(.qrMalformed, clause: "the \(name) (ID \(id)) is mandatory: \(digits) digits")
            }
        }
        guard let country = fields["58"], country.utf8.count == 2 else {
            throw QRRefusal(.qrMalformed, clause: "the Country Code (ID 58) is mandatory: 2 characters (ISO 3166-1 alpha 2)")
        }
        for (id, name, most) in [("59", "Merchant Name", MerchantQR.merchantNameCharactersMax), ("60", "Merchant City", MerchantQR.cityCharactersMax)] {
            guard let value = fields[id], value.unicodeScalars.count <= most, MerchantQR.isCommonCharacterSet(value) else {
                throw QRRefusal(.qrMalformed, clause: "the \(name) (ID \(id)) is mandatory: 1 to \(most) characters of the Common Character Set (printable ASCII)")
            }
        }
        var language: [String: String]?
        if let template = fields["64"] {
            var inner: [String: String] = [:]
            for object in try tlv(Array(template.unicodeScalars)[...], context: "the Language Template (ID 64)") { inner[object.tag] = object.value }
            guard let preference = inner["00"], preference.utf8.count == 2, let name = inner["01"], name.unicodeScalars.count <= MerchantQR.merchantNameCharactersMax else {
                throw QRRefusal(.qrMalformed, clause: "the Merchant Information—Language Template (ID 64) holds a Language Preference (ID 00, 2 characters) and a Merchant Name—Alternate Language (ID 01, at most 25 characters)")
            }
            if let city = inner["02"], city.unicodeScalars.count > MerchantQR.cityCharactersMax {
                throw QRRefusal(.qrMalformed, clause: "the Merchant City—Alternate Language (ID 64 02) is at most 15 characters")
            }
            language = inner
        }
        return EMVCode(fields: fields, merchantAccounts: accounts, languageTemplate: language)
    }

    /// Data objects in order: an ID of two digits, a length of two digits from 01 to 99, and
    /// that many characters of value.
    static func tlv(_ scalars: ArraySlice<Unicode.Scalar>, context: String) throws(QRRefusal) -> [(tag: String, value: String)] {
        var objects: [(tag: String, value: String)] = []
        var index = scalars.startIndex
        while index < scalars.endIndex {
            guard scalars.endIndex - index >= 4 else {
                throw QRRefusal(.qrMalformed, clause: "\(context) ends inside a data object's ID or length")
            }
            let tag = String(String.UnicodeScalarView(scalars[index..<index + 2]))
            let lengthText = String(String.UnicodeScalarView(scalars[index + 2..<index + 4]))
            guard tag.utf8.allSatisfy(Validation.isDigit) else {
                throw QRRefusal(.qrMalformed, clause: "a data object's ID is two digits (in \(context))")
            }
            guard lengthText.utf8.allSatisfy(Validation.isDigit), let length = Int(lengthText), length >= 1 else {
                throw QRRefusal(.qrMalformed, clause: "a data object's length is two digits from 01 to 99 (ID \(tag) in \(context))")
            }
            index += 4
            guard scalars.endIndex - index >= length else {
                throw QRRefusal(.qrMalformed, clause: "data object ID \(tag) is longer than what is left of \(context)")
            }
            objects.append((tag, String(String.UnicodeScalarView(scalars[index..<index + length]))))
            index += length
        }
        return objects
    }
}
