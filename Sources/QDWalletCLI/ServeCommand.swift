import ArgumentParser
import Dispatch
import Foundation
import Logging
import AppAccess
import Campaigns
import Feeds
import Ledger
import Notify
import Payments
import QDWalletServer
import Wallet

/// `qdwallet serve`: the wallet app's HTTP API over the database of `--db`.
struct ServeCommand: ParsableCommand, ReadOnlyCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the wallet app's HTTP API (health, readiness, metrics, the OpenAPI document) until SIGTERM.",
        discussion: """
            Prints `listening on http://HOST:PORT` once it accepts connections. SIGTERM or SIGINT \
            stops accepting, lets the requests in flight finish (at most --shutdown-grace seconds) \
            and exits 0. Listens on loopback unless told: put a reverse proxy in front of it. \
            Needs the data key (QDWALLET_DATA_KEY or QDWALLET_DATA_KEY_FILE): the app's access \
            tokens and one-time codes use keys derived from it. QR payments apply the campaigns \
            of the jobs folder, as `qdwallet pay` does. One-time codes and security alerts go \
            to the notify sink of the jobs folder's notify.toml about a second after they are \
            queued (QDWALLET_WEBHOOK_SECRET signs a webhook sink). It looks at the database's \
            schema every --schema-check-seconds: once a newer qdwallet has upgraded it, serve \
            stops as on SIGTERM and exits 4 (database_newer).
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var jobs: JobsOptions

    @Option(name: .long, help: "HOST:PORT to listen on (an IPv4 address, or [IPv6]; port 0 lets the system choose).")
    var listen = "127.0.0.1:8080"

    @Option(name: .customLong("shutdown-grace"), help: "Seconds the requests in flight may take to finish after SIGTERM (1 to 120).")
    var shutdownGrace = 10

    @Option(name: .customLong("trusted-proxy"), help: "The address of a reverse proxy whose X-Forwarded-For names the client (repeat for several); from anyone else the header is ignored.")
    var trustedProxies: [String] = []

    @Option(name: .customLong("rate-per-address"), help: "Requests per second a client address may make once its burst is spent (1 to 10000; health, readiness and metrics are not limited).")
    var ratePerAddress = 20

    @Option(name: .customLong("rate-burst"), help: "Requests a client address may make at once (1 to 100000).")
    var rateBurst = 120

    @Option(name: .customLong("rate-per-device"), help: "Requests per second a signed-in device may make, after a burst of six times as many (1 to 10000).")
    var ratePerDevice = 5

    @Flag(inversion: .prefixedNo, help: "Deliver one-time codes and security alerts to the notify sink of Jobs/notify.toml as soon as they are queued (else the notify job's beat does).")
    var deliverUrgent = true

    @Option(name: .customLong("rate-per-wallet"), help: "Requests per second all the devices of one wallet may make together, after a burst of six times as many (1 to 10000).")
    var ratePerWallet = 10

    @Option(name: .customLong("schema-check-seconds"), help: "How often serve looks whether a newer qdwallet has upgraded the database, and stops if so (1 to 300).")
    var schemaCheckSeconds = 5

    func run() throws {
        let (host, port) = try Self.address(listen)
        guard (1...120).contains(shutdownGrace) else {
            throw CLIFailure(.usage, code: "invalid_shutdown_grace", "--shutdown-grace takes 1 to 120 seconds, not \(shutdownGrace)")
        }
        guard (1...10_000).contains(ratePerAddress) else {
            throw CLIFailure(.usage, code: "invalid_rate", "--rate-per-address takes 1 to 10000 requests a second, not \(ratePerAddress)")
        }
        guard (1...100_000).contains(rateBurst) else {
            throw CLIFailure(.usage, code: "invalid_rate", "--rate-burst takes 1 to 100000 requests, not \(rateBurst)")
        }
        for (name, rate) in [("--rate-per-device", ratePerDevice), ("--rate-per-wallet", ratePerWallet)] where !(1...10_000).contains(rate) {
            throw CLIFailure(.usage, code: "invalid_rate", "\(name) takes 1 to 10000 requests a second, not \(rate)")
        }
        guard (1...300).contains(schemaCheckSeconds) else {
            throw CLIFailure(.usage, code: "invalid_schema_check", "--schema-check-seconds takes 1 to 300 seconds, not \(schemaCheckSeconds)")
        }
        for proxy in trustedProxies where !ClientAddress.isIPAddress(proxy) {
            throw CLIFailure(.usage, code: "invalid_trusted_proxy", "--trusted-proxy takes an IP address, not \(proxy.debugDescription)")
        }
        let document: String
        do {
            document = try OpenAPIDocument.load()
        } catch {
            throw CLIFailure(.infrastructure, code: "openapi_missing", "\(error)")
        }
        // A PostgreSQL session for each database call that may run at once: none is opened
        // and closed per request.
        let key = try DataKey.fromEnvironment(QDEnvironment.process.dataKeyEnvironment)
        let policy = try AppDatabase.walletPolicy(jobsDirectory: jobs.path)
        let store = try AppDatabase.openStore(path: global.databasePath, mode: .existing, sessions: WalletServer.databaseCallsMax)
        let ledger = Ledger(store: store)
        _ = try SystemAccounts.ensure(in: ledger)
        let campaigns = try CampaignSetup.load(jobs, store: store)
        let planner = CampaignPlanner(campaigns: campaigns, clock: ledger.clock)
        let wallets = WalletService(store: store, ledger: ledger, policy: policy, dataKey: key, planner: planner)
        // A key that is not this database's is refused before anything is served.
        try wallets.adoptDataKey(key)
        var backend = WalletBackend(access: AppAccess(wallets: wallets, dataKey: key), wallets: wallets, campaigns: campaigns)
        if deliverUrgent, let notify = try BillingSetup.notify(global, jobs) {
            let environment = QDEnvironment.process
            let delivery = OutboxDelivery(config: notify, secret: environment.webhookSecret, fetcher: FeedFetcher(environment: environment.fetcherEnvironment),
                                          database: store.database, clock: ledger.clock, logger: Logger(label: "qdwallet.notify"))
            // Claims of this process: apart from every job execution's (positive ids).
            let owner = -Int64.random(in: 1...Int64.max)
            backend.deliverUrgent = { try delivery.deliverUrgent(owner: owner) }
        }
        var options = WalletServer.Options(host: host, port: port)
        options.shutdownGrace = .seconds(shutdownGrace)
        options.trustedProxies = Set(trustedProxies)
        options.addressLimit = TokenBuckets.Limit(burst: rateBurst, perSecond: Double(ratePerAddress))
        options.deviceLimit = TokenBuckets.Limit(burst: ratePerDevice * 6, perSecond: Double(ratePerDevice))
        options.walletLimit = TokenBuckets.Limit(burst: ratePerWallet * 6, perSecond: Double(ratePerWallet))
        let server = WalletServer(options: options, document: document, backend: backend) {
            try store.snapshot { sql, _ in _ = try sql.int("SELECT 1") }
        }
        let display = host.contains(":") ? "[\(host)]" : host
        // A serve left running while a newer qdwallet upgraded the database stops (as on
        // SIGTERM) instead of writing rows by rules this version does not know; exit 4.
        let upgraded = Outcome()
        let (every, shown) = (Duration.seconds(schemaCheckSeconds), global.databaseDisplay)
        try Self.runBlocking {
            try await server.run(onRunning: { bound in
                FileHandle.standardOutput.write(Data("listening on http://\(display):\(bound)\n".utf8))
            }, stopWhen: {
                while !Task.isCancelled {
                    try? await Task.sleep(for: every)
                    if Task.isCancelled { return }
                    do {
                        try await Blocking.run(deadline: .seconds(30)) { try AppDatabase.requireKnownSchema(store, context: shown) }
                    } catch let error as LedgerError where error.code == .databaseNewer {
                        upgraded.set(error)  // said when serve exits, after the requests in flight
                        return
                    } catch {
                        // The database unreachable for a moment: /readyz says so; look again.
                    }
                }
            })
        }
        if let error = upgraded.error { throw error }
    }

    /// `HOST:PORT`, `[IPV6]:PORT`: refused with a usage error otherwise.
    static func address(_ text: String) throws -> (host: String, port: Int) {
        let refuse = CLIFailure(.usage, code: "invalid_listen", "--listen takes HOST:PORT (for example 127.0.0.1:8080 or [::1]:8080), not \(text.debugDescription)")
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { throw refuse }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { throw refuse }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ ("0"..."9").contains($0) }), let port = Int(portText), port <= 65_535 else { throw refuse }
        return (String(host), port)
    }

    /// Runs the server's async work from this synchronous command, to its end.
    static func runBlocking(_ body: @escaping @Sendable () async throws -> Void) throws {
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await body()
            } catch {
                outcome.set(error)
            }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw error }
    }

    private final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: (any Error)?
        func set(_ error: any Error) {
            lock.lock()
            stored = error
            lock.unlock()
        }
        var error: (any Error)? {
            lock.lock()
            defer { lock.unlock() }
            return stored
        }
    }
}
