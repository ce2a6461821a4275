import AppAccess
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The wallet app's HTTP API (`qdwallet serve`): Hummingbird 2 in a swift-service-lifecycle
/// group, so that SIGTERM or SIGINT stops accepting connections, lets the requests in flight
/// finish within `shutdownGrace`, and ends the process. The database code runs off the event
/// loops with a deadline (`Blocking`).
public struct WalletServer: Sendable {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        /// The most a graceful shutdown waits for the requests in flight.
        public var shutdownGrace: Duration = .seconds(10)
        /// How long `/readyz` waits for the database.
        public var readinessDeadline: Duration = .seconds(2)
        /// Proxies whose `X-Forwarded-For` names the client (their own addresses).
        public var trustedProxies: Set<String> = []
        /// Requests a client address may make at once, and per second after that.
        public var addressLimit = TokenBuckets.Limit(burst: 120, perSecond: 20)
        /// Requests an authenticated device, and all the devices of one wallet together, may
        /// make at once and per second after that (the routes behind an access token).
        public var deviceLimit = TokenBuckets.Limit(burst: 30, perSecond: 5)
        public var walletLimit = TokenBuckets.Limit(burst: 60, perSecond: 10)

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public let options: Options
    /// The most database calls the server runs at once (the threads they run on).
    public static let databaseCallsMax = Blocking.threads
    /// Asks the database a trivial question; throws if it cannot answer.
    let readiness: @Sendable () throws -> Void
    let document: String
    public let metrics = ServerMetrics()
    let logger: Logger
    /// The wallet routes' services; without them (a server of probes only) those routes
    /// answer 503.
    let backend: WalletBackend?
    static let logger = Logger(label: "qdwallet.server")

    /// `document`: the OpenAPI document served at `/openapi.json` (`OpenAPIDocument.load()`).
    public init(options: Options, document: String, backend: WalletBackend? = nil, logger: Logger = Logger(label: "qdwallet.server"), readiness: @escaping @Sendable () throws -> Void) {
        self.options = options
        self.backend = backend
        self.document = document
        self.logger = logger
        self.readiness = readiness
    }

    /// The routes; every route here is a path of the OpenAPI document, and the other way round.
    func router() -> Router<WalletRequestContext> {
        let router = Router(context: WalletRequestContext.self)
        router.middlewares.add(ProblemsAndMetrics(metrics: metrics, methods: Self.methods(document)))
        router.middlewares.add(RateLimitByAddress(buckets: TokenBuckets(options.addressLimit), client: ClientAddress(trustedProxies: options.trustedProxies)))
        Self.get(router, "/healthz") { _, _ in
            Self.json("{\"status\":\"ok\"}")
        }
        Self.get(router, "/readyz") { _, _ in
            do {
                try await Blocking.run(deadline: options.readinessDeadline, readiness)
            } catch {
                logger.warning("not ready: the database did not answer", metadata: ["error": "\(error)"])
                throw Problem.databaseUnavailable
            }
            return Self.json("{\"status\":\"ready\"}")
        }
        Self.get(router, "/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        Self.get(router, "/openapi.json") { _, _ in
            Self.json(document)
        }
        if let backend {
            WalletRoutes(backend: backend, devices: TokenBuckets(options.deviceLimit), wallets: TokenBuckets(options.walletLimit)).register(router)
        } else {
            for (path, methods) in Self.methods(document) where path.hasPrefix("/v1/") {
                for method in methods {
                    router.on(RouterPath(path), method: HTTPRequest.Method(method)!) { _, _ -> Response in throw Problem.walletUnavailable }
                }
            }
        }
        return router
    }

    /// A GET route, answering HEAD too (the body dropped by the outermost middleware).
    static func get(_ router: Router<WalletRequestContext>, _ path: RouterPath, _ handler: @escaping @Sendable (Request, WalletRequestContext) async throws -> Response) {
        router.get(path, use: handler)
        router.head(path, use: handler)
    }

