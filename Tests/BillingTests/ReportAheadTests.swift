@testable import Billing
import Crypto
import Feeds
import Foundation
import JobRunner
import Ledger
import QDSQL
import QDTestSupport
import Synchronization
import Testing

/// The next biller's payment report is written on a thread of its own while this one is
/// written. What a biller receives must not depend on it: the same bytes as a report written
/// alone from the same state, nothing in the biller's folder before its chunk takes it, and
/// nothing left beside the reports.
@Suite(.serialized) struct ReportAheadTests {
    /// `duringProcessing`: the processing writes a biller's report ahead once it is past the
    /// biller's bills (as the job does), in chunks of `chunkSize`.
    func run(_ world: BillingWorld, force: Bool = false, duringProcessing: Bool = false, chunkSize: Int = 2_000) throws -> (ExecutionReport, [String]) {
        let seen = FeedReadAheadTests.Seen()
        let reports = ReportStep(config: world.config)
        let steps: [any JobStep] = [IngestStep(config: world.config), CancelStep(config: world.config), ProcessStep(config: world.config, reports: duringProcessing ? reports : nil),
                                    WatchedStep(inner: reports) { prepared in
                                        // Each chunk's report: its biller, the thread that wrote it, and whether it is in its place.
                                        guard let written = prepared as? ReportStep.Written else { return seen.add("nothing") }
                                        let onDisk = FileManager.default.fileExists(atPath: written.path)
                                        seen.add("\(written.header.billerCode) \(written.ahead ? "ahead" : "here")\(written.unchanged ? " unchanged" : "")\(onDisk ? "" : " missing")")
                                    }]
        let report = try world.runner(chunkSize: chunkSize, steps: steps).run("nightly-billing", overrides: ["date": "2026-11-27"], force: force)
        return (report, seen.all)
    }

    /// Every file in the reports' folders, by its path below them.
    static func files(_ world: BillingWorld) throws -> [String] {
        try FileManager.default.subpathsOfDirectory(atPath: world.config.reportsDirectory).filter { $0.hasSuffix(".xml") || $0.contains(".xml.") }.sorted()
    }

    /// The second and third billers' reports reach their chunks written ahead, in their
    /// places; each report's bytes are those recorded (SHA-256) and those of the same report
    /// written alone from the same state; nothing is left beside them (no `.ahead`,
    /// `.partial`, `.items` or `.candidate`). A forced rerun finds all three unchanged, the
    /// second and third again ahead, and leaves the folder as it was.
    @Test func theNextReportIsWrittenAheadAndIsTheReportWrittenAlone() throws {
        let world = try BillingWorld()
        try world.populate()
        let (report, seen) = try run(world)
        #expect(report.status == "completed")
        #expect(seen == ["QD-GAS here", "QD-POWER ahead", "QD-WATER ahead"])
        let files = try Self.files(world)
        // Each report in its place and delivered (the billers' outbound folder), nothing beside.
        let reports = ["QD-GAS/QDW-QD-GAS-20261127.xml", "QD-POWER/QDW-QD-POWER-20261127.xml", "QD-WATER/QDW-QD-WATER-20261127.xml"]
        #expect(files == reports + reports.map { "outbound/" + $0 }, "\(files)")
        try Self.expectEachReportIsTheReportWrittenAlone(world)
        #expect(try world.reportFile("QD-WATER", "20261127").contains("<Status>PAID</Status>"))

        let (again, seenAgain) = try run(world, force: true)
        #expect(again.status == "completed")
        #expect(seenAgain == ["QD-GAS here unchanged", "QD-POWER ahead unchanged", "QD-WATER ahead unchanged"])
        let filesAgain = try Self.files(world)
        #expect(filesAgain == files, "\(filesAgain)")
    }

    /// Each biller's report, as recorded (SHA-256) and on disk, is the report written alone
    /// from the state the night left, with its CreatedAt and ledger head: a report written
    /// before the night had finished with its biller's bills would list one of them still new.
    static func expectEachReportIsTheReportWrittenAlone(_ world: BillingWorld) throws {
        let date = try #require(ShanghaiCalendar.Date(iso: "2026-11-27"))
        let scratch = try FeedReadAheadTests.folder("report-alone")
        defer { try? FileManager.default.removeItem(at: scratch) }
        var items = 0
        for biller in ["QD-GAS", "QD-POWER", "QD-WATER"] {
            let stored = try #require(try world.store.database.read { try BillStore($0).report(biller: biller, on: date) })
            let bytes = try Data(contentsOf: URL(fileURLWithPath: stored.path))
            #expect(Data(SHA256.hash(data: bytes)) == stored.sha256, "\(biller)")
            let alone = scratch.appendingPathComponent("\(biller).xml").path
            let (_, digest) = try world.store.database.read { db in
                try PaymentReports.write(db, biller: biller, date: date, now: stored.createdAt, path: alone, schema: world.config.reportSchema, ledgerHead: stored.ledgerHead)
            }
            #expect(digest == stored.sha256, "\(biller)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: alone)) == bytes, "\(biller)")
            items += bytes.count
        }
        #expect(items > 0)
    }

