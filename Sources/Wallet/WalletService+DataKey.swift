import Foundation
import GRDB
import Ledger

extension WalletService {
    /// The database's data key, as recorded: its id (first 8 bytes of SHA-256, hex), or nil
    /// when no key has been used with this database yet.
    public func recordedDataKeyID() throws -> String? {
        try store.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT key_id FROM wallet_data_key WHERE id = 1").map { DataKey.hex([UInt8]($0[0] as Data)) }
        }
    }

    /// The data key, checked against the one this database knows, in the caller's
    /// transaction and before anything is sealed. The first key used with a database is
    /// recorded, unless values sealed under another key are already stored.
    func verifiedDataKey(_ db: Database) throws -> DataKey {
        let key = try requireDataKey()
        try Self.verify(key, db: db, now: now)
        return key
    }

    static func verify(_ key: DataKey, db: Database, now: TimestampMicros) throws {
        if let row = try Row.fetchOne(db, sql: "SELECT key_id, check_value FROM wallet_data_key WHERE id = 1") {
            let keyID = [UInt8](row[0] as Data)
            guard keyID == key.keyID, [UInt8](row[1] as Data) == key.checkValue else {
                throw WalletError(.dataKey, "the data key given is not this database's key: the database's key has id \(DataKey.hex(keyID)), the one given has id \(key.keyIDHex). `qdwallet keys id` prints the id of the key in QDWALLET_DATA_KEY or QDWALLET_DATA_KEY_FILE: find the key file whose id matches")
            }
            return
        }
        // Before keys were recorded: the sealed values say which key the database has.
        let other = try Row.fetchOne(db, sql: """
            SELECT substr(sealed, 2, 8) FROM (
                SELECT id_number_sealed AS sealed FROM kyc_submissions UNION ALL SELECT number_sealed FROM cards
            ) WHERE substr(sealed, 2, 8) != ? LIMIT 1
            """, arguments: [Data(key.keyID)])
        if let other {
            throw WalletError(.dataKey, "the data key given is not this database's key: its personal data is sealed under the key with id \(DataKey.hex([UInt8](other[0] as Data))), the one given has id \(key.keyIDHex). `qdwallet keys id` prints the id of a key")
        }
        try record(key, db: db, now: now)
    }

    static func record(_ key: DataKey, db: Database, now: TimestampMicros) throws {
        try db.execute(sql: """
            INSERT INTO wallet_data_key (id, key_id, check_value, recorded_at) VALUES (1, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, check_value = excluded.check_value, recorded_at = excluded.recorded_at
            """, arguments: [Data(key.keyID), Data(key.checkValue), now])
    }

    /// Records `key` as the database's key when it has none yet (`init`), and checks it
    /// otherwise.
    public func adoptDataKey(_ key: DataKey) throws {
        try store.transaction { db, _ in try Self.verify(key, db: db, now: now) }
    }
}
