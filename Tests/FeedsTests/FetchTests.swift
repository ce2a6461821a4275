import Feeds
import Foundation
import QDTestSupport
import Testing
@testable import Billing
@testable import JobRunner
import Logging
import Synchronization

@Suite(.serialized) struct FetchTests {
    static let water = "QD-WATER/QD-WATER-20261127.xml"

    func fetcher(attempts: Int = 3, bytesMax: Int64 = 1 << 20) -> FeedFetcher {
        var limits = FetchLimits()
        limits.connectTimeoutSeconds = 2
        limits.totalTimeoutSeconds = 2
        limits.lowSpeedBytesPerSecond = 100
        limits.lowSpeedSeconds = 1
        limits.attemptsMax = attempts
        limits.backoffInitialMillis = 1
        limits.backoffMaxMillis = 2
        limits.bytesMax = bytesMax
        return FeedFetcher(limits: limits, environment: [:], sleepMillis: { _ in })
    }

    @Test func faultsEndInARetryThatSucceedsOrACleanFailure() throws {
        let server = try FeedServer(root: sampleFeeds)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-fetch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("feed.xml").path
        let expected = try Data(contentsOf: URL(fileURLWithPath: sampleFeeds + "/" + Self.water))

        let plain = try fetcher().fetch(url: server.url("ok", Self.water), to: target)
        #expect(plain.attempts == 1 && plain.bytes == Int64(expected.count))
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == expected)

        let flaky = try fetcher().fetch(url: server.url("flaky/2", Self.water), to: target)
        #expect(flaky.attempts == 3)

        let cases: [(String, FeedError.Code, String)] = [
            (server.url("flaky/5", Self.water), .unreachable, "5xx after every retry"),
            (server.url("missing", Self.water), .notFound, "404 is not retried"),
            (server.url("denied", Self.water), .authentication, "403 is not retried"),
            (server.url("truncated", Self.water), .unreachable, "a body shorter than its Content-Length"),
            (server.url("slow", Self.water), .timeout, "no answer in time"),
            (server.url("drip", Self.water), .timeout, "a slow drip below the low-speed limit"),
            ("https://127.0.0.1:\(server.port)/ok/\(Self.water)", .tls, "TLS to a plain-HTTP port fails verification"),
            ("ftp://127.0.0.1/feed.xml", .transport, "other protocols are refused"),
            ("file:///nonexistent/feed.xml", .notFound, "a missing file"),
        ]
        for (url, code, why) in cases {
            try? FileManager.default.removeItem(atPath: target)
            var caught: FeedError?
            do {
                _ = try fetcher().fetch(url: url, to: target)
            } catch {
                caught = error
            }
            #expect(caught?.code == code, "\(why): \(String(describing: caught))")
            #expect(!FileManager.default.fileExists(atPath: target), "\(why): no partial file is left")
            #expect(try FileManager.default.contentsOfDirectory(atPath: (target as NSString).deletingLastPathComponent).allSatisfy { !$0.hasSuffix(".partial") })
        }
        // A feed larger than the limit is refused while it streams.
        #expect { _ = try fetcher(bytesMax: 1_000).fetch(url: server.url("ok", Self.water), to: target) } throws: { ($0 as? FeedError)?.code == .tooLarge }
        // Credentials never appear in what is logged or thrown.
        #expect(FeedFetcher.redact("https://user:secret@example.test/feed.xml") == "https://***@example.test/feed.xml")
        #expect { _ = try fetcher(attempts: 1).fetch(url: "http://user:secret@127.0.0.1:\(server.port)/missing/x", to: target) } throws: { !"\($0)".contains("secret") }
    }

    @Test func theNightlyRunReadsFeedsOverHTTPAndDeliversReports() throws {
        let server = try FeedServer(root: sampleFeeds)
        let world = try BillingWorld()
        try world.populate()
        world.config.fetcher = fetcher()
        let uploads = "http://127.0.0.1:\(server.port)/upload/QDW-{yyyymmdd}.xml"
        world.config.billers = world.config.billers.map { biller in
            var biller = biller
            biller.resultURL = uploads.replacingOccurrences(of: "QDW-", with: "\(biller.code)-")
            return biller
        }
        let report = try world.run("2026-11-27", feeds: [
            "QD-WATER": server.url("flaky/1", "QD-WATER/QD-WATER-20261127.xml"),
            "QD-POWER": server.url("ok", "QD-POWER/QD-POWER-20261127.xml"),
            "QD-GAS": server.url("missing", "QD-GAS/QD-GAS-20261127.xml"),
        ])
        #expect(report.status == "completed")
        #expect(report.assessment == .fault)
        let summary = try world.summary(report)
        #expect(summary.billers.map(\.status) == ["rejected", "processed", "processed"])
        #expect(try world.count("SELECT count(*) FROM bills WHERE biller = 'QD-GAS'") == 0)
        #expect(try world.status("QD-WATER", "W2611-000001") == "paid")
        let delivered = sampleFeeds + "/uploads/QD-WATER-20261127.xml"
        let deliveryErrors = try world.store.database.read { try $0.texts("SELECT coalesce(delivery_error, delivered_to) FROM payment_reports") }
        defer { try? FileManager.default.removeItem(atPath: sampleFeeds + "/uploads") }
        #expect((try? String(contentsOfFile: delivered, encoding: .utf8))?.contains("<ReportId>QDW-QD-WATER-20261127</ReportId>") == true, "\(deliveryErrors)")
    }
}

