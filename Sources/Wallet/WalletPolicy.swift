import Ledger

/// The wallet's limits and monitoring thresholds; each is a named, configurable bound.
public struct WalletPolicy: Sendable, Hashable {
    /// Class I: balance payments since opening, in fen (1,000.00).
    public var classIBalancePaymentsFenMax: Int64 = 100_000
    /// Class II: balance payments per calendar year (Asia/Shanghai), in fen (100,000.00).
    public var classIIYearFenMax: Int64 = 10_000_000
    /// Class III: balance payments per calendar year, in fen (200,000.00).
    public var classIIIYearFenMax: Int64 = 20_000_000
    /// Wrong passwords in a row that raise a security alert.
    public var wrongPasswordsAlertAt = 3
    /// Wrong passwords in a row that lock payments.
    public var wrongPasswordsLockAt = 5
    /// How long payments stay locked.
    public var lockDurationMicros: Int64 = 3 * 3_600 * 1_000_000
    /// A single payment above this raises a security alert (5,000.00).
    public var largePaymentAlertFen: Int64 = 500_000
    /// More payments than this within the window raise a security alert.
    public var paymentsInWindowMax = 5
    public var paymentsWindowMicros: Int64 = 10 * 60 * 1_000_000
    /// The most autopay may take from a wallet for one business day unless the wallet sets
    /// its own (3,000.00): autopay is a password-free payment, capped as those are.
    public var autopayDailyFenMaxDefault: Int64 = 300_000
    /// The highest daily autopay limit a wallet may set (50,000.00).
    public var autopayDailyFenMaxCeiling: Int64 = 5_000_000

    /// The most one top-up may move (50,000.00), as bank card top-ups at wallets are bounded.
    public var topUpFenMax: Int64 = 5_000_000
    /// The most one withdrawal may move (50,000.00).
    public var withdrawalFenMax: Int64 = 5_000_000
    /// The most one QR payment may move (50,000.00).
    public var qrPaymentFenMax: Int64 = 5_000_000
    /// The most one transfer may move (50,000.00).
    public var transferFenMax: Int64 = 5_000_000
    /// No per-request maximum may be set above this (10,000,000.00): the ledger's own bound on
    /// a leg is far higher, so a typo in a configuration cannot reach it.
    public static let requestFenMaxCeiling: Int64 = 1_000_000_000

    public init() {}

    /// The balance payment limit of a class and the period its usage is counted in: 0 for
    /// class I (since opening: the wallet's whole life), else the calendar year (Shanghai).
    func limit(forClass kycClass: Int, now: TimestampMicros) -> (fenMax: Int64, period: Int) {
        switch kycClass {
        case 3: (classIIIYearFenMax, ShanghaiCalendar.date(at: now).year)
        case 2: (classIIYearFenMax, ShanghaiCalendar.date(at: now).year)
        default: (classIBalancePaymentsFenMax, MovementStore.lifetime)
        }
    }
}
