import AppAccess
import Billing
import Foundation
import Hummingbird
import Ledger
import Logging
import Wallet

/// A refusal as RFC 9457 "Problem Details for HTTP APIs" (`application/problem+json`): a
/// stable `type` per refusal (`urn:qdwallet:problem:<code>`, the same code the CLI prints), a
/// short English `title`, the HTTP `status`, and a human `detail` in English with its Chinese
/// beside it (`detail_zh`, an extension member as RFC 9457 section 3.2 allows). A problem never
/// carries personal data: no phone number, ID number, card number or balance.
public struct Problem: Error, Sendable, Equatable {
    public var status: HTTPResponse.Status
    public var code: String
    public var title: String
    public var detail: String
    public var detailZh: String
    /// Seconds a client should wait before trying again (429, 503), sent as `Retry-After`.
    public var retryAfter: Int?
    /// The methods the resource accepts, sent as `Allow` with a 405 (RFC 9110 section 15.5.6).
    public var allow: String?
    /// The scheme a 401 asks for, sent as `WWW-Authenticate` (RFC 9110 section 11.6.1).
    public var authenticate: String?

    public init(_ status: HTTPResponse.Status, code: String, title: String, detail: String, detailZh: String, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.detailZh = detailZh
        self.retryAfter = retryAfter
    }

    /// The problem's `type` URI.
    public var type: String { "urn:qdwallet:problem:" + code }

    public static let mediaType = "application/problem+json"

    private struct Body: Encodable {
        var type: String
        var title: String
        var status: Int
        var detail: String
        var detail_zh: String
    }

    /// The body (members sorted by name).
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(Body(type: type, title: title, status: status.code, detail: detail, detail_zh: detailZh))) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    public var response: Response {
        var headers: HTTPFields = [.contentType: Self.mediaType]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        if let allow { headers[.allow] = allow }
        if let authenticate { headers[.wwwAuthenticate] = authenticate }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: json)))
    }

    // MARK: The server's own refusals

    public static let notFound = Problem(.notFound, code: "not_found", title: "Not Found",
                                         detail: "There is no such resource.", detailZh: "没有这个资源。")
    public static let methodNotAllowed = Problem(.methodNotAllowed, code: "method_not_allowed", title: "Method Not Allowed",
                                                 detail: "The resource does not accept this method.", detailZh: "该资源不接受此请求方法。")
    public static let badRequest = Problem(.badRequest, code: "bad_request", title: "Bad Request",
                                           detail: "The request could not be read.", detailZh: "无法读取该请求。")
    public static let internalError = Problem(.internalServerError, code: "internal_error", title: "Internal Server Error",
                                              detail: "The server failed; nothing was changed by this request unless its receipt says so. Try again later.",
                                              detailZh: "服务器出错；除非收到回执，本次请求未做任何更改。请稍后再试。")
    public static let walletUnavailable = Problem(.serviceUnavailable, code: "wallet_unavailable", title: "Service Unavailable",
                                                  detail: "This server answers probes only: it was started without the wallet's services.", detailZh: "该服务器只响应探测请求，未启用钱包服务。", retryAfter: 60)
    public static let databaseUnavailable = Problem(.serviceUnavailable, code: "database_unavailable", title: "Service Unavailable",
                                                    detail: "The database does not answer in time.", detailZh: "数据库未能及时响应。", retryAfter: 5)
}

extension Problem {
    /// The problem a thrown error answers with; `allowed`: the methods of the request's path
    /// when it names a resource (the router says not-found for a method it lacks: that is a
    /// 405 with `Allow`, RFC 9110 section 15.5.6).
    static func from(_ error: any Error, allowed: [String]?, logger: Logger) -> Problem {
        if let problem = error as? Problem { return problem }
        if let refusal = error as? AppRefusal { return .app(refusal) }
        if let refusal = error as? WalletRefusal { return .wallet(refusal) }
        if let refusal = error as? QRRefusal { return .qr(refusal) }
        if let refusal = error as? BillingRefusal { return .billing(refusal) }
        if let refusal = error as? LedgerRefusal { return .ledger(refusal) }
        if error is Blocking.DeadlineExceeded { return .timeout }
        if let error = error as? any HTTPResponseError {
            switch error.status {
            case .notFound:
                guard let allowed else { return .notFound }
                var problem = Problem.methodNotAllowed
                problem.allow = allowed.joined(separator: ", ")
                return problem
            case .methodNotAllowed: return .methodNotAllowed
            case .badRequest: return .badRequest
            default: break
            }
        }
        logger.error("request failed", metadata: ["error": "\(error)"])
        return .internalError
    }
}