/// Every wait of a fetch ends: a FIFO is never opened, a stop request cuts a transfer short,
/// and every attempt writes its own file.
@Suite(.serialized) struct FetchDeadlineTests {
    @Test(.timeLimit(.minutes(1))) func aFIFOIsRefusedBeforeItCanBlock() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-fifo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("feed.xml").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // Were the FIFO opened for reading, this writer would get in (a non-blocking open
        // succeeds only once a reader is there), write a line and close, so a fetch that
        // wrongly opens it (here or in the nightly run below) ends instead of blocking the
        // suite for ever.
        let watchdog = Thread {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                let fd = open(fifo, O_WRONLY | O_NONBLOCK)
                if fd >= 0 { _ = write(fd, "not a feed\n", 11); close(fd) }
                usleep(50_000)
            }
        }
        watchdog.start()
        let started = Date()
        #expect {
            _ = try FeedFetcher().fetch(url: "file://" + fifo, to: directory.appendingPathComponent("out.xml").path)
        } throws: { error in
            (error as? FeedError)?.message.contains("only regular files") == true
        }
        #expect(Date().timeIntervalSince(started) < 5)
        // The nightly run refuses that biller's feed and goes on with the others.
        let world = try BillingWorld()
        try world.populate()
        let report = try world.run("2026-11-27", feeds: ["QD-WATER": "file://" + fifo])
        let lines = try world.summary(report).billers
        #expect(lines.first { $0.biller == "QD-WATER" }?.status == "rejected")
        #expect(lines.first { $0.biller == "QD-GAS" }?.status == "processed")
    }

    @Test(.timeLimit(.minutes(1))) func aStopRequestEndsASlowDownloadWithinSeconds() throws {
        let root = sampleFeeds
        let server = try FeedServer(root: root)
        let stop = StopFlag()
        var limits = FetchLimits()
        limits.attemptsMax = 4
        limits.backoffInitialMillis = 1
        let fetcher = FeedFetcher(limits: limits, sleepMillis: { _ in }, shouldStop: { stop.isSet })
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-stop-\(UUID().uuidString).xml").path
        DispatchQueue.global().asyncAfter(deadline: .now() + 1) { stop.set() }
        let started = Date()
        // The drip server sends a byte every 2 seconds: minutes for a whole feed.
        #expect { _ = try fetcher.fetch(url: server.url("drip", FetchTests.water), to: target) } throws: { ($0 as? FeedError)?.code == .stopped }
        #expect(Date().timeIntervalSince(started) < 6)
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    /// The nightly run asked to stop in the middle of a fetch stops (not fails) at once, and
    /// the next run resumes and finishes.
    @Test(.timeLimit(.minutes(1))) func aRunStoppedInTheMiddleOfAFetchStopsAndResumes() throws {
        let world = try BillingWorld()
        try world.populate()
        let server = try FeedServer(root: sampleFeeds)
        let stopSignal = StopSignal()
        var stopping = world.config
        stopping.fetcher = stopping.fetcher.stopping(when: { stopSignal.requested })
        let implementation = NightlyBilling.implementation(stopping)
        let runner = JobRunner(store: world.store, clock: world.clock, logger: Logger(label: "t"), definitions: [try world.runner().definitions["nightly-billing"]!],
                               implementations: [implementation], stop: stopSignal, sleepMillis: { _ in })
        DispatchQueue.global().asyncAfter(deadline: .now() + 1) { stopSignal.request() }
        let started = Date()
        let stopped = try runner.run("nightly-billing", overrides: ["date": "2026-11-27", "feed.QD-GAS": server.url("drip", "QD-GAS/QD-GAS-20261127.xml")])
        #expect(stopped.status == "stopped", "\(stopped.message ?? "")")
        #expect(Date().timeIntervalSince(started) < 8)
        #expect(try world.count("SELECT count(*) FROM billing_runs WHERE status = 'rejected'") == 0)
        let resumed = try world.run("2026-11-27")
        #expect(resumed.status == "completed")
        #expect(try world.summary(resumed).billers.allSatisfy { $0.status == "processed" || $0.status == "skipped" })
    }
}
