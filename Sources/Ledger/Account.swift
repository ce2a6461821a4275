/// The identity of a ledger account.
public typealias AccountID = Int64

/// What an account is for; decides nothing by itself, the rules do.
public enum AccountKind: String, Sendable, Hashable, Codable, CaseIterable {
    case userWallet = "user_wallet"
    case userPoints = "user_points"
    case bankClearing = "bank_clearing"
    case billerSettlement = "biller_settlement"
    case merchant = "merchant"
    case campaignSponsor = "campaign_sponsor"
    case pointsLiability = "points_liability"
    case suspense = "suspense"

    /// The system accounts: the outside world's side of every movement (banks, billers,
    /// sponsors, issued points, suspense). With many writers at once (PostgreSQL) their totals
    /// are added to, never locked, as every payment touches one of them; their entries then
    /// carry no running balance or sequence (0), and their balance rules, if any were set, are
    /// checked against the totals as read. The accounts of people and merchants are locked.
    public var isFolded: Bool {
        switch self {
        case .bankClearing, .billerSettlement, .campaignSponsor, .pointsLiability, .suspense: true
        case .userWallet, .userPoints, .merchant: false
        }
    }
}

/// The per-account rules the ledger enforces inside every posting transaction.
public struct AccountRules: Sendable, Hashable, Codable {
    /// Debits (posted plus pending) must not exceed credits plus `overdraftLimit`.
    public var debitsMustNotExceedCredits: Bool
    /// Credits (posted plus pending) must not exceed debits.
    public var creditsMustNotExceedDebits: Bool
    /// How far debits may exceed credits when `debitsMustNotExceedCredits` is set, in the
    /// account's unit.
    public var overdraftLimit: Int64
    /// No debits; credits are still accepted.
    public var frozen: Bool
    /// Neither debits nor credits.
    public var closed: Bool

    public init(
        debitsMustNotExceedCredits: Bool = false,
        creditsMustNotExceedDebits: Bool = false,
        overdraftLimit: Int64 = 0,
        frozen: Bool = false,
        closed: Bool = false
    ) {
        self.debitsMustNotExceedCredits = debitsMustNotExceedCredits
        self.creditsMustNotExceedDebits = creditsMustNotExceedDebits
        self.overdraftLimit = overdraftLimit
        self.frozen = frozen
        self.closed = closed
    }

    /// A balance that may never go below zero: user wallets, user points, merchants.
    public static let noOverdraft = AccountRules(debitsMustNotExceedCredits: true)
    /// No balance rule: system accounts whose balance is a mirror of the outside world.
    public static let unrestricted = AccountRules()
}

/// What it takes to open an account.
public struct AccountSpec: Sendable, Hashable {
    /// A unique, stable name ("wallet:42", "biller:QD-WATER"); never personal data.
    public var code: String
    public var asset: Asset
    public var kind: AccountKind
    public var rules: AccountRules

    public init(code: String, asset: Asset, kind: AccountKind, rules: AccountRules) {
        self.code = code
        self.asset = asset
        self.kind = kind
        self.rules = rules
    }
}

/// An account with its rules and running totals, as stored.
public struct Account: Sendable, Hashable, Codable {
    public var id: AccountID
    public var code: String
    public var asset: Asset
    public var kind: AccountKind
    public var rules: AccountRules
    public var debitsPosted: Int64
    public var creditsPosted: Int64
    public var debitsPending: Int64
    public var creditsPending: Int64
    /// The sequence number of the account's latest entry (0 before the first).
    public var entrySeq: Int64
    public var createdAt: TimestampMicros

    public init(
        id: AccountID, code: String, asset: Asset, kind: AccountKind, rules: AccountRules,
        debitsPosted: Int64 = 0, creditsPosted: Int64 = 0,
        debitsPending: Int64 = 0, creditsPending: Int64 = 0,
        entrySeq: Int64 = 0, createdAt: TimestampMicros
    ) {
        self.id = id
        self.code = code
        self.asset = asset
        self.kind = kind
        self.rules = rules
        self.debitsPosted = debitsPosted
        self.creditsPosted = creditsPosted
        self.debitsPending = debitsPending
        self.creditsPending = creditsPending
        self.entrySeq = entrySeq
        self.createdAt = createdAt
    }

    /// Posted balance: credits minus debits (a wallet's money is a positive balance).
    public var balance: Int64 { creditsPosted &- debitsPosted }

    /// Posted balance minus pending debits: what can still be spent.
    public var available: Int64 { creditsPosted &- debitsPosted &- debitsPending }
}
