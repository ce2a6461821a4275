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
        /// A one-time code for the wallet app's sign-in, sent to a mobile number that may have
        /// no wallet yet: its payload holds the number and the code, and is emptied once the
        /// message is delivered.
        case smsCode = "sms_code"

        /// Sent at once, in quiet hours too.
        public var isUrgent: Bool { self == .securityAlert || self == .smsCode }
    }

    /// Queues a message; security alerts are urgent (no quiet hours). The payload must hold
    /// masked data only.
    public static func enqueue(_ db: any SQLConnection, walletID: Int64?, kind: Kind, payload: [String: String], now: TimestampMicros, messageID: String? = nil) throws {
        try OutboxStore(db).enqueue(messageID: messageID ?? UUID().uuidString.lowercased(), walletID: walletID, kind: kind, payload: JSONText.object(payload), at: now)
    }

    /// Queues a message into `writes`, written with the rest when they are flushed.
    public static func enqueue(into writes: inout PaymentWrites, walletID: Int64?, kind: Kind, payload: [String: String], now: TimestampMicros, messageID: String? = nil) {
        writes.messages.append(OutboxStore.NewMessage(messageID: messageID ?? UUID().uuidString.lowercased(), walletID: walletID, kind: kind, payload: JSONText.object(payload), at: now))
    }
}

/// What payments leave behind besides the ledger (wallet movements, usage counters, outbox
/// messages, the monitoring's counts), gathered so that a chunk of payments writes them in a
/// few multi-row statements (`WalletService.flush`), in the payments' transaction.
public struct PaymentWrites: Sendable {
    var movements: [MovementStore.NewMovement] = []
    var messages: [OutboxStore.NewMessage] = []
    /// Wallets whose recent payments the monitoring counts once the movements are written.
    var watched: [Int64: (record: WalletRecord, via: String?, dayKey: String?)] = [:]
    var watchedOrder: [Int64] = []

    public init() {}

    public var isEmpty: Bool { movements.isEmpty && messages.isEmpty && watched.isEmpty }
}
