/// Why a billing operation was refused.
public enum BillingRefusal: String, Error, Sendable, Hashable, CustomStringConvertible {
    case unknownBiller = "unknown_biller"
    case invalidCustomerNo = "invalid_customer_no"
    case accountAlreadyLinked = "account_already_linked"
    case accountNotLinked = "account_not_linked"
    case invalidBillReference = "invalid_bill_reference"
    case billNotFound = "bill_not_found"
    case billNotPayable = "bill_not_payable"
    case billAlreadyPaid = "bill_already_paid"
    case invalidLimit = "invalid_autopay_limit"

    public var description: String { rawValue + ": " + explanation }

    public var explanation: String {
        switch self {
        case .unknownBiller: "no biller with this code (see Jobs/billers.toml)"
        case .invalidCustomerNo: "the customer number does not have the biller's format"
        case .accountAlreadyLinked: "this bill account is already linked to a wallet"
        case .accountNotLinked: "this bill account is not linked to this wallet"
        case .invalidBillReference: "a bill is named BILLER:BILLID, e.g. QD-WATER:W2611-000001"
        case .billNotFound: "no such bill for this wallet"
        case .billNotPayable: "the bill is not payable (cancelled, refunded or not matched to this wallet)"
        case .billAlreadyPaid: "the bill is already paid"
        case .invalidLimit: "the autopay limit must be at least 0.01"
        }
    }
}

/// A fault of the billing run itself (not a refusal of one request): what went wrong, for
/// the operator; the run stops before anything wrong reaches a biller.
public struct BillingError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// A payment report's header disagrees with its items.
        case reportInconsistent = "report_inconsistent"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    static func reportInconsistent(_ message: String) -> BillingError { BillingError(.reportInconsistent, message) }

    public var description: String { message }
}
