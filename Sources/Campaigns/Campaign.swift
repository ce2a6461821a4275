import Crypto
import Foundation
import Ledger
import QDConfig

/// A campaign as declared in `Jobs/campaigns/*.toml`: one immutable version.
public struct Campaign: Sendable, Hashable, Codable {
    public enum PaymentKind: String, Sendable, Hashable, Codable, CaseIterable {
        case utilityBill = "utility_bill"
        case qrPayment = "qr_payment"
    }

    public enum Rounding: String, Sendable, Hashable, Codable {
        case floor, ceil, halfUp = "half_up"
    }

    public enum Benefit: Sendable, Hashable, Codable {
        /// The best tier met (amount >= min) gives its discount.
        case thresholdOff(tiers: [Tier])
        /// Basis points of the amount, rounded as declared, capped.
        case percentOff(basisPoints: Int64, rounding: Rounding, capFen: Int64?)
        case fixedOff(offFen: Int64)
        /// Off the first bill a wallet ever pays for a biller.
        case firstPayment(offFen: Int64)
        /// Points per whole yuan paid (floor), multiplied on declared weekdays.
        case pointsPerYuan(rate: Int64, multiplier: Int64, multiplierWeekdays: [Int], pendingDays: Int, expiryMonths: Int)
    }

    public struct Tier: Sendable, Hashable, Codable {
        public var minFen: Int64
        public var offFen: Int64
    }

    public enum CapScope: String, Sendable, Hashable, Codable { case wallet, billAccount = "bill_account" }
    public enum CapPeriod: String, Sendable, Hashable, Codable { case day, naturalWeek = "natural_week", calendarMonth = "calendar_month", campaign }

    public struct Cap: Sendable, Hashable, Codable {
        public var scope: CapScope
        public var period: CapPeriod
        public var maxCount: Int?
        public var maxFen: Int64?
    }

    public enum Exhaustion: String, Sendable, Hashable, Codable { case partial, skip }

    public var id: String
    public var version: Int
    public var title: String
    public var sponsor: String
    public var windowStart: TimestampMicros
    public var windowEnd: TimestampMicros
    /// Minutes after midnight (Shanghai) the campaign applies from and to, when declared.
    public var dailyFromMinute: Int?
    public var dailyToMinute: Int?
    public var paymentKinds: [PaymentKind]
    public var billers: [String]
    public var categories: [String]
    public var districts: [String]
    public var firstPaymentOnly: Bool
    public var kycClasses: [Int]
    public var caps: [Cap]
    public var budgetTotalFen: Int64?
    public var budgetDailyFen: Int64?
    public var onExhaustion: Exhaustion
    public var group: String
    public var exclusive: Bool
    public var priority: Int
    public var benefits: [Benefit]
    /// SHA-256 of the definition's text: a version's content never changes.
    public var contentHash: String
    public var file: String

    public var sponsorAccountCode: String { SystemAccounts.sponsor(sponsor) }
}

extension Campaign {
    /// Reads and validates one campaign file; every error names the file, the key and the problem.
    public static func load(path: String) throws -> Campaign {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try parse(text, file: (path as NSString).lastPathComponent)
    }

    /// The largest amount in fen a campaign may declare (10,000,000,000.00 yuan): sums of
    /// declared amounts then stay far inside Int64.
    public static let fenMax: Int64 = 1_000_000_000_000

