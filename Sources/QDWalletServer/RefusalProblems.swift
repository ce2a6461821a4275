import AppAccess
import Billing
import Hummingbird
import Ledger
import Wallet

/// The wallet's and the app's closed lists of refusals as problems, one to one: the `type`
/// is the refusal's code, the `detail` its explanation, with the Chinese beside it. A switch
/// without a default, so a refusal added to either list cannot go unmapped.
extension Problem {
    init(refusal code: String, status: HTTPResponse.Status, detail: String, detailZh: String, retryAfter: Int? = nil) {
        self.init(status, code: code, title: Self.title(status), detail: detail, detailZh: detailZh, retryAfter: retryAfter)
    }

    static func title(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 503: "Service Unavailable"
        default: status.reasonPhrase
        }
    }

    public static func wallet(_ refusal: WalletRefusal) -> Problem {
        let (status, zh): (HTTPResponse.Status, String) = switch refusal {
        case .invalidPhone: (.unprocessableContent, "手机号为 11 位数字，以 1 开头。")
        case .invalidName: (.unprocessableContent, "姓名为 1 至 50 个字符，不含控制字符。")
        case .invalidText: (.unprocessableContent, "文字为 1 至 200 个字符，不含控制字符。")
        case .invalidIDNumber: (.unprocessableContent, "身份证号码须为 18 位且符合 GB 11643（地区码、出生日期、校验码）。")
        case .invalidCardNumber: (.unprocessableContent, "银行卡号为 16 至 19 位数字，且须通过 Luhn 校验。")
        case .invalidBank: (.unprocessableContent, "银行代码为 2 至 16 位字母或数字。")
        case .invalidPassword: (.unprocessableContent, "支付密码为 6 位数字。")
        case .invalidClass: (.unprocessableContent, "账户等级为 1、2 或 3。")
        case .invalidAmount: (.unprocessableContent, "金额至少为 0.01 元。")
        case .amountOverRequestLimit: (.unprocessableContent, "金额超过单笔限额。")
        case .invalidIdempotencyKey: (.badRequest, "幂等键为 1 至 64 个可打印 ASCII 字符。")
        case .walletExists: (.conflict, "该手机号已开通钱包。")
        case .walletNotFound: (.unprocessableContent, "该手机号未开通钱包。")
        case .noKYCSubmission: (.unprocessableContent, "没有待审核的实名认证申请。")
        case .kycPending: (.conflict, "已有实名认证申请在审核中。")
        case .kycRequired: (.forbidden, "此操作需要通过实名认证。")
        case .idNumberInUse: (.conflict, "该身份证号码已在另一个钱包认证或审核中：一人一个实名钱包。")
        case .cardNotFound: (.notFound, "该钱包没有这张银行卡。")
        case .cardAlreadyBound: (.conflict, "这张银行卡已绑定在该钱包。")
        case .cardHasPendingOperation: (.conflict, "这张银行卡有尚未完成的充值或提现。")
        case .withdrawalNotFound: (.notFound, "没有这笔提现。")
        case .withdrawalNotPending: (.conflict, "这笔提现已经完成。")
        case .passwordNotSet: (.forbidden, "请先设置支付密码。")
        case .wrongPassword: (.forbidden, "支付密码错误。")
        case .passwordLocked: (.forbidden, "连续 5 次密码错误，支付已锁定，请在锁定结束后再试。")
        case .walletFrozen: (.forbidden, "钱包已冻结：可以收款，不能付款或提现。")
        case .insufficientFunds: (.unprocessableContent, "可用余额不足。")
        case .classLimitExceeded: (.unprocessableContent, "本次付款将超过账户等级的余额支付限额。")
        case .selfTransfer: (.unprocessableContent, "不能转账给自己。")
        case .merchantExists: (.conflict, "该商户编号已存在。")
        case .merchantNotFound: (.unprocessableContent, "没有这个商户。")
        case .invalidMerchant: (.unprocessableContent, "商户信息不符合要求。")
        case .qrMalformed: (.unprocessableContent, "二维码不是有效的 EMVCo 商户主扫码。")
        case .qrBadChecksum: (.unprocessableContent, "二维码的 CRC 校验不符：内容被改动或识别有误。")
        case .qrAmountMismatch: (.unprocessableContent, "输入的金额与二维码中固定的金额不一致。")
        case .qrAmountMissing: (.unprocessableContent, "该二维码没有固定金额，请输入金额。")
        case .qrUnknownMerchant: (.unprocessableContent, "该二维码有效，但不是本钱包登记的商户。")
        case .qrCurrencyUnsupported: (.unprocessableContent, "二维码要求的币种不是人民币。")
        case .qrAmountTooLarge: (.unprocessableContent, "金额超出 EMVCo 二维码可表示的范围。")
        case .idempotencyConflict: (.unprocessableContent, "该幂等键已用于另一笔不同的请求。")
        }
        let detail: String = switch refusal {
        case .qrAmountMissing: "this QR code has no fixed amount: give the amount"
        case .amountOverRequestLimit: "the amount is over the most one request of this kind may move"
        default: refusal.explanation
        }
        return Problem(refusal: refusal.rawValue, status: status, detail: detail, detailZh: zh)
    }

    public static func app(_ refusal: AppRefusal, retryAfter: Int? = nil) -> Problem {
        let (status, zh): (HTTPResponse.Status, String) = switch refusal {
        case .codeThrottled: (.tooManyRequests, "刚刚已向该号码发送过验证码，或今日发送次数已满，请稍后再试。")
        case .codeInvalid: (.unprocessableContent, "验证码错误或已使用，如有需要请重新获取。")
        case .codeExpired: (.unprocessableContent, "验证码已过期（有效期五分钟），请重新获取。")
        case .codeAttemptsExhausted: (.unprocessableContent, "验证码尝试次数过多，请重新获取。")
        case .invalidDeviceKey: (.unprocessableContent, "设备公钥须为 P-256 公钥，65 字节未压缩格式（X9.63）的 base64。")
        case .invalidDeviceLabel: (.unprocessableContent, "设备名称为 1 至 50 个字符，不含控制字符。")
        case .nameRequired: (.unprocessableContent, "开通钱包需要填写姓名。")
        case .passwordRequired: (.unprocessableContent, "新设备需要输入钱包的支付密码（新钱包需要设置支付密码）。")
        case .tooManyDevices: (.conflict, "该钱包的设备数已达上限，请先移除一台设备。")
        case .registrationConflict: (.conflict, "登记设备期间钱包发生了变化，请重试。")
        case .tokenMissing: (.unauthorized, "此请求需要访问令牌：Authorization: Bearer TOKEN。")
        case .tokenInvalid: (.unauthorized, "访问令牌无效或被篡改。")
        case .tokenExpired: (.unauthorized, "访问令牌已过期，请用刷新令牌获取新的令牌。")
        case .deviceRevoked: (.unauthorized, "该设备已从钱包移除，请用验证码重新登录。")
        case .refreshTokenInvalid: (.unauthorized, "刷新令牌无效或已过期，请用验证码重新登录。")
        case .refreshTokenReused: (.unauthorized, "刷新令牌被重复使用：为安全起见该设备已退出登录，请用验证码重新登录。")
        case .deviceNotFound: (.notFound, "该钱包没有这台设备。")
        case .idempotencyKeyMissing: (.badRequest, "涉及资金的请求需要 Idempotency-Key 请求头（1 至 64 个可打印 ASCII 字符）。")
        case .idempotencyKeyReused: (.unprocessableContent, "该 Idempotency-Key 已用于另一笔不同的请求，新请求请使用新的键。")
        case .requestInFlight: (.conflict, "使用该 Idempotency-Key 的请求仍在处理中，请稍后重试。")
        case .confirmationRequired: (.unprocessableContent, "付款需要支付密码或设备对挑战的签名。")
        case .secondFactorRequired: (.forbidden, "大额付款，或一天内新登记设备的付款，需要同时使用支付密码和设备签名。")
        case .challengeInvalid: (.forbidden, "挑战不存在、属于其他设备、已过期或已使用，请重新获取。")
        case .signatureInvalid: (.forbidden, "设备签名与本次付款不符；该挑战已作废，请重新获取。")
        }
        var problem = Problem(refusal: refusal.rawValue, status: status, detail: refusal.explanation, detailZh: zh, retryAfter: retryAfter)
        if status == .unauthorized { problem.authenticate = "Bearer" }
        if refusal == .requestInFlight { problem.retryAfter = 1 }
        return problem
    }

    public static func billing(_ refusal: BillingRefusal) -> Problem {
        let (status, zh): (HTTPResponse.Status, String) = switch refusal {
        case .unknownBiller: (.unprocessableContent, "没有这个缴费单位。")
        case .invalidCustomerNo: (.unprocessableContent, "户号格式不符合缴费单位的要求（6 至 20 位数字）。")
        case .accountAlreadyLinked: (.conflict, "该户号已绑定在一个钱包。")
        case .accountNotLinked: (.notFound, "该钱包没有绑定这个户号。")
        case .invalidBillReference: (.unprocessableContent, "账单编号的格式为 缴费单位:账单号，例如 QD-WATER:W2611-000001。")
        case .billNotFound: (.notFound, "该钱包没有这张账单。")
        case .billNotPayable: (.conflict, "这张账单不能缴（已撤销或已退款）。")
        case .billAlreadyPaid: (.conflict, "这张账单已经缴清。")
        case .invalidLimit: (.unprocessableContent, "自动缴费限额至少为 0.01 元。")
        }
        return Problem(refusal: refusal.rawValue, status: status, detail: refusal.explanation, detailZh: zh)
    }

    /// The ledger's refusals that the wallet has no words of its own for (`WalletService.map`
    /// takes the others): none should reach a resident, but none is answered 500 either.
    public static func ledger(_ refusal: LedgerRefusal) -> Problem {
        let (status, zh): (HTTPResponse.Status, String) = switch refusal {
        case .accountFrozen: (.forbidden, "账户已冻结，不能付款。")
        case .exceedsCredits, .exceedsDebits: (.unprocessableContent, "可用余额不足。")
        case .keyReusedWithDifferentRequest: (.unprocessableContent, "该幂等键已用于另一笔不同的请求。")
        case .amountMustBePositive, .amountExceedsLimit, .amountsOverflow, .balanceOverflow: (.unprocessableContent, "金额超出允许的范围。")
        case .holdNotFound, .holdAlreadyPosted, .holdAlreadyVoided, .holdExpired, .holdNotExpired, .exceedsHoldAmount:
            (.conflict, "这笔冻结款项的状态不允许此操作。")
        case .transactionNotFound, .notReversible, .alreadyReversed: (.conflict, "这笔交易的状态不允许此操作。")
        case .keyMustNotBeEmpty, .keyTooLong, .memoTooLong, .legsMustNotBeEmpty, .tooManyLegs, .legsMustBalance, .accountsMustBeDifferent,
             .expiryMustBeInFuture, .accountNotFound, .assetMismatch, .accountClosed, .linkedEventFailed, .linkedEventChainOpen:
            (.unprocessableContent, "账务系统拒绝了这笔交易。")
        }
        return Problem(refusal: refusal.rawValue, status: status, detail: refusal.explanation, detailZh: zh)
    }

    public static func qr(_ refusal: QRRefusal) -> Problem {
        var problem = wallet(refusal.refusal)
        problem.detail = refusal.description
        return problem
    }

    static let timeout = Problem(.serviceUnavailable, code: "timeout", title: "Service Unavailable",
                                 detail: "The request did not finish in time. A request with an Idempotency-Key may be retried with the same key: it will not move money twice.",
                                 detailZh: "请求未能及时完成。带 Idempotency-Key 的请求可用同一个键重试，不会重复扣款。", retryAfter: 2)

    static func invalidBody(_ detail: String) -> Problem {
        Problem(.badRequest, code: "invalid_body", title: "Bad Request", detail: detail, detailZh: "请求体不是该操作要求的 JSON 对象。")
    }

    static let bodyTooLarge = Problem(.contentTooLarge, code: "body_too_large", title: "Content Too Large",
                                      detail: "The request body is larger than this operation takes (16 KiB).", detailZh: "请求体超过该操作允许的大小（16 KiB）。")
}
