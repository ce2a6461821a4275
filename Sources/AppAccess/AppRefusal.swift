/// Why the app's sign-in, a token or an idempotent request was refused: a closed list, each
/// with a stable code (the API's problem type) and a sentence a resident can act on.
public enum AppRefusal: String, Error, Sendable, CaseIterable, CustomStringConvertible {
    case codeThrottled = "code_throttled"
    case codeInvalid = "code_invalid"
    case codeExpired = "code_expired"
    case codeAttemptsExhausted = "code_attempts_exhausted"
    case invalidDeviceKey = "invalid_device_key"
    case invalidDeviceLabel = "invalid_device_label"
    case nameRequired = "name_required"
    case passwordRequired = "payment_password_required"
    case tooManyDevices = "too_many_devices"
    case registrationConflict = "registration_conflict"
    case tokenMissing = "token_missing"
    case tokenInvalid = "token_invalid"
    case tokenExpired = "token_expired"
    case deviceRevoked = "device_revoked"
    case refreshTokenInvalid = "refresh_token_invalid"
    case refreshTokenReused = "refresh_token_reused"
    case deviceNotFound = "device_not_found"
    case idempotencyKeyMissing = "idempotency_key_missing"
    case idempotencyKeyReused = "idempotency_key_reused"
    case requestInFlight = "request_in_flight"
    case confirmationRequired = "confirmation_required"
    case secondFactorRequired = "second_factor_required"
    case challengeInvalid = "challenge_invalid"
    case signatureInvalid = "signature_invalid"

    public var description: String { rawValue + ": " + explanation }

    public var explanation: String {
        switch self {
        case .codeThrottled: "a code was sent to this number moments ago, or too many today; wait before asking again"
        case .codeInvalid: "the code is wrong or was used already; ask for a new one if needed"
        case .codeExpired: "the code has expired (codes last five minutes); ask for a new one"
        case .codeAttemptsExhausted: "the code was tried too many times; ask for a new one"
        case .invalidDeviceKey: "the device key must be a P-256 public key, base64 of its 65-byte uncompressed form (X9.63)"
        case .invalidDeviceLabel: "a device label has 1 to 50 characters and no control characters"
        case .nameRequired: "opening a wallet needs the holder's name"
        case .passwordRequired: "a new device needs the wallet's payment password (and a new wallet needs one to be set)"
        case .tooManyDevices: "the wallet has the most devices it may have; remove one first"
        case .registrationConflict: "the wallet changed while this device was being registered; try again"
        case .tokenMissing: "this needs an access token: Authorization: Bearer TOKEN"
        case .tokenInvalid: "the access token is not one this server issued, or was altered"
        case .tokenExpired: "the access token has expired; get a new one with the refresh token"
        case .deviceRevoked: "this device was removed from the wallet; sign in again with a code"
        case .refreshTokenInvalid: "the refresh token is unknown or has expired; sign in again with a code"
        case .refreshTokenReused: "the refresh token was used before: the device was signed out for safety; sign in again with a code"
        case .deviceNotFound: "no device with this id on this wallet"
        case .idempotencyKeyMissing: "a request that moves money needs an Idempotency-Key header (1 to 64 printable ASCII characters)"
        case .idempotencyKeyReused: "this Idempotency-Key was used before with a different request; use a new key for a new request"
        case .requestInFlight: "a request with this Idempotency-Key is still being processed; retry in a moment"
        case .confirmationRequired: "a payment needs the payment password or the device's signature of a challenge"
        case .secondFactorRequired: "a large payment, or a payment from a device registered in the last day, needs both the payment password and the device's signature"
        case .challengeInvalid: "the challenge is unknown, of another device, expired or used; ask for a new one"
        case .signatureInvalid: "the device's signature does not verify for this payment; the challenge is spent, ask for a new one"
        }
    }
}