    public static func parse(_ text: String, file: String) throws -> Campaign {
        let config = try ConfigTable.parse(text, file: file)
        try config.allowOnly(["id", "version", "title", "sponsor", "window", "eligibility", "budget", "caps", "stacking", "benefit"])
        func fail(_ key: String, _ problem: String) -> ConfigError { ConfigError(file: file, key: key, problem: problem) }
        let id = try config.string("id")
        guard id.range(of: "^[a-z0-9][a-z0-9-]{0,63}$", options: .regularExpression) != nil else { throw fail("id", "use 1 to 64 lower-case letters, digits or '-'") }
        let version = try config.int("version")
        guard version >= 1 else { throw fail("version", "must be 1 or more") }
        let sponsor = try config.string("sponsor")
        guard sponsor.range(of: "^[A-Z0-9][A-Z0-9-]{0,31}$", options: .regularExpression) != nil else { throw fail("sponsor", "use 1 to 32 upper-case letters, digits or '-'") }

        guard let window = try config.table("window") else { throw fail("window", "is required") }
        try window.allowOnly(["start", "end", "daily_from", "daily_to"])
        let start = try window.instantMicros("start")
        let end = try window.instantMicros("end")
        guard start < end else { throw fail("window.end", "must be after window.start") }
        func minute(_ key: String) throws -> Int? {
            guard let text = try window.optionalString(key) else { return nil }
            let parts = text.split(separator: ":")
            guard parts.count == 2, let h = Int(parts[0]), let m = Int(parts[1]), (0...24).contains(h), (0...59).contains(m), h * 60 + m <= 1_440 else {
                throw fail("window.\(key)", "must be HH:MM")
            }
            return h * 60 + m
        }
        let dailyFrom = try minute("daily_from")
        let dailyTo = try minute("daily_to")
        guard (dailyFrom == nil) == (dailyTo == nil) else { throw fail("window", "daily_from and daily_to go together") }

        let eligibility = try config.table("eligibility")
        try eligibility?.allowOnly(["payment_kinds", "billers", "categories", "districts", "first_payment", "kyc_classes"])
        let kinds = try (eligibility?.strings("payment_kinds") ?? []).map { text in
            guard let kind = PaymentKind(rawValue: text) else { throw fail("eligibility.payment_kinds", "\"\(text)\" is not utility_bill or qr_payment") }
            return kind
        }
        let classes = try eligibility?.ints("kyc_classes") ?? []
        guard classes.allSatisfy({ (1...3).contains($0) }) else { throw fail("eligibility.kyc_classes", "classes are 1, 2 and 3") }

        var budgetTotal: Int64?
        var budgetDaily: Int64?
        var exhaustion = Exhaustion.skip
        if let budget = try config.table("budget") {
            try budget.allowOnly(["total_fen", "daily_fen", "on_exhaustion"])
            budgetTotal = try budget.optionalInt("total_fen").map(Int64.init)
            budgetDaily = try budget.optionalInt("daily_fen").map(Int64.init)
            guard (1...fenMax).contains(budgetTotal ?? 1), (1...fenMax).contains(budgetDaily ?? 1) else { throw fail("budget", "amounts must be positive fen, at most \(fenMax)") }
            let text = try budget.string("on_exhaustion", default: "skip")
            guard let value = Exhaustion(rawValue: text) else { throw fail("budget.on_exhaustion", "must be \"partial\" or \"skip\"") }
            exhaustion = value
        }

        let caps = try config.tables("caps").map { cap -> Cap in
            try cap.allowOnly(["scope", "period", "max_count", "max_fen"])
            guard let scope = CapScope(rawValue: try cap.string("scope")) else { throw fail("caps.scope", "must be wallet or bill_account") }
            guard let period = CapPeriod(rawValue: try cap.string("period")) else { throw fail("caps.period", "must be day, natural_week, calendar_month or campaign") }
            let count = try cap.optionalInt("max_count")
            let fen = try cap.optionalInt("max_fen").map(Int64.init)
            guard count != nil || fen != nil else { throw fail("caps", "needs max_count, max_fen or both") }
            guard (count ?? 1) > 0, (1...fenMax).contains(fen ?? 1) else { throw fail("caps", "limits must be positive (max_fen at most \(fenMax))") }
            return Cap(scope: scope, period: period, maxCount: count, maxFen: fen)
        }

        let stacking = try config.table("stacking")
        try stacking?.allowOnly(["group", "mode", "priority"])
        let mode = try stacking?.string("mode", default: "exclusive") ?? "exclusive"
        guard mode == "exclusive" || mode == "stackable" else { throw fail("stacking.mode", "must be exclusive or stackable") }

        let benefits = try config.tables("benefit").map { benefit -> Benefit in
            let kind = try benefit.string("kind")
            switch kind {
            case "threshold_off":
                try benefit.allowOnly(["kind", "tiers"])
                let tiers = try benefit.tables("tiers").map { tier -> Tier in
                    try tier.allowOnly(["min_fen", "off_fen"])
                    let t = Tier(minFen: Int64(try tier.int("min_fen")), offFen: Int64(try tier.int("off_fen")))
                    guard (1...fenMax).contains(t.minFen), (1...fenMax).contains(t.offFen) else { throw fail("benefit.tiers", "min_fen and off_fen must be positive fen, at most \(fenMax)") }
                    return t
                }
                guard !tiers.isEmpty else { throw fail("benefit.tiers", "threshold_off needs at least one tier") }
                return .thresholdOff(tiers: tiers.sorted { $0.minFen < $1.minFen })
            case "percent_off":
                try benefit.allowOnly(["kind", "basis_points", "rounding", "cap_fen"])
                let bp = Int64(try benefit.int("basis_points"))
                guard (1...10_000).contains(bp) else { throw fail("benefit.basis_points", "must be 1 to 10000") }
                guard let rounding = Rounding(rawValue: try benefit.string("rounding", default: "floor")) else { throw fail("benefit.rounding", "must be floor, ceil or half_up") }
                let cap = try benefit.optionalInt("cap_fen").map(Int64.init)
                guard (1...fenMax).contains(cap ?? 1) else { throw fail("benefit.cap_fen", "must be positive fen, at most \(fenMax)") }
                return .percentOff(basisPoints: bp, rounding: rounding, capFen: cap)
            case "fixed_off", "first_payment":
                try benefit.allowOnly(["kind", "off_fen"])
                let off = Int64(try benefit.int("off_fen"))
                guard (1...fenMax).contains(off) else { throw fail("benefit.off_fen", "must be positive fen, at most \(fenMax)") }
                return kind == "fixed_off" ? .fixedOff(offFen: off) : .firstPayment(offFen: off)
            case "points_per_yuan":
                try benefit.allowOnly(["kind", "rate", "multiplier", "multiplier_days", "pending_days", "expiry_months"])
                let rate = Int64(try benefit.int("rate", default: 1, in: 1...1_000))
                let multiplier = Int64(try benefit.int("multiplier", default: 1, in: 1...100))
                let days = try benefit.strings("multiplier_days").map { name -> Int in
                    guard let day = ["MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6, "SUN": 7][name.uppercased()] else {
                        throw fail("benefit.multiplier_days", "\"\(name)\" is not MON ... SUN")
                    }
                    return day
                }
                return .pointsPerYuan(rate: rate, multiplier: multiplier, multiplierWeekdays: days,
                                      pendingDays: try benefit.int("pending_days", default: 7, in: 0...365),
                                      expiryMonths: try benefit.int("expiry_months", default: 12, in: 1...120))
            default:
                throw fail("benefit.kind", "\"\(kind)\" is not threshold_off, percent_off, fixed_off, first_payment or points_per_yuan")
            }
        }
        guard !benefits.isEmpty else { throw fail("benefit", "a campaign needs at least one [[benefit]]") }
        let digest = Array(SHA256.hash(data: Data(text.utf8)))
        return Campaign(
            id: id, version: version, title: try config.string("title", default: id), sponsor: sponsor,
            windowStart: start, windowEnd: end, dailyFromMinute: dailyFrom, dailyToMinute: dailyTo,
            paymentKinds: kinds, billers: try eligibility?.strings("billers") ?? [], categories: try eligibility?.strings("categories") ?? [],
            districts: try eligibility?.strings("districts") ?? [], firstPaymentOnly: try eligibility?.bool("first_payment", default: false) ?? false,
            kycClasses: classes, caps: caps, budgetTotalFen: budgetTotal, budgetDailyFen: budgetDaily, onExhaustion: exhaustion,
            group: try stacking?.string("group", default: id) ?? id, exclusive: mode == "exclusive", priority: try stacking?.int("priority", default: 0) ?? 0,
            benefits: benefits, contentHash: digest.map { String(format: "%02x", $0) }.joined(), file: file)
    }

    /// Every campaign file of a folder, sorted by id.
    public static func loadAll(directory: String) throws -> [Campaign] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var campaigns: [Campaign] = []
        for name in names.sorted() where name.hasSuffix(".toml") {
            let campaign = try load(path: (directory as NSString).appendingPathComponent(name))
            if let other = campaigns.first(where: { $0.id == campaign.id }) {
                throw ConfigError(file: name, key: "id", problem: "\"\(campaign.id)\" is also declared in \(other.file)")
            }
            campaigns.append(campaign)
        }
        return campaigns.sorted { $0.id < $1.id }
    }
}
