import Ledger
import Testing
@testable import Wallet

@Suite struct ValidationTests {
    static let today = ShanghaiCalendar.Date(year: 2026, month: 11, day: 27)

    @Test(arguments: ["13800000001", "19912345678", "10000000000"])
    func acceptsPhones(phone: String) throws {
        #expect(try Validation.phone(phone) == phone)
    }

    @Test(arguments: ["", "1380000000", "138000000012", "23800000001", "1380000000a", "１3800000001", "+8613800000001", "138 0000 0001"])
    func refusesPhones(phone: String) {
        #expect(throws: WalletRefusal.invalidPhone) { try Validation.phone(phone) }
    }

    @Test(arguments: ["11010519491231002X", "11010519491231002x", "370202199001011237", "370212198512310042"])
    func acceptsResidentIDs(id: String) throws {
        #expect(try Validation.residentID(id, today: Self.today) == id.uppercased())
    }

    /// The ISO 7064 MOD 11-2 check character of GB 11643-1999 §5.4 for a 17-digit body.
    static func withCheck(_ body: String) -> String {
        body + String(Validation.residentIDCheckCharacter(body)!)
    }

    /// GB 11643-1999 §5.1: the address code is a county code of GB/T 2260; its first two
    /// digits name a province, autonomous region or municipality (and 71, 81, 82, 83).
    @Test func provinceCodesFollowGBT2260() throws {
        for province in 0...99 {
            let id = Self.withCheck(String(format: "%02d", province) + "0105" + "19491231" + "002")
            let accepted = (try? Validation.residentID(id, today: Self.today)) != nil
            #expect(accepted == Validation.provinceCodes.contains(province), "\(province)")
        }
        #expect(Validation.provinceCodes.count == 35)
        for refused in [0, 10, 16, 20, 24, 30, 38, 40, 47, 49, 55, 60, 66, 70, 72, 80, 84, 90, 91, 99] {
            #expect(!Validation.provinceCodes.contains(refused))
        }
    }

    /// GB 11643-1999 §5.2: the date of birth (YYYYMMDD) is a real date, and not after today.
    @Test(arguments: ["20000229", "19491231", "20261127", "19000101"])
    func birthDatesThatExist(date: String) throws {
        _ = try Validation.residentID(Self.withCheck("370202" + date + "123"), today: Self.today)
    }

    @Test(arguments: ["19000229", "20260229", "20261128", "20270101", "19991131", "19990001", "19990100", "18991231"])
    func birthDatesThatDoNot(date: String) {
        #expect(throws: WalletRefusal.invalidIDNumber) { try Validation.residentID(Self.withCheck("370202" + date + "123"), today: Self.today) }
    }

    @Test(arguments: [
        "110105194912310021",   // wrong check character
        "11010519491231002",    // 17 characters
        "11010519491231002XX",  // 19
        "110105194913310028",   // month 13
        "110105190002300023",   // 30 February
        "110105203001010010",   // born in the future
        "11010518991231002X",   // before 1900 (and wrong check)
        "1101051949123100X2",   // X not last
        "",
    ])
    func refusesResidentIDs(id: String) {
        #expect(throws: WalletRefusal.invalidIDNumber) { try Validation.residentID(id, today: Self.today) }
    }

    /// ISO/IEC 7812-1: PANs of 16 to 19 digits; spaces and dashes as printed or typed.
    @Test(arguments: ["6222020200112233446", "4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "6011000990139424",
                      "6222 0202 0011 2233 446", " 6222-0202-0011-2233-446 ", "6222 0202 0011 2230", "6222-0202-0011-2230"])
    func acceptsCards(number: String) throws {
        #expect(try Validation.cardNumber(number) == number.filter { $0 != " " && $0 != "-" })
    }

    /// Luhn (ISO/IEC 7812-1 Annex B) is required: one digit off is refused, spaced or not.
    @Test(arguments: ["4111111111111112", "411111111111111", "41111111111111111111", "411111111111111a", "", "4111--1111", "-4111111111111111",
                      "4111_1111_1111_1111", "4111.1111.1111.1111", "62220202001122", "62220202001122334461", "6222 0202 0011 2233", "6222020200112233"])
    func refusesCards(number: String) {
        #expect(throws: WalletRefusal.invalidCardNumber) { try Validation.cardNumber(number) }
    }

    @Test(arguments: ["12345", "1234567", "abcdef", "12345 ", "１２３４５６"])
    func refusesPasswords(password: String) {
        #expect(throws: WalletRefusal.invalidPassword) { try Validation.password(password) }
    }

    @Test func masks() {
        #expect(Mask.phone("13800000001") == "138****0001")
        #expect(Mask.name("张三") == "张*")
        #expect(Mask.name("欧阳娜娜") == "欧***")
        #expect(Mask.residentID("11010519491231002X") == "1101**********002X")
        #expect(Mask.card("6222020200112233446") == "6222 **** **** 3446")
    }
}