    /// As the job runs it, a biller's report is written on the thread ahead as soon as the
    /// processing is past the biller's last bill of the day: in chunks of one bill, the first
    /// two billers' reports reach their chunks written ahead during the processing, the third
    /// ahead during the first report's chunk. Each is the report written alone from the state
    /// the night left (none was written before its biller's bills were all processed: the gas
    /// feed's three bills, two of them linked, are three chunks), with the paid bills the
    /// database holds. Nothing is left beside them.
    @Test func aBillersReportIsWrittenDuringTheProcessingOnceItsBillsAreProcessed() throws {
        let world = try BillingWorld()
        try world.populate()
        let (report, seen) = try run(world, duringProcessing: true, chunkSize: 1)
        #expect(report.status == "completed")
        #expect(seen == ["QD-GAS ahead", "QD-POWER ahead", "QD-WATER ahead"])
        try Self.expectEachReportIsTheReportWrittenAlone(world)
        let date = try #require(ShanghaiCalendar.Date(iso: "2026-11-27"))
        for biller in ["QD-GAS", "QD-POWER", "QD-WATER"] {
            let listed = try world.reportFile(biller, "20261127").components(separatedBy: "<Status>PAID</Status>").count - 1
            let paid = try world.store.database.read { db in
                try db.int("SELECT count(*) FROM bills WHERE biller = ? AND status = 'paid' AND paid_business_date = ?", [biller, date.iso])
            }
            #expect(listed == paid && listed > 0, "\(biller)")
        }
        #expect(try world.reportFile("QD-GAS", "20261127").contains("<Status>PAID</Status>"))
        let reports = ["QD-GAS/QDW-QD-GAS-20261127.xml", "QD-POWER/QDW-QD-POWER-20261127.xml", "QD-WATER/QDW-QD-WATER-20261127.xml"]
        #expect(try Self.files(world) == reports + reports.map { "outbound/" + $0 })
    }

    /// The thread ahead keeps one run's pieces, one an index: those written during the
    /// processing wait for their chunks in any order; a piece started again for its index
    /// hands over the newer one, and the older, ended first, is discarded; another run's start
    /// discards what this one left. `running` says whether a piece's thread still runs (a
    /// report is written ahead one at a time).
    @Test func theThreadAheadKeepsOneRunsPiecesAndTheNewestOfEach() throws {
        let discarded = Mutex<[Int]>([])
        let lookahead = Lookahead<Int>(threadName: "test-ahead") { value in discarded.withLock { $0.append(value) } }
        func key(_ execution: Int64, _ index: Int) -> Lookahead<Int>.Key { .init(execution: execution, index: index) }
        let (first, second) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        lookahead.start(key(1, 1)) { first.wait(); return 1 }
        #expect(lookahead.running && lookahead.holds(key(1, 1)))
        lookahead.start(key(1, 1)) { second.wait(); return 2 }
        first.signal()
        #expect(LookaheadHarness.eventually { discarded.withLock { $0 } == [1] })
        #expect(lookahead.running)
        second.signal()
        #expect(try lookahead.take(key(1, 1)) == 2)
        #expect(!lookahead.holds(key(1, 1)) && !lookahead.running)
        lookahead.start(key(1, 2)) { 3 }
        lookahead.start(key(1, 3)) { 4 }
        #expect(LookaheadHarness.eventually { !lookahead.running })
        #expect(try lookahead.take(key(1, 3)) == 4)
        #expect(try lookahead.take(key(1, 2)) == 3)
        #expect(try lookahead.take(key(1, 2)) == nil)
        lookahead.start(key(1, 4)) { 5 }
        #expect(LookaheadHarness.eventually { !lookahead.running })
        lookahead.start(key(2, 1)) { 6 }
        #expect(discarded.withLock { $0 } == [1, 5])
        #expect(try lookahead.take(key(1, 4)) == nil)
        #expect(try lookahead.take(key(2, 1)) == 6)
    }

    /// A report written ahead waits beside its place (`.ahead`) until its chunk takes it; one
    /// nobody takes (the run stopped or failed before its chunk) is removed, at once or when
    /// its thread ends, and never reaches the folder a biller may read.
    @Test func aReportWrittenAheadThatNobodyTakesNeverReachesItsPlace() throws {
        let directory = try FeedReadAheadTests.folder("report-ahead")
        defer { try? FileManager.default.removeItem(at: directory) }
        @Sendable func drafted(_ name: String, unchanged: Bool = false) throws -> ReportStep.Drafted {
            let path = directory.appendingPathComponent(name).path
            if !unchanged { try Data("<PaymentReport/>".utf8).write(to: URL(fileURLWithPath: path + ".ahead")) }
            let header = ReportHeader(reportID: name, billerCode: "QD-WATER", businessDate: "2026-11-27", createdAt: 0, originalFeedID: nil, itemCount: 0,
                                      paidCount: 0, paidSumFen: 0, refundedCount: 0, refundedSumFen: 0)
            return ReportStep.Drafted(basePath: path, path: path, header: header, digest: Data(), version: 1, unchanged: unchanged, ahead: true, aheadFile: unchanged ? nil : path + ".ahead")
        }
        func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path) }
        let (taken, last) = try LookaheadHarness.discardsWhatNobodyTakes(ReportStep.reportLookahead(), in: directory, suffix: ".xml.ahead",
                                                                          make: { try drafted($0 + ".xml") }, last: { try drafted("unchanged.xml", unchanged: true) })
        #expect(taken?.aheadFile == directory.appendingPathComponent("next.xml.ahead").path)
        // Nothing ever reached a report's place; a report found unchanged names no file.
        #expect(!exists("slow.xml") && !exists("next.xml") && !exists("ended.xml"))
        #expect(last?.aheadFile == nil && last?.unchanged == true)
    }
}
