import Foundation
import Ledger
import QDSQL

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
    public static func enqueue(_ db: any SQLConnection, walletID: Int64?, kind: Kind, payload: [String: String], now: TimestampMicros, messageID: String? = nil) throws {
        try OutboxStore(db).enqueue(messageID: messageID ?? UUID().uuidString.lowercased(), walletID: walletID, kind: kind, payload: JSONText.object(payload), at: now)
    }
}
