import Foundation
import Ledger
import Testing
@testable import Wallet

/// Conformance with EMV QR Code Specification for Payment Systems, Merchant-Presented Mode
/// (EMV QRCPS MPM) v1.1. Clauses are cited by section and data object.
@Suite struct EMVCoConformanceTests {
    func signed(_ body: String) -> String { body + "6304" + MerchantQR.crcHex(body + "6304") }

    func refusal(_ payload: String) -> QRRefusal? {
        do { _ = try MerchantQR.parse(payload); return nil } catch { return error }
    }

    /// A well-formed code of qdwallet's scheme, built by hand from its data objects.
    func ours(amount: String? = nil, name: String = "Shop", extra: String = "") -> String {
        var body = "000201" + (amount == nil ? "010211" : "010212") + "2623" + "0011cn.qdwallet" + "0104M001" + "52045812" + "5303156"
        if let amount { body += "54" + String(format: "%02d", amount.count) + amount }
        body += "5802CN" + "59" + String(format: "%02d", name.count) + name + "6007QINGDAO" + extra
        return signed(body)
    }

    /// Appendix A of EMV QRCPS MPM: the specification's own example payload, CRC A13A. It is
    /// valid EMVCo (Alipay-style GUIDs in IDs 29 and 31, tip indicator, additional data,
    /// language template in Chinese), but of no merchant of ours.
    static let specificationExample = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A"

    @Test func theSpecificationsExampleDecodesAndIsAnotherSchemesCode() throws {
        let code = try EMVCode.decode(Self.specificationExample)
        #expect(code.fields["59"] == "BEST TRANSPORT")
        #expect(code.fields["60"] == "BEIJING")
        #expect(code.fields["54"] == "23.72")
        #expect(code.fields["52"] == "4111")
        #expect(code.languageTemplate?["00"] == "ZH")
        #expect(code.languageTemplate?["01"] == "最佳运输")
        #expect(code.languageTemplate?["02"] == "北京")
        #expect(code.merchantAccounts.map(\.guid) == ["D15600000000", "D15600000001"])
        // Not "not a valid EMVCo code": a different refusal, with its own message.
        let refused = try #require(refusal(Self.specificationExample))
        #expect(refused.refusal == .qrUnknownMerchant)
        #expect(refused.description.contains("valid EMVCo code"))
        #expect(WalletRefusal.qrUnknownMerchant.explanation != WalletRefusal.qrMalformed.explanation)
    }

    /// §4.7.x Transaction Amount (ID "54"): digits with a single "." as the decimal mark,
    /// which "may be present even if there are no decimals": "98.73", "98" and "98." are
    /// valid; decimals follow the currency's exponent (2 for CNY).
    @Test(arguments: [("98.73", 9_873), ("98", 9_800), ("98.", 9_800), ("98.7", 9_870), ("0.01", 1), ("9999999999.99", 999_999_999_999)] as [(String, Int64)])
    func transactionAmountsTheSpecificationAllows(text: String, fen: Int64) throws {
        #expect(try MerchantQR.parse(ours(amount: text)).amountFen == fen)
    }

    @Test(arguments: ["98.731", "9.8.7", ".5", "0", "0.00", "1e3", "-5", " 98"])
    func transactionAmountsTheSpecificationRefuses(text: String) throws {
        let refused = try #require(refusal(ours(amount: text)))
        #expect(refused.refusal == .qrMalformed)
        #expect(refused.clause.contains("Transaction Amount (ID 54)"))
    }

    /// A 13-digit integer amount fits ID 54 but is beyond any payment: refused as too large.
    @Test func anAmountBeyondEveryBoundIsTooLarge() throws {
        #expect(refusal(ours(amount: "9999999999999"))?.refusal == .qrAmountTooLarge)
    }

    /// §3.2 Data Object: "the Length ... from '01' to '99'": an empty data object is invalid.
    @Test func aZeroLengthDataObjectIsRefused() throws {
        let refused = try #require(refusal(ours(extra: "6200")))
        #expect(refused.refusal == .qrMalformed)
        #expect(refused.clause.contains("01 to 99"))
    }

    /// §4.1: "The Payload Format Indicator (ID '00') shall be the first data object".
    @Test func thePayloadFormatIndicatorComesFirst() throws {
        let body = "010211" + "000201" + "2623" + "0011cn.qdwallet" + "0104M001" + "52045812" + "5303156" + "5802CN" + "5904Shop" + "6007QINGDAO"
        let refused = try #require(refusal(signed(body)))
        #expect(refused.refusal == .qrMalformed)
        #expect(refused.clause.contains("first data object"))
        #expect(refusal(signed("000202" + String(body.dropFirst(12))))?.clause.contains("value 01") == true)
    }

    /// §4.1: "The CRC (ID '63') shall be the last data object".
    @Test func theCRCComesLast() throws {
        let good = ours()
        let moved = String(good.dropLast(8)) + "6304" + String(good.suffix(4)) + "5802CN"
        #expect(refusal(moved)?.refusal == .qrMalformed)
    }

    /// §4.7, "Data Objects under the root": Merchant Category Code (52), Transaction
    /// Currency (53), Country Code (58), Merchant Name (59) and Merchant City (60) are
    /// mandatory, and at least one Merchant Account Information (02-51).
    @Test(arguments: ["52045812", "5303156", "5802CN", "5904Shop", "6007QINGDAO", "2623" + "0011cn.qdwallet" + "0104M001"])
    func mandatoryDataObjectsAreRequired(missing: String) throws {
        let full = "000201" + "010211" + "2623" + "0011cn.qdwallet" + "0104M001" + "52045812" + "5303156" + "5802CN" + "5904Shop" + "6007QINGDAO"
        #expect(refusal(signed(full)) == nil)
        let refused = try #require(refusal(signed(full.replacingOccurrences(of: missing, with: ""))))
        #expect(refused.refusal == .qrMalformed)
        #expect(refused.clause.contains("mandatory") || refused.clause.contains("Merchant Account Information"))
    }

