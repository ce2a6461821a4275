import Ledger

/// Where a bill stands. The one place these words are spelled: the store binds them as
/// values and reads them back through `init(rawValue:)`.
public enum BillStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// Staged from a feed, not yet decided by the nightly run.
    case new
    /// Decided and not paid: the resident was told why (`PendingReason`) and may pay.
    case payable
    case paid
    /// No wallet holds the bill's customer number.
    case unmatched
    /// Cancelled by the biller before it was paid.
    case cancelled
    /// Cancelled by the biller after it was paid: the payment was reversed.
    case refunded

    /// A resident may still pay it by hand.
    public var isOpen: Bool { self == .new || self == .payable || self == .unmatched }
    /// Counted as money the biller was paid (a refund reverses a payment, it does not undo
    /// the fact that it was made).
    public var wasPaid: Bool { self == .paid || self == .refunded }
}

/// Who paid a bill: the nightly run's autopay, or the resident by hand (`pay-bill`).
public enum PaidVia: String, Sendable, Hashable, Codable {
    case autopay
    case manual
}

/// Why a bill was left for the resident to pay: the reasons of bill-feed.md ("Reasons for
/// PENDING"), plus the daily autopay cap and the ledger's own refusals.
public enum PendingReason: Sendable, Hashable {
    case autopayOff
    case overAutopayLimit
    case overAutopayDailyLimit
    case insufficientFunds
    case accountFrozen
    case kycRequired
    /// The wallet account is closed.
    case accountClosed
    /// The ledger refused the payment for another reason (it names it; the biller is told
    /// PAYMENT_REFUSED and the resident is asked to pay by hand).
    case ledgerRefused(LedgerRefusal)

    /// The code stored with the bill, sent in payment reports (at most 35 of `[A-Z_]`, as the
    /// report's XSD requires) and shown to the resident.
    public var code: String {
        switch self {
        case .autopayOff: "AUTOPAY_OFF"
        case .overAutopayLimit: "OVER_AUTOPAY_LIMIT"
        case .overAutopayDailyLimit: "OVER_AUTOPAY_DAILY_LIMIT"
        case .insufficientFunds: "INSUFFICIENT_FUNDS"
        case .accountFrozen: "ACCOUNT_FROZEN"
        case .kycRequired: "KYC_REQUIRED"
        case .accountClosed: "ACCOUNT_CLOSED"
        case .ledgerRefused: "PAYMENT_REFUSED"
        }
    }

    /// The reason for a payment the ledger refused: frozen, short of money and closed are
    /// told apart; anything else is a refusal the operator looks into.
    public init(_ refusal: LedgerRefusal) {
        switch refusal {
        case .accountFrozen: self = .accountFrozen
        case .exceedsCredits: self = .insufficientFunds
        case .accountClosed: self = .accountClosed
        default: self = .ledgerRefused(refusal)
        }
    }
}

/// A bill's identity among payments: `bill:#ROW:BILLER:BILLID` is the idempotency key of its
/// payment in the ledger (so a bill is paid at most once, whoever pays it: every payment of a
/// bill names its one row), and `refund:BILLER:BILLID` the key of the reversal that refunds it.
/// Payments made before the row led the key hold `bill:BILLER:BILLID`; both are read.
public struct PaymentKey: Sendable, Hashable, CustomStringConvertible {
    public var biller: String
    public var billID: String

    public init(biller: String, billID: String) {
        self.biller = biller
        self.billID = billID
    }

    /// The prefix every bill payment's key starts with.
    public static let prefix = "bill:"

    /// The ledger idempotency key of the payment of the bill stored in row `row`: the row id
    /// first, zero-padded to twelve digits, so that the keys' text order is the rows' order.
    /// The night pays its bills in row order, so each key goes beside the one before it in
    /// the ledger's index of keys (and in the campaigns' keyed by it), not at a random place:
    /// at a million bills those indexes outgrow every cache, and a random place costs a page
    /// read and a page written a payment. A bill's row is never deleted nor given to another
    /// bill (`bills` holds one row a biller and bill id), so the key is the bill's for good.
    public func key(row: Int64) -> String { Self.text(Self.keyHead, row: row, ":", biller, ":", billID) }

