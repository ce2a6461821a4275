import Feeds
import Foundation
import Testing
@testable import Billing
@testable import JobRunner

/// The loopback feed server of Fixtures/feed_server.py, started for one test and stopped after.
final class FeedServer {
    let process = Process()
    let port: Int
    let root: String

    init(root: String) throws {
        self.root = root
        let portFile = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-port-\(UUID().uuidString)").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/feed_server.py").path, root, portFile]
        try process.run()
        var waited = 0
        while !FileManager.default.fileExists(atPath: portFile) {
            guard waited < 100, process.isRunning else { throw FeedError(.unreachable, "the test feed server did not start") }
            usleep(50_000)
            waited += 1
        }
        port = Int(try String(contentsOfFile: portFile, encoding: .utf8)) ?? 0
        try? FileManager.default.removeItem(atPath: portFile)
    }

    func url(_ mode: String, _ file: String) -> String { "http://127.0.0.1:\(port)/\(mode)/\(file)" }

    deinit {
        // SIGKILL: a child started from a worker thread may inherit a mask that blocks SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

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
            #expect(!FileManager.default.fileExists(atPath: target + ".partial"))
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
        let deliveryErrors = try world.store.pool.read { try String.fetchAll($0, sql: "SELECT coalesce(delivery_error, delivered_to) FROM payment_reports") }
        defer { try? FileManager.default.removeItem(atPath: sampleFeeds + "/uploads") }
        #expect((try? String(contentsOfFile: delivered, encoding: .utf8))?.contains("<ReportId>QDW-QD-WATER-20261127</ReportId>") == true, "\(deliveryErrors)")
    }
}
