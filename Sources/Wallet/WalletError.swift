/// Why a wallet operation was refused: a closed list with a sentence each. Never carries
/// personal data.
public enum WalletRefusal: String, Error, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case invalidPhone = "invalid_phone"
    case invalidName = "invalid_name"
    case invalidText = "invalid_text"
    case invalidIDNumber = "invalid_id_number"
    case invalidCardNumber = "invalid_card_number"
    case invalidBank = "invalid_bank"
    case invalidPassword = "invalid_password_format"
    case invalidClass = "invalid_class"
    case invalidAmount = "invalid_amount"
    case amountOverRequestLimit = "amount_over_request_limit"
    case invalidIdempotencyKey = "invalid_idempotency_key"
    case walletExists = "wallet_exists"
    case walletNotFound = "wallet_not_found"
    case noKYCSubmission = "no_kyc_submission"
    case kycPending = "kyc_pending"
    case kycRequired = "kyc_required"
    case idNumberInUse = "id_number_in_use"
    case cardNotFound = "card_not_found"
    case cardAlreadyBound = "card_already_bound"
    case cardHasPendingOperation = "card_has_pending_operation"
    case withdrawalNotFound = "withdrawal_not_found"
    case withdrawalNotPending = "withdrawal_not_pending"
    case passwordNotSet = "password_not_set"
    case wrongPassword = "wrong_password"
    case passwordLocked = "password_locked"
    case walletFrozen = "wallet_frozen"
    case insufficientFunds = "insufficient_funds"
    case classLimitExceeded = "class_limit_exceeded"
    case selfTransfer = "self_transfer"
    case merchantExists = "merchant_exists"
    case merchantNotFound = "merchant_not_found"
    case invalidMerchant = "invalid_merchant"
    case qrMalformed = "qr_malformed"
    case qrBadChecksum = "qr_bad_checksum"
    case qrAmountMismatch = "qr_amount_mismatch"
    case qrAmountMissing = "qr_amount_missing"
    case qrUnknownMerchant = "qr_unknown_merchant"
    case qrCurrencyUnsupported = "qr_currency_unsupported"
    case qrAmountTooLarge = "qr_amount_too_large"
    case idempotencyConflict = "idempotency_conflict"

    public var description: String { rawValue + ": " + explanation }

    /// One sentence an operator or a resident can act on.
    public var explanation: String {
        switch self {
        case .invalidPhone: "a mobile number has 11 digits and starts with 1"
        case .invalidName: "a name has 1 to 50 characters (at most 200 bytes) and no control or format characters"
        case .invalidText: "a reason or other text has 1 to 200 characters and no control or format characters (no terminal escapes)"
        case .invalidIDNumber: "a resident ID number has 18 characters (GB 11643): a province code of GB/T 2260, a date of birth that exists and is not in the future, and a MOD 11-2 check character (0-9 or X)"
        case .invalidCardNumber: "a card number has 16 to 19 digits (spaces or dashes between them are fine) and passes the Luhn check (a digit was mistyped otherwise)"
        case .invalidBank: "a bank code has 2 to 16 letters or digits"
        case .invalidPassword: "a payment password is exactly 6 digits"
        case .invalidClass: "the account class is 1, 2 or 3"
        case .invalidAmount: "the amount must be at least 0.01"
        case .amountOverRequestLimit: "the amount is over the most one request of this kind may move (the [limits] of Jobs/wallet.toml; 50,000.00 by default)"
        case .invalidIdempotencyKey: "an idempotency key has 1 to 64 printable ASCII characters"
        case .walletExists: "a wallet is already open for this mobile number"
        case .walletNotFound: "no wallet for this mobile number"
        case .noKYCSubmission: "there is no real-name submission waiting for review"
        case .kycPending: "a real-name submission is already waiting for review"
        case .kycRequired: "this needs an approved real-name verification"
        case .idNumberInUse: "this ID number is already verified (or waiting for review) on another wallet: one person, one verified wallet"
        case .cardNotFound: "no bound card with this id on this wallet"
        case .cardAlreadyBound: "this card is already bound to this wallet"
        case .cardHasPendingOperation: "the card has a top-up or withdrawal still pending"
        case .withdrawalNotFound: "no withdrawal with this id"
        case .withdrawalNotPending: "the withdrawal is already settled"
        case .passwordNotSet: "set a payment password first"
        case .wrongPassword: "the payment password is wrong"
        case .passwordLocked: "payments are locked after 5 wrong passwords; try again after the lock ends"
        case .walletFrozen: "the wallet is frozen: it can receive but not pay or withdraw"
        case .insufficientFunds: "the available balance does not cover the amount"
        case .classLimitExceeded: "the payment would exceed the account class's balance payment limit"
        case .selfTransfer: "a transfer must go to another wallet"
        case .merchantExists: "a merchant with this id exists"
        case .merchantNotFound: "no merchant with this id"
        case .invalidMerchant: "a merchant id has 1 to 25 letters, digits or dashes, a name 1 to 25 characters, an ASCII name (QR tag 59) 1 to 25 printable ASCII characters, a city 1 to 15 printable ASCII characters, a category 1 to 32 characters, and an MCC 4 digits"
        case .qrMalformed: "the QR payload is not a valid EMVCo merchant-presented code"
        case .qrUnknownMerchant: "the QR code is a valid EMVCo code, but not of a merchant registered with qdwallet (another scheme or an unknown merchant)"
        case .qrCurrencyUnsupported: "the QR code asks for a currency other than CNY"
        case .qrAmountTooLarge: "the amount does not fit an EMVCo QR code (at most 9999999999.99)"
        case .qrBadChecksum: "the QR payload's CRC does not match: it was altered or misread"
        case .qrAmountMismatch: "the amount given differs from the amount fixed in the QR code"
        case .qrAmountMissing: "this QR code has no fixed amount: give --amount"
        case .idempotencyConflict: "the idempotency key was used before for a different request"
        }
    }
}

/// A fault of the wallet's configuration or environment (not a refusal of one request).
public struct WalletError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The personal-data key is missing or unusable.
        case dataKey = "data_key"
        /// Stored data contradicts itself.
        case corrupt
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
