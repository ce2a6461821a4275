@testable import Billing
import Feeds
import Foundation
import JobRunner
import Ledger
import PropertyBased
import QDSQL
import QDTestSupport
import Testing

/// The next biller's feed is fetched, hashed, parsed and validated on a thread of its own
/// while the writer stages the feed before it, and spooled to a file; its chunk replays the
/// spool. What a feed gives must not depend on it: the same records, the same refusal, and
/// a spool that cannot be trusted is never taken for the feed.
@Suite(.serialized) struct FeedReadAheadTests {
    /// Every record in full, then the summary or the refusal.
    static func outcome(_ read: (_ onHeader: (FeedHeader) throws -> Void, _ onBill: (FeedBill) throws -> Void, _ onCancel: (FeedCancel) throws -> Void) throws -> FeedSummary) -> [String] {
        var seen: [String] = []
        do {
            let summary = try read({ seen.append("header \($0)") }, { seen.append("bill \($0)") }, { seen.append("cancel \($0)") })
            seen.append("summary \(summary)")
        } catch let error as FeedError {
            seen.append("refused \(error.code) \(error.message) \(error.context ?? "")")
        } catch {
            seen.append("other \(error)")
        }
        return seen
    }

    static func folder(_ label: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Spooled, then replayed: exactly what the reader hands over (each field of each record,
    /// in order, the summary, the refusal after the records before it), for every sample and
    /// broken feed and for random mutations; the spool is its owner's only (mode 0600).
    @Test func aSpooledFeedGivesWhatReadingGives() async throws {
        let reader = FeedReader(schema: try XMLSchema(path: sampleFeeds + "/schema/billfeed.xsd"))
        var files: [String] = []
        for folder in ["QD-WATER", "QD-POWER", "QD-GAS", "bad"] {
            files += try FileManager.default.contentsOfDirectory(atPath: sampleFeeds + "/" + folder).filter { $0.hasSuffix(".xml") }.sorted().map { sampleFeeds + "/" + folder + "/" + $0 }
        }
        #expect(files.count >= 18)
        let directory = try Self.folder("spool")
        defer { try? FileManager.default.removeItem(at: directory) }
        let spoolPath = directory.appendingPathComponent("feed.xml.spool").path
        var refused = 0
        func compare(_ path: String, biller: String) throws {
            let plain = Self.outcome { try reader.read(path: path, expectedBiller: biller, expectedDate: nil, onHeader: $0, onBill: $1, onCancel: $2) }
            let spool = try FeedSpool.write(reader: reader, path: path, expectedBiller: biller, expectedDate: nil, to: spoolPath)
            let mode = try FileManager.default.attributesOfItem(atPath: spoolPath)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(path)")
            let replayed = Self.outcome { try spool.replay(onHeader: $0, onBill: $1, onCancel: $2) }
            #expect(replayed == plain, "\(path)")
            #expect(!plain.isEmpty)
            if plain.last?.hasPrefix("refused") == true { refused += 1 }
        }
        for file in files {
            try compare(file, biller: ["QD-WATER", "QD-POWER", "QD-GAS"].first { file.contains("/" + $0 + "/") } ?? "QD-WATER")
        }
        // Every broken sample is refused, after the records read before its fault.
        #expect(refused >= 15)
        let water = sampleFeeds + "/QD-WATER/QD-WATER-20261127.xml"
        let sample = Self.outcome { try reader.read(path: water, expectedBiller: "QD-WATER", expectedDate: nil, onHeader: $0, onBill: $1, onCancel: $2) }
        #expect(sample.filter { $0.hasPrefix("bill ") }.count >= 3 && sample.contains { $0.contains("customerName: \"") })
        let base = try [UInt8](Data(contentsOf: URL(fileURLWithPath: water)))
        let path = directory.appendingPathComponent("feed.xml").path
        await propertyCheck(count: 40, input: Gen.int(in: 0...10_000_000).array(of: 2...10)) { codes in
            try Data(HostileInputTests.mutate(base, codes)).write(to: URL(fileURLWithPath: path))
            try compare(path, biller: "QD-WATER")
        }
    }

    /// A spool cut short (inside a record, or exactly between two), grown, or with a byte
    /// changed in its framing throws `FeedSpool.Fault`: never a shorter feed, never a
    /// summary. A spool far larger than a piece (1 MiB) replays whole.
    @Test func aDamagedSpoolIsNeverReplayedAsAFeed() throws {
        let reader = FeedReader(schema: try XMLSchema(path: sampleFeeds + "/schema/billfeed.xsd"))
        let directory = try Self.folder("spool")
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = try FeedIdentityTests.feed(directory, biller: "QD-WATER", feedID: "BIG", customer: "1100234567", bills: (1...12_000).map { (id: "B-\($0)", fen: Int64(100 + $0)) })
        let feed = String(url.dropFirst("file://".count))
        let spoolPath = directory.appendingPathComponent("big.spool").path
        let spool = try FeedSpool.write(reader: reader, path: feed, expectedBiller: "QD-WATER", expectedDate: nil, to: spoolPath)
        let whole = try [UInt8](Data(contentsOf: URL(fileURLWithPath: spoolPath)))
        #expect(whole.count > 1 << 20)
        var bills = 0
        var lastBill = FeedBill()
        let summary = try spool.replay(onHeader: { _ in }, onBill: { bills += 1; lastBill = $0 }, onCancel: { _ in })
        #expect(bills == 12_000 && summary.bills == 12_000 && lastBill.billID == "B-12000")
        // The end record is a tag and a count (9 bytes); the last bill's record ends before it.
        let ends = whole.count - 9
        #expect(whole[ends] == 4)
        var damaged: [(String, [UInt8])] = [
            ("empty", []),
            ("cut at the end record", Array(whole[..<ends])),
            ("cut inside the end record", Array(whole[..<(whole.count - 1)])),
            ("cut inside a bill", Array(whole[..<(whole.count / 2)])),
            ("a byte after the end", whole + [1]),
        ]
        var changedCount = whole
        changedCount[ends + 1] ^= 1
        damaged.append(("the end's count changed", changedCount))
        var unknownTag = whole
        unknownTag[ends] = 9
        damaged.append(("an unknown tag", unknownTag))
        // Exactly between two bills: the last bill's record (a tag, nine texts each after its
        // length, two amounts) removed, the end kept.
        let texts = [lastBill.billID, lastBill.customerNo, lastBill.customerName, lastBill.district, lastBill.period, lastBill.usage, lastBill.usageUnit,
                     lastBill.issueDate, lastBill.dueDate]
        let record = 1 + texts.reduce(0) { $0 + 4 + $1.utf8.count } + 16
        #expect(whole[ends - record] == 2)
        damaged.append(("a record left out", Array(whole[..<(ends - record)]) + Array(whole[ends...])))
        for (label, bytes) in damaged {
            try Data(bytes).write(to: URL(fileURLWithPath: spoolPath))
            #expect(throws: FeedSpool.Fault.self, "\(label)") {
                _ = try spool.replay(onHeader: { _ in }, onBill: { _ in }, onCancel: { _ in })
            }
        }
        spool.remove()
        #expect(!FileManager.default.fileExists(atPath: spoolPath))
        #expect(throws: FeedSpool.Fault.self) { _ = try spool.replay(onHeader: { _ in }, onBill: { _ in }, onCancel: { _ in }) }
        // A spool that cannot be made (its folder is gone) is the disk's fault, not the feed's.
        #expect(throws: FeedSpool.Fault.self) {
            _ = try FeedSpool.write(reader: reader, path: feed, expectedBiller: "QD-WATER", expectedDate: nil, to: directory.appendingPathComponent("gone/x.spool").path)
        }
    }