    /// The methods of each path, as the document declares them (HEAD wherever GET is).
    static func methods(_ document: String) -> [String: [String]] {
        guard let root = try? JSONSerialization.jsonObject(with: Data(document.utf8)) as? [String: Any],
              let paths = root["paths"] as? [String: Any] else { return [:] }
        var methods: [String: [String]] = [:]
        for (path, item) in paths {
            let declared = ((item as? [String: Any])?.keys ?? [:].keys).map { $0.uppercased() }
                .filter { ["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"].contains($0) }
            methods[path] = (declared.contains("GET") && !declared.contains("HEAD") ? declared + ["HEAD"] : declared).sorted()
        }
        return methods
    }

    static func json(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// Serves until SIGTERM or SIGINT, or until `stopWhen` returns (a graceful stop as on
    /// SIGTERM), or until the task is cancelled. `onRunning` is told the port once the server
    /// listens (the one the system chose when `options.port` is 0).
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }, stopWhen: (@Sendable () async -> Void)? = nil) async throws {
        let application = Application(
            router: router(),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "qdwallet"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
        var services: [any Service] = [application]
        if let backend { services.append(Housekeeping(access: backend.access, logger: logger)) }
        if let backend, let deliver = backend.deliverUrgent {
            services.append(UrgentDelivery(deliver: deliver, interval: backend.urgentDeliveryInterval, logger: logger))
        }
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = options.shutdownGrace
        configuration.maximumCancellationDuration = .seconds(2)
        let group = ServiceGroup(configuration: configuration)
        let stopper = stopWhen.map { wait in
            Task {
                await wait()
                await group.triggerGracefulShutdown()
            }
        }
        defer { stopper?.cancel() }
        try await group.run()
    }
}

/// The OpenAPI document, installed beside the executable as SwiftPM builds it
/// (`qdwallet_QDWalletServer.resources/openapi.json`): looked up without SwiftPM's accessor,
/// which would end the process when a binary was copied without it.
public enum OpenAPIDocument {
    public static let resourceFolder = "qdwallet_QDWalletServer.resources"

    public static func load(executable: String = CommandLine.arguments.first ?? "") throws -> String {
        let beside = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(resourceFolder).path
        var candidates = [beside]
        if let main = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(resourceFolder).path {
            candidates.append(main)
        }
        for folder in candidates {
            if let data = FileManager.default.contents(atPath: folder + "/openapi.json") {
                return String(decoding: data, as: UTF8.self)
            }
        }
        throw MissingDocument(searched: candidates)
    }

    public struct MissingDocument: Error, CustomStringConvertible {
        public var searched: [String]
        public var description: String {
            "the OpenAPI document is not installed: copy the folder \(resourceFolder) from the build beside the qdwallet executable (looked in \(searched.joined(separator: ", ")))"
        }
    }
}

/// Forgets what the app's tables need not keep (answers to idempotency keys past 48 hours,
/// spent or lapsed challenges), a bounded batch each minute, until the server stops.
struct Housekeeping: Service {
    let access: AppAccess
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let purged = try await Blocking.run(deadline: .seconds(30)) { try access.purge() }
                    if purged > 0 { logger.info("housekeeping", metadata: ["purged": "\(purged)"]) }
                } catch {
                    logger.warning("housekeeping failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(60))
            }
        }
    }
}

/// Sends the outbox's urgent messages (one-time codes, security alerts) as soon as they are
/// queued, not on the notify job's beat: a look each `interval`, each message claimed before
/// it is sent, so several servers and the notify job never send one twice.
struct UrgentDelivery: Service {
    let deliver: @Sendable () throws -> (delivered: Int, failed: Int)
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let (delivered, failed) = try await Blocking.run(deadline: .seconds(120)) { try deliver() }
                    if delivered + failed > 0 { logger.info("urgent messages delivered", metadata: ["delivered": "\(delivered)", "failed": "\(failed)"]) }
                } catch {
                    logger.warning("urgent delivery failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
