import Foundation

extension WalletService {
    /// What a key rotation re-sealed.
    public struct Rotation: Sendable, Codable {
        public var kycSubmissions: Int
        public var cards: Int
        /// Keyed payment password hashes.
        public var passwords: Int = 0
        public var alreadyUnderNewKey: Int
    }

    /// Re-seals every stored personal value (names and ID numbers of real-name submissions,
    /// card numbers and their fingerprints, keyed payment password hashes) from `old` to `new`, in one transaction: all of it
    /// moves to the new key, or nothing does. Values already under the new key are left alone,
    /// so an interrupted rotation can simply be run again.
    public func rotateDataKey(from old: DataKey, to new: DataKey) throws -> Rotation {
        guard old.keyID != new.keyID else {
            throw WalletError(.dataKey, "the new data key is the same as the current one")
        }
        return try store.transaction { db, _ in
            // The current key must be the database's (or, after an interrupted rotation that
            // already recorded the new one, the rotation is simply finished again).
            let wallets = WalletStore(db)
            if try wallets.recordedDataKey()?.keyID != new.keyID {
                try Self.verify(old, db: db, now: now)
            }
            var rotation = Rotation(kycSubmissions: 0, cards: 0, alreadyUnderNewKey: 0)
            func reseal(_ sealed: Data) throws -> Data? {
                let bytes = [UInt8](sealed)
                if bytes.count > 9 && Array(bytes[1..<9]) == new.keyID { return nil }
                return Data(try new.seal(try old.open(bytes)))
            }
            for row in try wallets.sealedSubmissions() {
                guard let name = try reseal(row.name), let number = try reseal(row.idNumber) else {
                    rotation.alreadyUnderNewKey += 1
                    continue
                }
                let fingerprint = new.fingerprint(try new.open([UInt8](number)))
                try wallets.resealSubmission(id: row.id, name: name, idNumber: number, fingerprint: Data(fingerprint))
                rotation.kycSubmissions += 1
            }
            let cards = CardStore(db)
            for row in try cards.sealedNumbers() {
                guard let resealed = try reseal(row.sealed) else {
                    rotation.alreadyUnderNewKey += 1
                    continue
                }
                let number = try new.open([UInt8](resealed))
                try cards.reseal(cardID: row.id, numberSealed: resealed, fingerprint: Data(new.fingerprint(number)))
                rotation.cards += 1
            }
            for row in try wallets.sealedPasswords() {
                guard let resealed = try reseal(row.sealed) else {
                    rotation.alreadyUnderNewKey += 1
                    continue
                }
                try wallets.resealPassword(walletID: row.id, sealed: resealed)
                rotation.passwords += 1
            }
            try Self.record(new, db: db, now: now)
            return rotation
        }
    }
}