@Suite struct MerchantQRTests {
    @Test func roundTripsStaticAndDynamicCodes() throws {
        for amount in [nil, 1, 4_520, 10_000_000, MerchantQR.amountFenMax] as [Int64?] {
            let qr = MerchantQR(merchantID: "M0001", merchantName: "TAIDONG SNACKS", city: "QINGDAO", mcc: "5812", amountFen: amount, localName: "台东小吃", localCity: "青岛")
            let payload = try qr.encode()
            #expect(try MerchantQR.parse(payload) == qr)
            #expect(payload.hasPrefix("000201010" + (amount == nil ? "211" : "212")))
        }
    }

    @Test func crcMatchesTheStandardCheckValue() {
        // CRC-16/CCITT-FALSE of "123456789" is 0x29B1.
        #expect(MerchantQR.crcHex("123456789") == "29B1")
    }

    @Test func refusesAlteredPayloads() throws {
        let payload = try MerchantQR(merchantID: "M0001", merchantName: "Shop", city: "QINGDAO", mcc: "5812", amountFen: 1_000).encode()
        let altered = payload.replacingOccurrences(of: "10.00", with: "01.00")
        #expect(throws: QRRefusal.self) { try MerchantQR.parse(altered) }
        #expect((try? MerchantQR.parse(altered)) == nil)
        let badCRC = String(payload.dropLast(4)) + "0000"
        #expect { try MerchantQR.parse(badCRC) } throws: { ($0 as? QRRefusal)?.refusal == .qrBadChecksum }
    }

    @Test(arguments: ["", "000201", "hello world 6304ABCD", String(repeating: "0", count: 600)])
    func refusesGarbage(payload: String) {
        #expect { try MerchantQR.parse(payload) } throws: { ($0 as? QRRefusal)?.refusal == .qrMalformed }
    }

    @Test func refusesOtherSchemesAndCurrencies() {
        func signed(_ body: String) -> String { body + "6304" + MerchantQR.crcHex(body + "6304") }
        let tail = "5204581258" + "02CN" + "5904Shop" + "6007QINGDAO"
        func refusal(_ payload: String) -> WalletRefusal? {
            do { _ = try MerchantQR.parse(payload); return nil } catch { return error.refusal }
        }
        #expect(refusal(signed("000201010211" + "2619" + "0007com.xyz" + "0104M001" + "5303156" + tail)) == .qrUnknownMerchant)
        #expect(refusal(signed("000201010211" + "2623" + "0011cn.qdwallet" + "0104M001" + "5303840" + tail)) == .qrCurrencyUnsupported)
        #expect(refusal(signed("000201010212" + "2623" + "0011cn.qdwallet" + "0104M001" + "5303156" + "54041e10" + tail)) == .qrMalformed)
        #expect(refusal(signed("000201010211" + "2699" + "0011cn.qdwallet")) == .qrMalformed)
    }
}

/// Text taken in is bounded by characters and by bytes, and holds no control or format
/// characters: no terminal or log injection, no 120 KB name in one grapheme.
@Suite struct TextBoundsTests {
    static let combining = "A" + String(repeating: "\u{0301}", count: 40_000)

    @Test(arguments: [
        "\u{1B}[31mred", "tab\there", "line\nbreak", "bell\u{07}", "rtl\u{202E}override", "zero\u{200B}width", combining,
        String(repeating: "张", count: 51), "",
    ])
    func namesRefuseControlFormatAndUnboundedText(name: String) {
        #expect(throws: WalletRefusal.invalidName) { try Validation.name(name) }
    }

    @Test func namesOfPeopleAreAccepted() throws {
        #expect(try Validation.name("  欧阳娜娜 ") == "欧阳娜娜")
        #expect(try Validation.name("José Müller") == "José Müller")
        #expect(try Validation.name(String(repeating: "张", count: 50)).count == 50)
    }

    @Test func merchantCategoryAndCityRefuseControlCharacters() throws {
        let t = try TestWallet()
        #expect(throws: WalletRefusal.invalidMerchant) { try t.service.registerMerchant(id: "M1", name: "店", category: "food\u{1B}[2J") }
        #expect(throws: WalletRefusal.invalidMerchant) { try t.service.registerMerchant(id: "M2", name: "店", category: "food", city: "QING\nDAO") }
        #expect(throws: WalletRefusal.invalidMerchant) { try t.service.registerMerchant(id: "M3", name: Self.combining, category: "food") }
        #expect(throws: WalletRefusal.invalidMerchant) { try t.service.registerMerchant(id: "M4", name: "店", category: String(repeating: "x", count: 33)) }
        _ = try t.service.openWallet(phone: "13800000001", name: "张三")
        #expect(throws: WalletRefusal.invalidText) { try t.service.setFrozen(phone: "13800000001", frozen: true, reason: "fraud\u{1B}]0;owned\u{07}") }
        #expect(throws: WalletRefusal.invalidName) { try t.service.openWallet(phone: "13800000002", name: Self.combining) }
        #expect(try t.int("SELECT count(*) FROM merchants") == 0)
    }
}
