import Crypto
import _CryptoExtras
import Foundation

/// PBKDF2-HMAC-SHA256 with a per-password random salt, compared in constant time.
public struct PasswordHasher: Sendable {
    /// OWASP's figure for PBKDF2-HMAC-SHA256; the floor for production.
    public static let iterationsDefault = 600_000

    public let iterations: Int

    /// `iterations` below the default are for tests only.
    public init(iterations: Int = PasswordHasher.iterationsDefault) {
        self.iterations = max(1, iterations)
    }

    public struct Hash: Sendable {
        public var hash: [UInt8]
        public var salt: [UInt8]
        /// PBKDF2's iterations; `keyedIterations` marks a keyed hash (`WalletService.hashPassword`).
        public var iterations: Int

        public init(hash: [UInt8], salt: [UInt8], iterations: Int) {
            self.hash = hash
            self.salt = salt
            self.iterations = iterations
        }

        public static let keyedIterations = 0
        /// Sealed under the data key rather than slow.
        public var isKeyed: Bool { iterations == Self.keyedIterations }
    }

    public func hash(_ password: String) throws -> Hash {
        var salt = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = UInt8.random(in: 0...255, using: &generator) }
        return Hash(hash: try derive(password, salt: salt, iterations: iterations), salt: salt, iterations: iterations)
    }

    /// Whether `password` matches; the comparison takes the same time wherever they differ.
    public func verify(_ password: String, against stored: Hash) throws -> Bool {
        let candidate = try derive(password, salt: stored.salt, iterations: stored.iterations)
        guard candidate.count == stored.hash.count else { return false }
        var difference: UInt8 = 0
        for i in candidate.indices { difference |= candidate[i] ^ stored.hash[i] }
        return difference == 0
    }

    private func derive(_ password: String, salt: [UInt8], iterations: Int) throws -> [UInt8] {
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(password.utf8), salt: salt, using: .sha256, outputByteCount: 32,
            unsafeUncheckedRounds: iterations)
        return key.withUnsafeBytes { Array($0) }
    }
}