    /// A feed read ahead that nobody takes (its run stopped or failed, and another run of the
    /// process started the next one) leaves no spool, whether its thread ended before the next
    /// start or after; the next start does not wait for it; a key not started gives nothing.
    @Test func aFeedReadAheadThatNobodyTakesLeavesNoSpool() throws {
        let reader = FeedReader(schema: try XMLSchema(path: sampleFeeds + "/schema/billfeed.xsd"))
        let directory = try Self.folder("ahead")
        defer { try? FileManager.default.removeItem(at: directory) }
        let feed = sampleFeeds + "/QD-WATER/QD-WATER-20261127.xml"
        @Sendable func spooled(_ name: String) throws -> IngestStep.Fetched {
            let spool = try FeedSpool.write(reader: reader, path: feed, expectedBiller: "QD-WATER", expectedDate: nil, to: directory.appendingPathComponent(name).path)
            return .readAhead(path: feed, digest: [], bytes: 0, spool: spool)
        }
        let (taken, last) = try LookaheadHarness.discardsWhatNobodyTakes(IngestStep.feedLookahead(), in: directory, suffix: ".spool",
                                                                          make: { try spooled($0 + ".spool") }, last: { .failed(code: "io", error: "x") })
        guard case .readAhead(_, _, _, let spool?)? = taken else {
            Issue.record("the run's own feed was not handed over: \(String(describing: taken))")
            return
        }
        #expect(spool.path.hasSuffix("next.spool"))
        guard case .failed("io", "x")? = last else {
            Issue.record("the last start's result was not handed over")
            return
        }
    }

