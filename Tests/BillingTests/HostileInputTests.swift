import Feeds
import Foundation
import PropertyBased
import QDTestSupport
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

    static let validQR = try! MerchantQR(merchantID: "M0001", merchantName: "TAIDONG SNACKS", city: "QINGDAO", mcc: "5812", amountFen: 1_250, localName: "台东小吃", localCity: "青岛").encode()

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
            } catch let error as QRRefusal {
                let allowed: [WalletRefusal] = [.qrMalformed, .qrBadChecksum, .qrUnknownMerchant, .qrCurrencyUnsupported, .qrAmountTooLarge]
                #expect(allowed.contains(error.refusal))
                #expect(!error.clause.isEmpty)
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

    /// What a read of a feed gave: every record in order and the summary, or the refusal.
    static func outcome(_ read: (_ onBill: (FeedBill) throws -> Void, _ onCancel: (FeedCancel) throws -> Void) throws -> FeedSummary) -> [String] {
        var seen: [String] = []
        do {
            let summary = try read({ seen.append("bill \($0.billID) \($0.customerNo) \($0.dueFen)") }, { seen.append("cancel \($0.billID) \($0.reason)") })
            seen.append("summary \(summary.bills) \(summary.cancels) \(summary.header.feedID)")
        } catch let error as FeedError {
            seen.append("refused \(error.code) \(error.message) \(error.context ?? "")")
        } catch {
            seen.append("other \(error)")
        }
        return seen
    }

    /// The reader beside the writer (its own thread, a bounded queue) hands over exactly what
    /// the plain reader does: the same records in the same order, the same summary, the same
    /// refusal, for every sample and broken feed and for random mutations, whatever its
    /// batch and queue sizes.
    @Test func readingBesideGivesWhatReadingGives() async throws {
        let schema = try XMLSchema(path: sampleFeeds + "/schema/billfeed.xsd")
        let reader = FeedReader(schema: schema)
        var files: [String] = []
        for folder in ["QD-WATER", "QD-POWER", "QD-GAS", "bad"] {
            files += try FileManager.default.contentsOfDirectory(atPath: sampleFeeds + "/" + folder).filter { $0.hasSuffix(".xml") }.sorted().map { sampleFeeds + "/" + folder + "/" + $0 }
        }
        #expect(files.count >= 18)
        func compare(_ path: String, biller: String) {
            let plain = Self.outcome { try reader.read(path: path, expectedBiller: biller, expectedDate: nil, onHeader: { _ in }, onBill: $0, onCancel: $1) }
            for (batch, depth) in [(1, 1), (3, 2), (512, 4)] {
                let beside = Self.outcome { try reader.readBeside(path: path, expectedBiller: biller, expectedDate: nil, batch: batch, depth: depth, onHeader: { _ in }, onBill: $0, onCancel: $1) }
                #expect(beside == plain, "\(path) batch \(batch) depth \(depth)")
            }
        }
        for file in files {
            let biller = ["QD-WATER", "QD-POWER", "QD-GAS"].first { file.contains("/" + $0 + "/") } ?? "QD-WATER"
            compare(file, biller: biller)
        }
        let base = try [UInt8](Data(contentsOf: URL(fileURLWithPath: sampleFeeds + "/QD-WATER/QD-WATER-20261127.xml")))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-beside-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("feed.xml").path
        await propertyCheck(count: 60, input: Gen.int(in: 0...10_000_000).array(of: 2...10)) { codes in
            try Data(Self.mutate(base, codes)).write(to: URL(fileURLWithPath: path))
            compare(path, biller: "QD-WATER")
        }
    }

    /// A callback that throws stops the reader thread: the error comes back at once, no
    /// record after it is handed over, and the call does not return before the thread ended.
    @Test func aThrowingCallbackStopsTheReaderBeside() throws {
        struct Enough: Error {}
        let schema = try XMLSchema(path: sampleFeeds + "/schema/billfeed.xsd")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-beside-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = try FeedIdentityTests.feed(directory, biller: "QD-WATER", feedID: "BIG", customer: "1100234567", bills: (1...5_000).map { (id: "B-\($0)", fen: Int64(100 + $0)) })
        let path = String(url.dropFirst("file://".count))
        var seen = 0
        #expect(throws: Enough.self) {
            _ = try FeedReader(schema: schema).readBeside(path: path, expectedBiller: "QD-WATER", expectedDate: nil, batch: 16, depth: 2, onHeader: { _ in }, onBill: { _ in
                seen += 1
                if seen == 40 { throw Enough() }
            }, onCancel: { _ in })
        }
        #expect(seen == 40)
        var headers = 0
        #expect(throws: Enough.self) {
            _ = try FeedReader(schema: schema).readBeside(path: path, expectedBiller: "QD-WATER", expectedDate: nil, onHeader: { _ in
                headers += 1
                throw Enough()
            }, onBill: { _ in seen += 1 }, onCancel: { _ in })
        }
        #expect(headers == 1 && seen == 40)
        // Read whole, the same file gives every bill.
        var all = 0
        let summary = try FeedReader(schema: schema).readBeside(path: path, expectedBiller: "QD-WATER", expectedDate: nil, onHeader: { _ in }, onBill: { _ in all += 1 }, onCancel: { _ in })
        #expect(all == 5_000 && summary.bills == 5_000)
    }

    /// A one-bill feed with `name` as the customer's name, as bytes (for the cases below).
    static func oneBillFeed(name: [UInt8], prefix: [UInt8] = []) -> [UInt8] {
        let head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<BillFeed xmlns=\"urn:qdwallet:billfeed:1\"><Header><FeedId>F1</FeedId><BillerCode>QD-WATER</BillerCode><CreatedAt>2026-11-27T22:00:00+08:00</CreatedAt><BusinessDate>2026-11-27</BusinessDate><NbOfBills>1</NbOfBills><CtrlSum Ccy=\"CNY\">46.10</CtrlSum></Header><Bill><BillId>W1</BillId><CustomerNo>1000000001</CustomerNo><CustomerName>"
        let tail = "</CustomerName><District>市南区</District><Period>2026-11</Period><Usage Unit=\"m3\">12.5</Usage><Amount Ccy=\"CNY\">45.60</Amount><LateFee Ccy=\"CNY\">0.50</LateFee><IssueDate>2026-11-27</IssueDate><DueDate>2026-12-20</DueDate></Bill></BillFeed>\n"
        return prefix + Array(head.utf8) + name + Array(tail.utf8)
    }

    /// A byte-order mark is accepted; invalid UTF-8 and a 12 MB text node are refused as
    /// feed errors, never crash, and hand over no bill.
    @Test(arguments: ["bom", "invalid-utf8", "overlong-utf8", "huge-text"])
    func hostileTextIsReadOrRefusedWhole(label: String) throws {
        let accepted = label == "bom"
        let name: [UInt8] = switch label {
        case "invalid-utf8": [0xE5, 0xBC, 0xA0, 0xC3, 0x28, 0xFF]
        case "overlong-utf8": [0xC0, 0xAF]
        case "huge-text": [UInt8](repeating: UInt8(ascii: "A"), count: 12 << 20)
        default: Array("张*".utf8)
        }
        let schema = try XMLSchema(path: sampleFeeds + "/schema/billfeed.xsd")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("\(label).xml").path
        let bytes = Self.oneBillFeed(name: name, prefix: accepted ? [0xEF, 0xBB, 0xBF] : [])
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        var bills: [FeedBill] = []
        do {
            _ = try FeedReader(schema: schema).read(path: path, expectedBiller: "QD-WATER", expectedDate: "2026-11-27", onHeader: { _ in }, onBill: { bills.append($0) }, onCancel: { _ in })
            #expect(accepted, "\(label) was accepted")
            #expect(bills.count == 1 && bills.first?.dueFen == 4_610 && bills.first?.customerName == "张*")
        } catch let error as FeedError {
            #expect(!accepted, "\(label): \(error)")
            #expect(!error.message.isEmpty && error.message.utf8.count < 2_000, "the error must be short and clear")
            #expect(bills.isEmpty, "\(label): a bill was handed over from a refused feed")
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
