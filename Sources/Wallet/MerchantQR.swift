import Ledger

/// EMVCo merchant-presented QR payloads: tag-length-value fields closed by a CRC-16/CCITT
/// (poly 0x1021, init 0xFFFF) over everything up to and including "6304".
public struct MerchantQR: Sendable, Hashable {
    /// The globally unique identifier of qdwallet's merchant account template (tag 26).
    public static let guid = "cn.qdwallet"

    public var merchantID: String
    public var merchantName: String
    public var city: String
    public var mcc: String
    /// A fixed amount (dynamic code), or nil for a static code where the payer enters it.
    public var amountFen: Int64?

    public init(merchantID: String, merchantName: String, city: String, mcc: String, amountFen: Int64?) {
        self.merchantID = merchantID
        self.merchantName = merchantName
        self.city = city
        self.mcc = mcc
        self.amountFen = amountFen
    }

    /// The payload text.
    public func encode() -> String {
        var text = field("00", "01")
        text += field("01", amountFen == nil ? "11" : "12")
        text += field("26", field("00", Self.guid) + field("01", merchantID))
        text += field("52", mcc)
        text += field("53", "156")
        if let amountFen { text += field("54", Money(fen: amountFen).yuanString) }
        text += field("58", "CN")
        text += field("59", merchantName)
        text += field("60", city)
        text += "6304"
        return text + Self.crcHex(text)
    }

    /// Parses and verifies a payload; refuses bad structure, a bad CRC, another scheme, a
    /// currency other than CNY, and amounts that are not exact yuan decimals.
    public static func parse(_ payload: String) throws(WalletRefusal) -> MerchantQR {
        let scalars = Array(payload.unicodeScalars)
        guard scalars.count >= 12, scalars.count <= 512 else { throw .qrMalformed }
        guard String(String.UnicodeScalarView(scalars[(scalars.count - 8)..<(scalars.count - 4)])) == "6304" else { throw .qrMalformed }
        let body = String(String.UnicodeScalarView(scalars[..<(scalars.count - 4)]))
        let crc = String(String.UnicodeScalarView(scalars[(scalars.count - 4)...])).uppercased()
        guard crc == crcHex(body) else { throw .qrBadChecksum }
        let fields = try tlv(scalars[..<(scalars.count - 8)])
        guard fields["00"] == "01", let account = fields["26"] else { throw .qrMalformed }
        let accountFields = try tlv(Array(account.unicodeScalars)[...])
        guard accountFields["00"] == guid, let merchantID = accountFields["01"], !merchantID.isEmpty else { throw .qrMalformed }
        guard fields["53"] == "156" else { throw .qrMalformed }
        var amountFen: Int64?
        if let amount = fields["54"] {
            guard let money = try? Money(yuan: amount), money.fen > 0 else { throw .qrMalformed }
            amountFen = money.fen
        }
        return MerchantQR(merchantID: merchantID, merchantName: fields["59"] ?? "", city: fields["60"] ?? "", mcc: fields["52"] ?? "", amountFen: amountFen)
    }

    private static func tlv(_ scalars: ArraySlice<Unicode.Scalar>) throws(WalletRefusal) -> [String: String] {
        var fields: [String: String] = [:]
        var index = scalars.startIndex
        while index < scalars.endIndex {
            guard scalars.endIndex - index >= 4 else { throw .qrMalformed }
            let tag = String(String.UnicodeScalarView(scalars[index..<index + 2]))
            let lengthText = String(String.UnicodeScalarView(scalars[index + 2..<index + 4]))
            guard tag.utf8.allSatisfy(Validation.isDigit), lengthText.utf8.allSatisfy(Validation.isDigit), let length = Int(lengthText) else {
                throw .qrMalformed
            }
            index += 4
            guard scalars.endIndex - index >= length, fields[tag] == nil else { throw .qrMalformed }
            fields[tag] = String(String.UnicodeScalarView(scalars[index..<index + length]))
            index += length
        }
        return fields
    }

    private func field(_ tag: String, _ value: String) -> String {
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
