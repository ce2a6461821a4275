import Crypto
import Foundation

/// The access token: the wallet, the device and the expiry, signed with HMAC-SHA256 under a key
/// derived from the data key, so every server of a deployment verifies it without the database
/// (the device's revocation is one indexed read). `v1.PAYLOAD.TAG`, both base64url without
/// padding; the payload is 24 bytes: wallet id, device id, expiry in Unix seconds, big-endian.
public struct AccessToken: Sendable, Hashable {
    public var walletID: Int64
    public var deviceID: Int64
    public var expiresAt: Int64

    public init(walletID: Int64, deviceID: Int64, expiresAt: Int64) {
        self.walletID = walletID
        self.deviceID = deviceID
        self.expiresAt = expiresAt
    }

    static let prefix = "v1."

    public func signed(with key: SymmetricKey) -> String {
        var payload: [UInt8] = []
        for value in [walletID, deviceID, expiresAt] {
            withUnsafeBytes(of: value.bigEndian) { payload.append(contentsOf: $0) }
        }
        let head = Self.prefix + Base64URL.encode(payload)
        let tag = HMAC<SHA256>.authenticationCode(for: Data(head.utf8), using: key)
        return head + "." + Base64URL.encode(Array(tag))
    }

    /// The token's claims when its tag is right and it has not expired at `now` (Unix seconds).
    public static func verify(_ text: String, key: SymmetricKey, now: Int64) throws(AppRefusal) -> AccessToken {
        guard text.utf8.count <= 128, text.hasPrefix(prefix), let dot = text.lastIndex(of: "."), dot > text.index(text.startIndex, offsetBy: 2) else { throw .tokenInvalid }
        let head = text[..<dot]
        guard let payload = Base64URL.decode(text[text.index(after: head.index(head.startIndex, offsetBy: 2))..<dot]), payload.count == 24,
              let tag = Base64URL.decode(text[text.index(after: dot)...]),
              HMAC<SHA256>.isValidAuthenticationCode(tag, authenticating: Data(head.utf8), using: key) else { throw .tokenInvalid }
        func field(_ index: Int) -> Int64 {
            payload[index * 8..<index * 8 + 8].reduce(Int64(0)) { $0 << 8 | Int64($1) }
        }
        let token = AccessToken(walletID: field(0), deviceID: field(1), expiresAt: field(2))
        guard token.expiresAt > now else { throw .tokenExpired }
        return token
    }
}

/// Base64url without padding (RFC 4648 section 5).
public enum Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ text: Substring) -> [UInt8]? {
        guard text.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64).map { Array($0) }
    }
}