    /// The threads that work ahead (the next feed read, the next payment report written)
    /// validate with schemas compiled for them from the same files, never with the ones the
    /// chunk's reader or report may be validating with at that moment; a schema set later
    /// brings its own second copy.
    @Test func theReadAheadValidatesWithASchemaOfItsOwn() throws {
        let world = try BillingWorld()
        var config = world.config
        for (path, ahead, set) in [("billfeed.xsd", \NightlyBillingConfig.readAheadSchema, \NightlyBillingConfig.feedSchema),
                                   ("payreport.xsd", \NightlyBillingConfig.reportAheadSchema, \NightlyBillingConfig.reportSchema)] {
            let first = try #require(config[keyPath: ahead])
            #expect(first !== config[keyPath: set] && first.path == config[keyPath: set].path, "\(path)")
            let other = try XMLSchema(path: sampleFeeds + "/schema/" + path)
            config[keyPath: set] = other
            let again = try #require(config[keyPath: ahead])
            #expect(again !== other && again !== first && again.path == other.path, "\(path)")
        }
    }

    /// The ingest step's feeds as its chunks receive them.
    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [String] = []
        func add(_ value: String) { lock.withLock { values.append(value) } }
        var all: [String] { lock.withLock { values } }
    }

    /// The ingest step with what its chunks receive noted, and optionally the spool damaged
    /// before the chunk replays it.
    static func watched(_ step: IngestStep, seen: Seen, damage: Bool = false) -> WatchedStep {
        WatchedStep(inner: step) { prepared in
            switch prepared as? IngestStep.Fetched {
            case .file?: seen.add("file")
            case .readAhead(_, _, _, let spool?)?:
                let mode = try FileManager.default.attributesOfItem(atPath: spool.path)[.posixPermissions] as? Int
                seen.add("spool \(mode == 0o600 ? "0600" : "mode \(String(describing: mode))")")
                if damage { try Data([1, 0, 0]).write(to: URL(fileURLWithPath: spool.path)) }
            case .readAhead?: seen.add("read ahead, no spool")
            case .failed(let code, _)?: seen.add("failed \(code)")
            case nil: seen.add("nothing")
            }
        }
    }

    /// What a night left in the database: each bill's biller, id, status, wallet and sums.
    static func night(_ world: BillingWorld) throws -> [String] {
        try world.rows("SELECT biller, bill_id, status, coalesce(reason, ''), coalesce(wallet_id, 0), due_fen, coalesce(paid_fen, 0), customer_name FROM bills ORDER BY biller, bill_id").map { row in
            let biller: String = try row[0], id: String = try row[1], status: String = try row[2], reason: String = try row[3]
            let wallet: Int64 = try row[4], due: Int64 = try row[5], paid: Int64 = try row[6], name: String = try row[7]
            return "\(biller) \(id) \(status) \(reason) \(wallet) \(due) \(paid) \(name)"
        }
    }

    func run(_ world: BillingWorld, damage: Bool = false, feeds: [String: String] = [:]) throws -> (ExecutionReport, [String]) {
        let seen = Seen()
        let steps: [any JobStep] = [Self.watched(IngestStep(config: world.config), seen: seen, damage: damage), CancelStep(config: world.config),
                                    ProcessStep(config: world.config), ReportStep(config: world.config)]
        var overrides = ["date": "2026-11-27"]
        for (biller, url) in feeds { overrides["feed.\(biller)"] = url }
        let report = try world.runner(steps: steps).run("nightly-billing", overrides: overrides)
        return (report, seen.all)
    }

    /// The second and third billers' feeds reach their chunks read ahead (spooled, mode
    /// 0600), the first is read by its chunk; no spool is left after the night; and the night
    /// leaves every bill as a night whose every feed is read by its chunk (the spools
    /// damaged, so that each chunk reads its file itself) leaves it.
    @Test func theNextFeedIsReadAheadAndTheNightIsTheSame() throws {
        let ahead = try BillingWorld()
        try ahead.populate()
        let (report, seen) = try run(ahead)
        #expect(report.status == "completed")
        #expect(seen == ["file", "spool 0600", "spool 0600"])
        let spools = try FileManager.default.subpathsOfDirectory(atPath: ahead.config.workDirectory).filter { $0.hasSuffix(".spool") }
        #expect(spools.isEmpty)
        let night = try Self.night(ahead)
        #expect(night.count >= 10)
        #expect(night.contains { $0.contains(" paid ") } && night.contains { $0.contains(" payable ") } && night.contains { $0.contains(" unmatched ") })
        let summary = try ahead.summary(report)
        #expect(summary.billers.map(\.status) == ["processed", "processed", "processed"])

        let read = try BillingWorld()
        try read.populate()
        let (readReport, readSeen) = try run(read, damage: true)
        #expect(readReport.status == "completed")
        #expect(readSeen == ["file", "spool 0600", "spool 0600"])
        #expect(try Self.night(read) == night)
        #expect(try read.reportFile("QD-POWER", "20261127").contains("<BillId>"))
        #expect(try FileManager.default.subpathsOfDirectory(atPath: read.config.workDirectory).filter { $0.hasSuffix(".spool") }.isEmpty)
        for biller in ["QD-WATER", "QD-POWER", "QD-GAS"] {
            #expect(try ahead.reportFile(biller, "20261127") .count > 0)
            #expect(try read.count("SELECT count(*) FROM bills WHERE biller = ?", [biller]) == ahead.count("SELECT count(*) FROM bills WHERE biller = ?", [biller]))
        }
    }

    /// A broken feed read ahead is refused as when its chunk reads it: the same error code
    /// and message, nothing of it staged; and a feed read ahead that was ingested before
    /// (the same FeedId, the same bytes) is skipped as a replay.
    @Test func aBrokenOrRepeatedFeedReadAheadIsTreatedAsWhenReadByItsChunk() throws {
        let world = try BillingWorld()
        try world.populate()
        // The last biller's feed is read ahead, the first's by its chunk.
        let codes = world.config.billers.map(\.code)
        let (last, first) = (codes[2], codes[0])
        for bad in ["wrong-totals", "malformed", "wrong-biller", "wrong-count"] {
            // The broken feed as each biller would send it (wrong-biller: as it is).
            let text = try String(contentsOfFile: sampleFeeds + "/bad/\(bad).xml", encoding: .utf8)
            func sent(by biller: String, to world: BillingWorld) throws -> String {
                let path = world.directory.appendingPathComponent("\(bad).xml").path
                let body = bad == "wrong-biller" ? text : text.replacingOccurrences(of: "<BillerCode>QD-WATER</BillerCode>", with: "<BillerCode>\(biller)</BillerCode>")
                try body.write(toFile: path, atomically: false, encoding: .utf8)
                return "file://" + path
            }
            let ahead = try BillingWorld()
            try ahead.populate()
            let (report, seen) = try run(ahead, feeds: [last: try sent(by: last, to: ahead)])
            #expect(seen[2] == "spool 0600", "\(bad)")
            #expect(report.status == "completed", "\(bad)")
            // The same feed in the first biller's place, read by its chunk.
            let inline = try BillingWorld()
            try inline.populate()
            let (inlineReport, inlineSeen) = try run(inline, feeds: [first: try sent(by: first, to: inline)])
            #expect(inlineReport.status == "completed" && inlineSeen[0] == "file", "\(bad)")
            func refusal(_ world: BillingWorld, _ biller: String) throws -> [String] {
                try world.rows("SELECT status, coalesce(error_code, ''), coalesce(error, '') FROM billing_runs WHERE biller = ?", [biller]).map { row in
                    let status: String = try row[0], code: String = try row[1], error: String = try row[2]
                    return "\(status) \(code) \(error.replacingOccurrences(of: world.directory.path, with: "").replacingOccurrences(of: last, with: "BILLER").replacingOccurrences(of: first, with: "BILLER"))"
                }
            }
            let refused = try refusal(ahead, last)
            #expect(refused.count == 1 && refused.first?.hasPrefix("rejected ") == true, "\(bad): \(refused)")
            let inlineRefused = try refusal(inline, first)
            #expect(refused == inlineRefused, "\(bad): \(refused) \(inlineRefused)")
            #expect(try ahead.count("SELECT count(*) FROM bills WHERE biller = ?", [last]) == 0)
            #expect(try ahead.count("SELECT count(*) FROM feeds WHERE biller = ?", [last]) == 0)
        }
        // The same night again, forced: the second and third feeds are replays, read ahead.
        let (once, _) = try run(world)
        #expect(once.status == "completed")
        let before = try Self.night(world)
        let seen = Seen()
        let steps: [any JobStep] = [Self.watched(IngestStep(config: world.config), seen: seen), CancelStep(config: world.config),
                                    ProcessStep(config: world.config), ReportStep(config: world.config)]
        let again = try world.runner(steps: steps).run("nightly-billing", overrides: ["date": "2026-11-27"], force: true)
        #expect(seen.all == ["file", "spool 0600", "spool 0600"])
        #expect(try world.summary(again).billers.map(\.status) == ["skipped", "skipped", "skipped"])
        #expect(try Self.night(world) == before)
    }
}