    @Test func aDataObjectTwiceIsRefused() {
        #expect(refusal(ours(extra: "6007QINGDAO"))?.clause.contains("appears twice") == true)
    }

    /// Merchant Name (ID 59) is "ans" (the Common Character Set) of at most 25; Merchant City
    /// (ID 60) at most 15: the encoder writes only that, the decoder takes only that.
    @Test func theEncoderWritesOnlyWhatTheSpecificationAllows() throws {
        #expect { try MerchantQR(merchantID: "M1", merchantName: "台东小吃", city: "QINGDAO", mcc: "5812", amountFen: nil).encode() } throws: {
            ($0 as? QRRefusal)?.clause.contains("ID 59") == true
        }
        #expect { try MerchantQR(merchantID: "M1", merchantName: String(repeating: "A", count: 33), city: "QINGDAO", mcc: "5812", amountFen: nil).encode() } throws: {
            ($0 as? QRRefusal)?.clause.contains("ID 59") == true
        }
        #expect { try MerchantQR(merchantID: "M1", merchantName: "Shop", city: "青岛", mcc: "5812", amountFen: nil).encode() } throws: {
            ($0 as? QRRefusal)?.clause.contains("ID 60") == true
        }
        // 12345678901.23 is 14 characters: more than ID 54's 13.
        #expect { try MerchantQR(merchantID: "M1", merchantName: "Shop", city: "QINGDAO", mcc: "5812", amountFen: 1_234_567_890_123).encode() } throws: {
            ($0 as? QRRefusal)?.refusal == .qrAmountTooLarge
        }
        #expect(refusal(ours(name: "台东小吃"))?.refusal == .qrMalformed)
    }

    /// §4.8 Merchant Information—Language Template (ID 64): Language Preference (00),
    /// Merchant Name—Alternate Language (01), Merchant City—Alternate Language (02).
    @Test func theChineseNameAndCityGoIntoTheLanguageTemplate() throws {
        let t = try TestWallet()
        let merchant = try t.service.registerMerchant(id: "M0001", name: "台东小吃", category: "餐饮")
        #expect(merchant.nameASCII == "M0001")
        let payload = try t.service.merchantQR(id: "M0001", amountFen: 4_520)
        #expect(payload.contains("5905M0001"))
        #expect(payload.contains("6007QINGDAO"))
        #expect(payload.contains("64200002ZH0104台东小吃0202青岛"))
        let decoded = try MerchantQR.parse(payload)
        #expect(decoded.localName == "台东小吃")
        #expect(decoded.localCity == "青岛")
        #expect(decoded.amountFen == 4_520)
        // An ASCII name given by the operator, and one derived from a mixed name.
        #expect(try t.service.registerMerchant(id: "M0002", name: "台东小吃", category: "餐饮", nameASCII: "TAIDONG SNACKS").nameASCII == "TAIDONG SNACKS")
        #expect(try t.service.registerMerchant(id: "M0003", name: "COCO都可 台东店", category: "餐饮").nameASCII == "COCO")
        #expect(try MerchantQR.parse(t.service.merchantQR(id: "M0002", amountFen: nil)).merchantName == "TAIDONG SNACKS")
        #expect(throws: WalletRefusal.invalidMerchant) { try t.service.registerMerchant(id: "M0004", name: "店", category: "餐饮", nameASCII: "台东") }
        #expect(throws: WalletRefusal.invalidMerchant) { try t.service.registerMerchant(id: "M0005", name: "店", category: "餐饮", city: "青岛") }
        #expect(throws: WalletRefusal.invalidMerchant) { try t.service.registerMerchant(id: "M0006", name: String(repeating: "店", count: 26), category: "餐饮") }
        #expect { try t.service.merchantQR(id: "M0001", amountFen: 1_234_567_890_123) } throws: { ($0 as? QRRefusal)?.refusal == .qrAmountTooLarge }
    }

    /// Every name the register accepts makes a code that decodes to the same merchant:
    /// random names of Chinese, ASCII, combining marks, emoji and format characters.
    @Test func everyAcceptedNameEncodesAndDecodes() throws {
        let t = try TestWallet()
        let pools: [[UInt32]] = [
            Array(0x4E00...0x4E80), Array(0x41...0x5A) + [0x20, 0x2D, 0x26], Array(0x300...0x36F),
            [0x1F600, 0x1F34E, 0x1F3E0], [0x200D, 0x200E, 0x202E, 0xFEFF], [0x3000, 0xFF01, 0xFF21],
        ]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state % UInt64(bound))
        }
        var accepted = 0
        var refused = 0
        for index in 0..<400 {
            var scalars = String.UnicodeScalarView()
            for _ in 0..<(1 + next(30)) {
                let pool = pools[next(pools.count)]
                scalars.append(Unicode.Scalar(pool[next(pool.count)])!)
            }
            let name = String(scalars)
            let id = "R\(index)"
            do {
                _ = try t.service.registerMerchant(id: id, name: name, category: "餐饮")
            } catch WalletRefusal.invalidMerchant {
                refused += 1
                continue
            }
            accepted += 1
            let payload = try t.service.merchantQR(id: id, amountFen: Int64(1 + next(1_000_000)))
            let decoded = try MerchantQR.parse(payload)
            #expect(decoded.merchantID == id)
            #expect(MerchantQR.isCommonCharacterSet(decoded.merchantName))
            #expect(decoded.localName == nil || decoded.localName == Validation.text(name, charactersMax: 50))
        }
        #expect(accepted > 40)
        #expect(refused > 10)
    }
}
