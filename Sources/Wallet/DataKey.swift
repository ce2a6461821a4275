import Crypto
import Foundation

/// The operator's 32-byte key for personal data at rest (ID numbers, names given for
/// verification, card numbers), base64 in `QDWALLET_DATA_KEY` or in the file named by
/// `QDWALLET_DATA_KEY_FILE`.
public struct DataKey: Sendable {
    private let keyBytes: [UInt8]
    var key: SymmetricKey { SymmetricKey(data: keyBytes) }
    /// The first 8 bytes of SHA-256 of the key: stored with each sealed value, so a value
    /// sealed under another key is recognised (and key rotation can find what to re-seal).
    public let keyID: [UInt8]

    /// Wraps raw key bytes (32 of them).
    public init(bytes: [UInt8]) throws(WalletError) {
        guard bytes.count == 32 else {
            throw WalletError(.dataKey, "the data key must be 32 bytes (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)")
        }
        keyBytes = bytes
        keyID = Array(SHA256.hash(data: bytes).prefix(8))
    }

    /// Reads the key from the variables the composition root hands over
    /// (`QDWALLET_DATA_KEY` or `QDWALLET_DATA_KEY_FILE`), with an error that says what to set.
    public static func fromEnvironment(_ environment: [String: String]) throws(WalletError) -> DataKey {
        var encoded: String?
        if let value = environment["QDWALLET_DATA_KEY"], !value.isEmpty {
            encoded = value
        } else if let path = environment["QDWALLET_DATA_KEY_FILE"], !path.isEmpty {
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw WalletError(.dataKey, "QDWALLET_DATA_KEY_FILE names a file that cannot be read")
            }
            // Like an SSH private key: a key file others can read is refused, not used.
            if let mode = (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int, mode & 0o077 != 0 {
                throw WalletError(.dataKey, "the data key file can be read or written by others (mode \(String(mode & 0o777, radix: 8))): run `chmod 600` on it")
            }
            encoded = String(decoding: contents, as: UTF8.self)
        }
        guard let encoded else {
            throw WalletError(.dataKey, "this command needs the personal-data key: set QDWALLET_DATA_KEY (base64 of 32 bytes) or QDWALLET_DATA_KEY_FILE (a file holding it)")
        }
        guard let data = Data(base64Encoded: encoded.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw WalletError(.dataKey, "the data key is not valid base64")
        }
        return try DataKey(bytes: Array(data))
    }

    /// A fresh random key (the demo's and the tests').
    public static func random() -> DataKey {
        let key = SymmetricKey(size: .bits256)
        return key.withUnsafeBytes { try! DataKey(bytes: Array($0)) }
    }

    /// The key as base64, for the demo to hand to its own child processes.
    public var base64: String {
        Data(keyBytes).base64EncodedString()
    }

    static let version: UInt8 = 1

    /// AES-256-GCM: version byte, key id, nonce, ciphertext and tag.
    public func seal(_ plaintext: String) throws -> [UInt8] {
        let box = try AES.GCM.seal(Data(plaintext.utf8), using: key)
        guard let combined = box.combined else {
            throw WalletError(.dataKey, "AES-GCM produced no combined box")
        }
        return [Self.version] + keyID + Array(combined)
    }

    /// Opens a value sealed by `seal`; fails on another key or altered bytes.
    public func open(_ sealed: [UInt8]) throws -> String {
        guard sealed.count > 9, sealed[0] == Self.version else {
            throw WalletError(.corrupt, "a sealed value has an unknown format")
        }
        guard Array(sealed[1..<9]) == keyID else {
            throw WalletError(.dataKey, "a sealed value was written under another data key")
        }
        let box = try AES.GCM.SealedBox(combined: Data(sealed[9...]))
        return String(decoding: try AES.GCM.open(box, using: key), as: UTF8.self)
    }

    /// A value that proves a key without revealing it: HMAC-SHA256 of a fixed text. The
    /// database stores it with the key id, so another key is refused before it seals anything.
    public var checkValue: [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Data("qdwallet data key check v1".utf8), using: key))
    }

    /// The key id as hex, as `qdwallet keys id` prints it.
    public var keyIDHex: String { Self.hex(keyID) }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    /// A key of its own for one purpose (HKDF-SHA256, RFC 5869, with the purpose as `info`):
    /// the access tokens' signing key, the one-time codes' key. Keys of different purposes
    /// reveal nothing of each other or of the data key.
    public func derivedKey(purpose: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: Data("qdwallet derived key v1".utf8), info: Data(purpose.utf8), outputByteCount: 32)
    }

    /// A keyed fingerprint (HMAC-SHA256) to find equal values without decrypting them.
    public func fingerprint(_ value: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Data(("fingerprint:" + value).utf8), using: key))
    }
}
