import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// The request context of qdwallet's routes: Hummingbird's, and the peer's address.
public struct WalletRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The address of the connection's other end (the client, or a proxy in front of us).
    public let peer: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = source.channel.remoteAddress?.ipAddress
    }
}

/// Who the client is, by address: the peer, unless the peer is a proxy the operator trusts
/// (`--trusted-proxy`), in which case the rightmost address of `X-Forwarded-For` that is not
/// itself a trusted proxy. A client that is not a trusted proxy cannot choose its address by
/// sending the header: it is ignored.
public struct ClientAddress: Sendable {
    public var trustedProxies: Set<String>

    public init(trustedProxies: Set<String> = []) {
        self.trustedProxies = trustedProxies
    }

    public func of(peer: String?, forwardedFor: [String]) -> String {
        guard let peer else { return "unknown" }
        guard trustedProxies.contains(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for hop in hops.reversed() where !trustedProxies.contains(hop) {
            // An address, not whatever a client wrote: anything else is the proxy's own.
            return Self.isIPAddress(hop) ? hop : peer
        }
        return peer
    }

    /// Whether `text` is an IPv4 or IPv6 address.
    public static func isIPAddress(_ text: String) -> Bool {
        (try? SocketAddress(ipAddress: text, port: 0)) != nil
    }
}

/// Token buckets by key (a client address here; a device and a wallet once requests carry
/// them): `burst` requests at once, refilled at `perSecond`. The table is bounded: when it
/// holds `keysMax` keys, full buckets (clients at rest) are forgotten first, then the
/// longest unseen; a scan from many addresses cannot grow memory without end.
public final class TokenBuckets: Sendable {
    public struct Limit: Sendable {
        public var burst: Double
        public var perSecond: Double
        public init(burst: Int, perSecond: Double) {
            self.burst = Double(max(1, burst))
            self.perSecond = max(0.001, perSecond)
        }
    }

    struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    let limit: Limit
    let keysMax: Int
    private let buckets = Mutex<[String: Bucket]>([:])

    public init(_ limit: Limit, keysMax: Int = 100_000) {
        self.limit = limit
        self.keysMax = max(16, keysMax)
    }

    /// Takes a token for `key`: nil when granted, else the whole seconds until one is free.
    public func take(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        buckets.withLock { table in
            var bucket = table[key] ?? Bucket(tokens: limit.burst, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(limit.burst, bucket.tokens + max(0, seconds) * limit.perSecond)
            bucket.updated = now
            defer {
                if table[key] == nil && table.count >= keysMax { Self.evict(&table, limit: limit, now: now) }
                table[key] = bucket
            }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / limit.perSecond).rounded(.up)))
        }
    }

    private static func evict(_ table: inout [String: Bucket], limit: Limit, now: ContinuousClock.Instant) {
        let refilled = table.filter { _, bucket in
            let elapsed = now - bucket.updated
            return bucket.tokens + Double(elapsed.components.seconds) * limit.perSecond >= limit.burst
        }
        if refilled.count >= table.count / 4 {
            for key in refilled.keys { table.removeValue(forKey: key) }
        } else {
            let oldest = table.sorted { $0.value.updated < $1.value.updated }.prefix(table.count / 4)
            for (key, _) in oldest { table.removeValue(forKey: key) }
        }
    }

    var count: Int { buckets.withLock { $0.count } }
}

extension Problem {
    /// `source`: what made too many requests (this client, this device, this wallet).
    public static func rateLimited(retryAfter: Int, source: String = "client") -> Problem {
        Problem(.tooManyRequests, code: "rate_limited", title: "Too Many Requests",
                detail: "Too many requests from this \(source); wait before trying again.", detailZh: "请求过于频繁，请稍后再试。", retryAfter: retryAfter)
    }
}

/// Refuses a client over its rate with a 429 problem and `Retry-After` (RFC 6585 section 4).
/// The probes of the infrastructure (`/healthz`, `/readyz`, `/metrics`) are not limited: a
/// load balancer asks them often, from one address.
struct RateLimitByAddress: RouterMiddleware {
    typealias Context = WalletRequestContext
    let buckets: TokenBuckets
    let client: ClientAddress
    static let unlimited: Set<String> = ["/healthz", "/readyz", "/metrics"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if !Self.unlimited.contains(request.uri.path) {
            let address = client.of(peer: context.peer, forwardedFor: request.headers[values: .xForwardedFor])
            if let wait = buckets.take(address) { throw Problem.rateLimited(retryAfter: wait) }
        }
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}
