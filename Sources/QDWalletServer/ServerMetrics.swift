import Foundation
import Hummingbird
import Metrics
import Prometheus

/// The server's metrics, in a registry of its own (swift-metrics over swift-prometheus), served
/// at `/metrics` in the Prometheus text format: requests by route, method and status, their
/// latency as a histogram by route and method, and refusals by problem type. The route is the
/// router's pattern (`/v1/wallets/{id}`), never the path a client sent, so that a scan of
/// random paths cannot grow the series: what no route matched counts as `unmatched`.
public final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        ]
        self.factory = factory
    }

    func record(route: String, method: String, status: Int, nanoseconds: UInt64, problem: String?) {
        Counter(label: "qdwallet_http_requests_total", dimensions: [("route", route), ("method", method), ("status", String(status))], factory: factory).increment()
        Timer(label: "qdwallet_http_request_duration_seconds", dimensions: [("route", route), ("method", method)], factory: factory).recordNanoseconds(Int64(clamping: nanoseconds))
        if let problem {
            Counter(label: "qdwallet_http_refusals_total", dimensions: [("type", problem)], factory: factory).increment()
        }
    }

    /// The Prometheus text exposition of everything recorded.
    public func exposition() -> String {
        registry.emitToString()
    }
}

/// Outermost: turns every error a handler or the router throws into a problem response (a
/// `Problem` as it is, the router's not-found and method-not-allowed as theirs, anything else
/// as an internal error whose cause goes to the log only), and records every request into
/// `ServerMetrics` with the status the client gets.
struct ProblemsAndMetrics<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics
    /// The methods of each path the router serves.
    let methods: [String: [String]]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        var problem: Problem?
        let response: Response
        do {
            var answer = try await next(request, context)
            // HEAD is GET without the body (RFC 9110 section 9.3.2); the routes answer both.
            // Content-Length stays what GET would send (RFC 9110 section 8.6).
            if request.method == .head {
                let length = answer.body.contentLength
                answer.body = ResponseBody()
                if let length { answer.headers[.contentLength] = String(length) }
            }
            response = answer
        } catch {
            let refusal = Problem.from(error, allowed: Self.allowed(methods, path: request.uri.path), logger: context.logger)
            problem = refusal
            response = refusal.response
        }
        // A route's pattern starts with a slash; what no route matched has none (or none at all).
        let route = context.endpointPath.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "unmatched"
        metrics.record(route: route, method: Self.standardMethods.contains(request.method) ? request.method.rawValue : "other", status: response.status.code,
                       nanoseconds: DispatchTime.now().uptimeNanoseconds - start, problem: problem?.code)
        return response
    }

    /// Methods of RFC 9110 and PATCH: any other a client invents counts as `other`, so it
    /// cannot grow the series.
    static var standardMethods: Set<HTTPRequest.Method> { [.get, .head, .post, .put, .delete, .connect, .options, .trace, .patch] }

    /// The methods of the document's path that `path` is: by name, else by a template whose
    /// `{parameter}` segments take any one segment.
    static func allowed(_ methods: [String: [String]], path: String) -> [String]? {
        if let exact = methods[path] { return exact }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        for (template, allowed) in methods where template.contains("{") {
            let parts = template.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == segments.count else { continue }
            if zip(parts, segments).allSatisfy({ $0.hasPrefix("{") && $0.hasSuffix("}") ? !$1.isEmpty : $0 == $1 }) { return allowed }
        }
        return nil
    }
}
