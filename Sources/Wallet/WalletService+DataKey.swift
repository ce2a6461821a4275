import Foundation
import Ledger
import QDSQL

extension WalletService {
    /// The database's data key, as recorded: its id (first 8 bytes of SHA-256, hex), or nil
    /// when no key has been used with this database yet.
    public func recordedDataKeyID() throws -> String? {
        try store.database.read { db in
            try WalletStore(db).recordedDataKey().map { DataKey.hex($0.keyID) }
        }
    }

    /// The data key, checked against the one this database knows, in the caller's
    /// transaction and before anything is sealed. The first key used with a database is
    /// recorded, unless values sealed under another key are already stored.
    func verifiedDataKey(_ db: any SQLConnection) throws -> DataKey {
        let key = try requireDataKey()
        try Self.verify(key, db: db, now: now)
        return key
    }

    static func verify(_ key: DataKey, db: any SQLConnection, now: TimestampMicros) throws {
        if let recorded = try WalletStore(db).recordedDataKey() {
            let keyID = recorded.keyID
            guard keyID == key.keyID, recorded.checkValue == key.checkValue else {
                throw WalletError(.dataKey, "the data key given is not this database's key: the database's key has id \(DataKey.hex(keyID)), the one given has id \(key.keyIDHex). `qdwallet keys id` prints the id of the key in QDWALLET_DATA_KEY or QDWALLET_DATA_KEY_FILE: find the key file whose id matches")
            }
            return
        }
        // Before keys were recorded: the sealed values say which key the database has.
        if let other = try WalletStore(db).otherSealingKey(than: key.keyID) {
            throw WalletError(.dataKey, "the data key given is not this database's key: its personal data is sealed under the key with id \(DataKey.hex(other)), the one given has id \(key.keyIDHex). `qdwallet keys id` prints the id of a key")
        }
        try record(key, db: db, now: now)
    }

    static func record(_ key: DataKey, db: any SQLConnection, now: TimestampMicros) throws {
        try WalletStore(db).recordDataKey(keyID: key.keyID, checkValue: key.checkValue, at: now)
    }

    /// Records `key` as the database's key when it has none yet (`init`), and checks it
    /// otherwise.
    public func adoptDataKey(_ key: DataKey) throws {
        try store.transaction { db, _ in try Self.verify(key, db: db, now: now) }
    }
}