    private static let keyHead = prefix + "#"

    /// A bill's row id as the keys that name a bill carry it: zero-padded to twelve digits, so
    /// that the text order of keys that start with it is the order of the rows.
    public static func paddedRow(_ row: Int64) -> String { text("", row: row) }

    /// `head`, the row as `paddedRow` gives it, then `tail`, made in one piece: the night
    /// makes several such keys and message ids a bill.
    static func text(_ head: String, row: Int64, _ tail: String...) -> String {
        let sign = row < 0 ? 1 : 0
        var digits = 1
        var rest = row.magnitude
        while rest >= 10 { rest /= 10; digits += 1 }
        let width = max(12, sign + digits)
        let count = tail.reduce(head.utf8.count + width) { $0 + $1.utf8.count }
        return String(unsafeUninitializedCapacity: count) { buffer in
            func write(_ piece: String, at start: Int) -> Int {
                start + UnsafeMutableBufferPointer(rebasing: buffer[start...]).initialize(from: piece.utf8).1
            }
            var at = write(head, at: 0)
            let end = at + width
            var magnitude = row.magnitude
            var index = end
            repeat {
                index -= 1
                buffer[index] = 0x30 + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if sign == 1 { index -= 1; buffer[index] = 0x2D }
            while index > at { index -= 1; buffer[index] = 0x30 }
            at = end
            for piece in tail { at = write(piece, at: at) }
            return at
        }
    }

    /// The ledger idempotency key of its refund.
    public var refundKey: String { "refund:" + biller + ":" + billID }
    /// `BILLER:BILLID`, as residents and operators write a bill (`pay-bill --bill`).
    public var reference: String { biller + ":" + billID }
    public var description: String { reference }

    /// Reads a payment's key, `bill:#ROW:BILLER:BILLID` or the earlier `bill:BILLER:BILLID`;
    /// nil for a key of anything else. A biller code starts with a letter and holds no colon,
    /// so a `#` after the prefix starts a row, and the first colon after the biller ends it (a
    /// bill id may hold colons).
    public init?(key: String) {
        guard key.hasPrefix(Self.prefix) else { return nil }
        var rest = Substring(key.dropFirst(Self.prefix.count))
        if rest.first == "#" {
            let row = rest.dropFirst().prefix { $0 != ":" }
            guard row.count >= 12, row.allSatisfy({ $0.isASCII && $0.isNumber }), rest.dropFirst(1 + row.count).first == ":" else { return nil }
            rest = rest.dropFirst(2 + row.count)
        }
        self.init(reference: String(rest))
    }

    /// Reads `BILLER:BILLID`; nil when either part is empty or the id is over 35 bytes.
    public init?(reference: String) {
        let parts = reference.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, parts[1].utf8.count <= 35 else { return nil }
        self.init(biller: parts[0], billID: parts[1])
    }
}

/// What a biller's bills moved on one business day: the payments made that day (whatever
/// feed they came in), and the refunds made that day. The run summary, the payment report's
/// header and the reconciliation all read it from `BillStore.dayTotals`.
public struct DayTotals: Sendable, Hashable {
    public var paidCount = 0
    public var paidFen: Int64 = 0
    /// Of those payments, the ones the nightly run made (and what sponsors gave on them).
    public var autopayCount = 0
    public var autopayFen: Int64 = 0
    public var autopayDiscountFen: Int64 = 0
    public var autopayPoints: Int64 = 0
    /// Of those payments, the ones residents made by hand (`pay-bill`).
    public var manualCount = 0
    public var manualFen: Int64 = 0
    public var refundedCount = 0
    public var refundedFen: Int64 = 0
    /// Bills cancelled that day, refunded ones included.
    public var cancelledCount = 0
    /// Of those, the ones cancelled before they were paid, with what they asked.
    public var cancelledUnpaidCount = 0
    public var cancelledUnpaidFen: Int64 = 0

    public init() {}
}
