import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import QDWalletServer
import Synchronization
import Testing

/// The HTTP server in this process on a loopback port the system chooses, spoken to with a
/// real HTTP client: the operational routes, RFC 9457 problems, the metrics, the document.
@Suite struct ServerTests {
    /// The repository's OpenAPI document: the contract.
    static let document: String = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/QDWalletServer/openapi.json")
        return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }()

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: String
        func json() throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], "not a JSON object: \(body)")
        }
    }

    /// Starts a server with `readiness`, runs `body` against its base URL, then stops it the
    /// way SIGTERM would (the task cancelled: graceful shutdown).
    func withServer(readinessDeadline: Duration = .seconds(2), limit: TokenBuckets.Limit = .init(burst: 1_000, perSecond: 1_000), trustedProxies: Set<String> = [],
                    readiness: @escaping @Sendable () throws -> Void = {}, _ body: (String, WalletServer) async throws -> Void) async throws {
        var options = WalletServer.Options(host: "127.0.0.1", port: 0)
        options.readinessDeadline = readinessDeadline
        options.addressLimit = limit
        options.trustedProxies = trustedProxies
        let server = WalletServer(options: options, document: Self.document, readiness: readiness)
        try await APIWorld.run(server) { base in try await body(base, server) }
    }

    func request(_ url: String, method: HTTPMethod = .GET, headers: [(String, String)] = []) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return Reply(status: Int(response.status.code), headers: headers, body: String(buffer: body))
    }

    @Test func livenessAnswersWithoutTheDatabase() async throws {
        try await withServer(readiness: { throw CancellationError() }) { base, _ in
            let reply = try await request(base + "/healthz")
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"] == "application/json")
            #expect(try reply.json()["status"] as? String == "ok")
        }
    }

    @Test func readinessAsksTheDatabase() async throws {
        let asked = Mutex(0)
        try await withServer(readiness: { asked.withLock { $0 += 1 } }) { base, _ in
            let reply = try await request(base + "/readyz")
            #expect(reply.status == 200)
            #expect(try reply.json()["status"] as? String == "ready")
            #expect(asked.withLock { $0 } == 1)
        }
    }

    /// RFC 9457 section 3: type, title, status, detail; section 3.1.1: the status member is the
    /// response's status; `application/problem+json` (section 6.1).
    @Test func aDatabaseThatFailsMakesReadinessAProblem() async throws {
        struct Down: Error {}
        try await withServer(readiness: { throw Down() }) { base, _ in
            let reply = try await request(base + "/readyz")
            #expect(reply.status == 503)
            #expect(reply.headers["content-type"] == "application/problem+json")
            #expect(reply.headers["retry-after"] == "5")
            let problem = try reply.json()
            #expect(problem["type"] as? String == "urn:qdwallet:problem:database_unavailable")
            #expect(problem["status"] as? Int == 503)
            #expect(problem["title"] as? String == "Service Unavailable")
            #expect((problem["detail"] as? String)?.isEmpty == false)
            #expect((problem["detail_zh"] as? String)?.isEmpty == false)
        }
    }

    /// A database that hangs is a deadline passed, not a request that hangs with it.
    @Test func aDatabaseThatHangsIsAnsweredAtTheDeadline() async throws {
        let release = DispatchSemaphore(value: 0)
        defer { release.signal() }
        try await withServer(readinessDeadline: .milliseconds(300), readiness: { _ = release.wait(timeout: .now() + 30) }) { base, _ in
            let start = ContinuousClock.now
            let reply = try await request(base + "/readyz")
            #expect(reply.status == 503)
            #expect(try reply.json()["type"] as? String == "urn:qdwallet:problem:database_unavailable")
            #expect(ContinuousClock.now - start < .seconds(5))
        }
    }

    @Test func anUnknownRouteIsANotFoundProblem() async throws {
        try await withServer { base, _ in
            for path in ["/nothing", "/healthz/extra", "/v1/wallets/1%27%20OR%201=1"] {
                let reply = try await request(base + path)
                #expect(reply.status == 404, "\(path)")
                #expect(reply.headers["content-type"] == "application/problem+json")
                #expect(try reply.json()["type"] as? String == "urn:qdwallet:problem:not_found")
            }
            // RFC 9110 section 15.5.6: a method the resource lacks is a 405 with Allow.
            let post = try await request(base + "/healthz", method: .POST)
            #expect(post.status == 405)
            #expect(post.headers["allow"] == "GET, HEAD")
            #expect(post.headers["content-type"] == "application/problem+json")
            #expect(try post.json()["type"] as? String == "urn:qdwallet:problem:method_not_allowed")
        }
    }

    /// RFC 9110 section 9.3.2: HEAD is GET without the body, wherever GET is served; its
    /// Content-Length is the one GET sends (section 8.6).
    @Test func headIsGetWithoutItsBody() async throws {
        try await withServer { base, _ in
            for path in ["/healthz", "/readyz", "/openapi.json"] {
                let get = try await request(base + path)
                let head = try await request(base + path, method: .HEAD)
                #expect(head.status == 200, "\(path)")
                #expect(head.body.isEmpty, "\(path)")
                #expect(head.headers["content-type"] == get.headers["content-type"], "\(path)")
                #expect(head.headers["content-length"] == String(get.body.utf8.count), "\(path)")
            }
            let unknown = try await request(base + "/nothing", method: .HEAD)
            #expect(unknown.status == 404)
            #expect(unknown.body.isEmpty)
        }
    }

    /// RFC 6585 section 4: over its rate a client gets a 429 with Retry-After; the probes are
    /// not limited; X-Forwarded-For from a client that is not a trusted proxy changes nothing.
    @Test func aClientOverItsRateIsToldWhenToComeBack() async throws {
        try await withServer(limit: .init(burst: 2, perSecond: 0.01)) { base, _ in
            #expect(try await request(base + "/openapi.json").status == 200)
            #expect(try await request(base + "/openapi.json", headers: [("X-Forwarded-For", "198.51.100.1")]).status == 200)
            let refused = try await request(base + "/openapi.json", headers: [("X-Forwarded-For", "198.51.100.2")])
            #expect(refused.status == 429)
            #expect(refused.headers["content-type"] == "application/problem+json")
            #expect(Int(refused.headers["retry-after"] ?? "") ?? 0 >= 1)
            #expect(try refused.json()["type"] as? String == "urn:qdwallet:problem:rate_limited")
            for _ in 0..<10 { #expect(try await request(base + "/healthz").status == 200) }
            let metrics = try await request(base + "/metrics")
            #expect(metrics.body.contains("qdwallet_http_refusals_total{type=\"rate_limited\"} 1"))
        }
    }

    /// Behind a trusted proxy each client has its own bucket.
    @Test func behindATrustedProxyEachClientHasItsOwnRate() async throws {
        try await withServer(limit: .init(burst: 1, perSecond: 0.01), trustedProxies: ["127.0.0.1"]) { base, _ in
            let first = try await request(base + "/openapi.json", headers: [("X-Forwarded-For", "198.51.100.1")])
            let again = try await request(base + "/openapi.json", headers: [("X-Forwarded-For", "198.51.100.1")])
            let other = try await request(base + "/openapi.json", headers: [("X-Forwarded-For", "198.51.100.2")])
            #expect(first.status == 200)
            #expect(again.status == 429)
            #expect(other.status == 200)
        }
    }

    /// A graceful stop (as on SIGTERM) lets the request in flight finish with its answer.
    @Test func aGracefulStopLetsTheRequestInFlightFinish() async throws {
        let stop = AsyncStream<Void>.makeStream()
        var options = WalletServer.Options(host: "127.0.0.1", port: 0)
        options.readinessDeadline = .seconds(10)
        options.shutdownGrace = .seconds(3)
        let server = WalletServer(options: options, document: Self.document, readiness: { Thread.sleep(forTimeInterval: 1) })
        let port = Mutex<Int?>(nil)
        let running = Task {
            try await server.run(onRunning: { bound in port.withLock { $0 = bound } }, stopWhen: { for await _ in stop.stream { return } })
        }
        var waited = 0
        while port.withLock({ $0 }) == nil {
            try await Task.sleep(for: .milliseconds(20))
            waited += 1
            try #require(waited < 500, "the server did not start")
        }
        let base = "http://127.0.0.1:\(port.withLock { $0 }!)"
        async let slow = request(base + "/readyz")
        try await Task.sleep(for: .milliseconds(300))
        stop.continuation.yield()
        let reply = try await slow
        #expect(reply.status == 200)
        #expect(try reply.json()["status"] as? String == "ready")
        let answered = ContinuousClock.now
        try await running.value
        #expect(ContinuousClock.now - answered < .seconds(3), "the stop waited for its whole grace")
        // Stopped: nothing listens on the port any more.
        let bound = port.withLock { $0 }!
        await #expect(throws: (any Error).self) {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(2)).connect(host: "127.0.0.1", port: bound).get()
            try await channel.close()
        }
    }

    /// The Prometheus text format: requests by route pattern, method and status; unknown paths
    /// counted as one `unmatched` route; refusals by problem type; latency histograms.
    @Test func metricsCountRequestsByRouteAndStatus() async throws {
        struct Down: Error {}
        try await withServer(readiness: { throw Down() }) { base, _ in
            for _ in 0..<3 { _ = try await request(base + "/healthz") }
            _ = try await request(base + "/readyz")
            _ = try await request(base + "/random-\(UUID().uuidString)")
            _ = try await request(base + "/random-\(UUID().uuidString)")
            let reply = try await request(base + "/metrics")
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            let lines = reply.body.split(separator: "\n").map(String.init)
            #expect(lines.contains { $0.hasPrefix("qdwallet_http_requests_total{") && $0.contains("route=\"/healthz\"") && $0.contains("status=\"200\"") && $0.hasSuffix(" 3") })
            #expect(lines.contains { $0.hasPrefix("qdwallet_http_requests_total{") && $0.contains("route=\"/readyz\"") && $0.contains("status=\"503\"") && $0.hasSuffix(" 1") })
            #expect(lines.contains { $0.hasPrefix("qdwallet_http_requests_total{") && $0.contains("route=\"unmatched\"") && $0.contains("status=\"404\"") && $0.hasSuffix(" 2") })
            #expect(!reply.body.contains("random-"))
            #expect(lines.contains { $0.hasPrefix("qdwallet_http_refusals_total{type=\"not_found\"}") && $0.hasSuffix(" 2") })
            #expect(lines.contains { $0.hasPrefix("qdwallet_http_refusals_total{type=\"database_unavailable\"}") && $0.hasSuffix(" 1") })
            #expect(lines.contains { $0.hasPrefix("qdwallet_http_request_duration_seconds_count{") && $0.contains("route=\"/healthz\"") && $0.hasSuffix(" 3") })
            if !lines.contains(where: { $0.contains("unmatched") }) { Issue.record("metrics: \(reply.body)") }
        }
    }

    /// A method outside RFC 9110's (and PATCH) is counted as `other`, so it cannot grow the series; a
    /// method a templated path lacks is a 405 with the template's Allow (RFC 9110 15.5.6).
    @Test func inventedMethodsAndTemplatedPaths() async throws {
        try await withServer { base, _ in
            // Methods the HTTP parser knows (WebDAV's) but RFC 9110 does not define.
            for method in ["PROPFIND", "MKCOL", "LOCK"] { _ = try await request(base + "/nothing", method: HTTPMethod(rawValue: method)) }
            let put = try await request(base + "/v1/devices/5", method: .PUT)
            #expect(put.status == 405)
            #expect(put.headers["allow"] == "DELETE")
            #expect(try await request(base + "/v1/devices/5/extra", method: .PUT).status == 404)
            let reply = try await request(base + "/metrics")
            #expect(!reply.body.contains("PROPFIND") && !reply.body.contains("MKCOL"))
            #expect(reply.body.split(separator: "\n").contains { $0.hasPrefix("qdwallet_http_requests_total{") && $0.contains("method=\"other\"") && $0.hasSuffix(" 3") })
        }
    }

    /// The served document is the repository's, byte for byte, and every path it names is
    /// served (a GET of each answers something other than not-found).
    @Test func theServedDocumentIsTheContract() async throws {
        #expect(Self.document.contains("\"openapi\": \"3.1.0\""))
        try await withServer { base, _ in
            let reply = try await request(base + "/openapi.json")
            #expect(reply.status == 200)
            #expect(reply.body == Self.document)
            let paths = try #require(try reply.json()["paths"] as? [String: Any])
            #expect(Set(paths.keys).isSuperset(of: ["/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/sms-codes", "/v1/devices", "/v1/tokens",
                                                     "/v1/wallet", "/v1/wallet/history", "/v1/payments/qr", "/v1/transfers"]))
            // Every operation is routed: without the wallet's services this server answers
            // each one 503, never 404 or 405.
            for (path, item) in paths {
                for method in (item as? [String: Any])?.keys ?? [:].keys {
                    let reply = try await request(base + path.replacingOccurrences(of: #"\{[a-z_]+\}"#, with: "1", options: .regularExpression), method: HTTPMethod(rawValue: method.uppercased()))
                    #expect(reply.status != 404 && reply.status != 405, "\(method) \(path)")
                    if path.hasPrefix("/v1/") { #expect(reply.status == 503, "\(method) \(path)") }
                }
            }
        }
    }
}
