import Foundation
import GRDB
import Ledger

/// The notification outbox: rows written in the same transaction as what they report, and
/// delivered later by the notify job.
public enum Outbox {
    /// What a message is about.
    public enum Kind: String, Sendable {
        case securityAlert = "security_alert"
        case billNotice = "bill_notice"
        case autopayReceipt = "autopay_receipt"
        case reminder = "reminder"
    }

    /// Queues a message; security alerts are urgent (no quiet hours). The payload must hold
    /// masked data only.
    public static func enqueue(_ db: Database, walletID: Int64?, kind: Kind, payload: [String: String], now: TimestampMicros, messageID: String? = nil) throws {
        let text = JSONText.object(payload)
        try db.cachedStatement(sql: """
                INSERT INTO outbox (message_id, wallet_id, kind, urgent, payload, created_at, not_before)
                VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING
                """).execute(arguments: [messageID ?? UUID().uuidString.lowercased(), walletID, kind.rawValue, kind == .securityAlert ? 1 : 0, text, now, now])
    }
}
