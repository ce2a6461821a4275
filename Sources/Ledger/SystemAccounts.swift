/// The accounts every qdwallet ledger has, by code.
public enum SystemAccounts {
    /// Money at the banks: debited by top-ups, credited by withdrawals.
    public static let bankClearing = "system:bank-clearing"
    /// Money whose owner is not settled yet (unmatched receipts, corrections).
    public static let suspense = "system:suspense"
    /// Points issued to users and not yet spent or expired.
    public static let pointsLiability = "system:points-liability"

    /// The specifications of the system accounts, in the order they are opened.
    public static let specs: [AccountSpec] = [
        AccountSpec(code: bankClearing, asset: .cny, kind: .bankClearing, rules: .unrestricted),
        AccountSpec(code: suspense, asset: .cny, kind: .suspense, rules: .unrestricted),
        AccountSpec(code: pointsLiability, asset: .pts, kind: .pointsLiability, rules: .unrestricted),
    ]

    /// Opens the system accounts that are missing; safe to run again.
    public static func ensure(in ledger: Ledger) throws -> [Account] {
        // Every command calls this: a read answers, and the write lock is taken only once.
        let existing = try ledger.store.read { tx in try specs.compactMap { try tx.account(code: $0.code) } }
        if existing.count == specs.count { return existing }
        return try ledger.store.write { tx in
            try specs.map { try ledger.openAccount($0, in: tx) }
        }
    }

    /// The code of a biller's settlement account.
    public static func billerSettlement(_ billerCode: String) -> String { "biller:\(billerCode)" }
    /// The code of a campaign sponsor's funding account.
    public static func sponsor(_ sponsorCode: String) -> String { "sponsor:\(sponsorCode)" }
    /// The code of a merchant's settlement account.
    public static func merchant(_ merchantID: String) -> String { "merchant:\(merchantID)" }
}
