import Feeds
import Foundation
import PropertyBased
import Testing
@testable import Campaigns
@testable import Ledger
@testable import QDConfig
@testable import Wallet

/// Random inputs and random mutations of valid ones, for a bounded number of cases (seeded,
/// reproducible with `.fixedSeed`): every input either works or is refused with a clear
/// error; nothing crashes.
@Suite struct HostileInputTests {
    static let alphabet = Array("0123456789.-+eE, _x１²\u{0}\u{202E}元")

    @Test func amountsEitherParseExactlyOrSayWhy() async {
        await propertyCheck(count: 400, input: Gen.int(in: 0...10_000).array(of: 0...24)) { codes in
            let text = String(codes.map { Self.alphabet[$0 % Self.alphabet.count] })
            do {
                let money = try Money(yuan: text)
                #expect(money.fen >= 0)
                #expect(try Money(yuan: money.yuanString).fen == money.fen)
            } catch let error as MoneyParseError {
                #expect(!error.reason.isEmpty)
            }
        }
    }

    static let validQR = MerchantQR(merchantID: "M0001", merchantName: "台东小吃", city: "QINGDAO", mcc: "5812", amountFen: 1_250).encode()

    /// Mutates `base` at positions and with values drawn from `codes`.
    static func mutate(_ base: [UInt8], _ codes: [Int]) -> [UInt8] {
        var bytes = base
        for pair in stride(from: 0, to: codes.count - 1, by: 2) where !bytes.isEmpty {
            let position = codes[pair] % bytes.count
            switch codes[pair + 1] % 4 {
            case 0: bytes[position] = UInt8(truncatingIfNeeded: codes[pair + 1] >> 2)
            case 1: bytes.remove(at: position)
            case 2: bytes.insert(UInt8(truncatingIfNeeded: codes[pair + 1] >> 2), at: position)
            default: bytes.insert(contentsOf: bytes[position..<min(bytes.count, position + 8)], at: position)
            }
        }
        return bytes
    }

    @Test func qrPayloadsEitherVerifyOrAreRefused() async {
        let base = Array(Self.validQR.utf8)
        await propertyCheck(count: 400, input: Gen.int(in: 0...1_000_000).array(of: 2...12)) { codes in
            let text = String(decoding: Self.mutate(base, codes), as: UTF8.self)
            do {
                let qr = try MerchantQR.parse(text)
                #expect(!qr.merchantID.isEmpty)
            } catch let error as WalletRefusal {
                #expect(error == .qrMalformed || error == .qrBadChecksum)
            }
        }
    }

    @Test func mutatedFeedsAreReadOrRejectedNeverCrash() async throws {
        let schema = try XMLSchema(path: sampleFeeds + "/schema/billfeed.xsd")
        let base = try [UInt8](Data(contentsOf: URL(fileURLWithPath: sampleFeeds + "/QD-WATER/QD-WATER-20261127.xml")))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("feed.xml").path
        await propertyCheck(count: 150, input: Gen.int(in: 0...10_000_000).array(of: 2...10)) { codes in
            try Data(Self.mutate(base, codes)).write(to: URL(fileURLWithPath: path))
            var bills = 0
            do {
                let summary = try FeedReader(schema: schema).read(path: path, expectedBiller: "QD-WATER", expectedDate: nil, onHeader: { _ in }, onBill: { _ in bills += 1 }, onCancel: { _ in })
                #expect(summary.bills == bills && summary.bills == summary.header.billCount)
            } catch let error as FeedError {
                #expect(!error.message.isEmpty)
            }
        }
    }

    /// Table headers toml++ would assert on in a debug build are refused before it sees them.
    @Test(arguments: ["[[#benefit]]", "[#window]", "[]", "[[]]", "[window", "[wi\u{7}ndow]"])
    func malformedHeadersAreRefusedWithTheLine(header: String) {
        #expect {
            _ = try Campaign.parse("id = \"x\"\n" + header + "\n", file: "h.toml")
        } throws: { error in
            "\(error)".hasPrefix("h.toml: line 2:")
        }
    }
}
