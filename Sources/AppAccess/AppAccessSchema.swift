import GRDB
import QDSQL

/// The wallet app's tables: one-time codes, devices, refresh tokens and the app's idempotent
/// requests. Only `AppAccessStore` names them. A migration that has shipped is never edited.
public enum AppAccessSchema {
    public static let migrations: [SQLMigration] = [
        SQLMigration("app-v1", v1),
        // One-time challenges a device's key signs to confirm a payment.
        SQLMigration("app-v2-challenges", """
            CREATE TABLE app_challenges (
                id INTEGER PRIMARY KEY,
                device_id INTEGER NOT NULL REFERENCES app_devices(id),
                nonce BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                used_at INTEGER
            );
            CREATE INDEX app_challenges_by_time ON app_challenges(created_at);
            """),
    ]

    public static func register(in migrator: inout DatabaseMigrator) {
        migrator.register(migrations)
    }

    public static func postgres() throws -> [SQLMigration] {
        try migrations.map { SQLMigration($0.name, try SQLDialect.postgresSchema($0.sql)) }
    }

    /// Codes are kept as HMACs under a key derived from the data key, never as digits;
    /// refresh tokens as SHA-256 of 32 random bytes. A request's row holds the response
    /// a retry with its key gets back (no credentials: the password is not part of it).
    static let v1 = """
        CREATE TABLE app_sms_codes (
            id INTEGER PRIMARY KEY,
            phone TEXT NOT NULL,
            code_mac BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            used_at INTEGER
        );
        CREATE INDEX app_sms_codes_by_phone ON app_sms_codes(phone, id);
        CREATE TABLE app_devices (
            id INTEGER PRIMARY KEY,
            wallet_id INTEGER NOT NULL REFERENCES wallets(id),
            public_key BLOB NOT NULL,
            label TEXT NOT NULL,
            registered_at INTEGER NOT NULL,
            revoked_at INTEGER,
            revoked_reason TEXT
        );
        CREATE INDEX app_devices_by_wallet ON app_devices(wallet_id);
        CREATE TABLE app_refresh_tokens (
            token_hash BLOB PRIMARY KEY,
            device_id INTEGER NOT NULL REFERENCES app_devices(id),
            issued_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            used_at INTEGER
        );
        CREATE INDEX app_refresh_tokens_by_device ON app_refresh_tokens(device_id);
        CREATE TABLE app_requests (
            wallet_id INTEGER NOT NULL REFERENCES wallets(id),
            idempotency_key TEXT NOT NULL,
            operation TEXT NOT NULL,
            request_hash BLOB NOT NULL,
            status INTEGER,
            response TEXT,
            created_at INTEGER NOT NULL,
            lease_until INTEGER NOT NULL,
            PRIMARY KEY (wallet_id, idempotency_key)
        );
        CREATE INDEX app_requests_by_time ON app_requests(created_at);
        """
}
