/// A fault of a feed, a fetch or a report: a code, what went wrong and how to fix it, the
/// cause and where (URL without credentials, file line). Never a secret in the message.
public struct FeedError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable, Hashable, Codable {
        // Feed-level faults: the whole feed is rejected.
        case malformed = "malformed"
        case invalid = "invalid"
        case doctype = "doctype"
        case wrongNamespace = "wrong_namespace"
        case wrongBiller = "wrong_biller"
        case wrongBusinessDate = "wrong_business_date"
        case controlTotals = "control_totals"
        case tooLarge = "too_large"
        case feedIdReused = "feed_id_reused"
        case encoding = "encoding"
        // Transport.
        case notFound = "not_found"
        case unreachable = "unreachable"
        case timeout = "timeout"
        case authentication = "authentication"
        case tls = "tls"
        /// An sftp server whose SSH host key is unknown, unverifiable or not the expected one.
        case hostKey = "host_key"
        /// The transfer was stopped (SIGTERM): the run stops and resumes later.
        case stopped = "stopped"
        case transport = "transport"
        case schema = "schema"
        case io = "io"
    }

    public var code: Code
    public var message: String
    public var cause: String?
    public var context: String?

    public init(_ code: Code, _ message: String, cause: String? = nil, context: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
        self.context = context
    }

    /// Whether a retry may succeed (timeouts, 5xx, resets).
    public var isTransient: Bool {
        switch code {
        case .unreachable, .timeout, .transport: true
        default: false
        }
    }

    public var description: String {
        var text = message
        if let context { text += " [\(context)]" }
        if let cause { text += " (\(cause))" }
        return text
    }
}
