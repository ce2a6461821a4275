import Ledger

/// What is being paid, as the campaign engine sees it.
public struct PaymentContext: Sendable, Hashable {
    public var kind: Campaign.PaymentKind
    public var walletID: Int64
    public var billAccountID: Int64?
    public var biller: String?
    public var category: String
    public var district: String?
    public var amountFen: Int64
    public var at: TimestampMicros
    /// The verified class, or 1 when unverified.
    public var kycClass: Int
    /// No earlier payment of this wallet to this biller (or merchant).
    public var firstPayment: Bool

    public init(kind: Campaign.PaymentKind, walletID: Int64, billAccountID: Int64?, biller: String?, category: String, district: String?, amountFen: Int64, at: TimestampMicros, kycClass: Int, firstPayment: Bool) {
        self.kind = kind
        self.walletID = walletID
        self.billAccountID = billAccountID
        self.biller = biller
        self.category = category
        self.district = district
        self.amountFen = amountFen
        self.at = at
        self.kycClass = kycClass
        self.firstPayment = firstPayment
    }
}

/// A campaign's spending so far, read in the payment's transaction.
public struct CampaignUsage: Sendable, Hashable {
    public var budgetSpentFen: Int64 = 0
    public var budgetSpentTodayFen: Int64 = 0
    /// Per cap (same order as `Campaign.caps`): uses and fen already counted in its period.
    public var capCounts: [Int] = []
    public var capFen: [Int64] = []

    public init(budgetSpentFen: Int64 = 0, budgetSpentTodayFen: Int64 = 0, capCounts: [Int] = [], capFen: [Int64] = []) {
        self.budgetSpentFen = budgetSpentFen
        self.budgetSpentTodayFen = budgetSpentTodayFen
        self.capCounts = capCounts
        self.capFen = capFen
    }
}

/// What one campaign gave a payment.
public struct Allocation: Sendable, Hashable, Codable {
    public var campaignID: String
    public var version: Int
    public var sponsor: String
    public var discountFen: Int64
    public var points: Int64
    public var pendingDays: Int
    public var expiryMonths: Int
}

/// Why a campaign applied or not, with the numbers behind it.
public struct Explanation: Sendable, Hashable, Codable {
    public var campaignId: String
    public var version: Int
    public var applied: Bool
    public var reason: String
    public var discountFen: Int64
    public var points: Int64
    public var budgetBeforeFen: Int64?
    public var budgetAfterFen: Int64?
    public var caps: [String]
    public var rounding: String?
}

/// The engine's answer for one payment.
public struct CampaignResult: Sendable, Hashable, Codable {
    public var allocations: [Allocation]
    public var explanations: [Explanation]
    public var discountFen: Int64 { allocations.reduce(0) { $0 + $1.discountFen } }
    public var points: Int64 { allocations.reduce(0) { $0 + $1.points } }

    public static let none = CampaignResult(allocations: [], explanations: [])
}

/// Evaluates campaigns for a payment: pure integer arithmetic, the same for the nightly run,
/// pay-bill and QR payments. At least 0.01 always remains to pay.
public enum CampaignEngine {
    public static func evaluate(_ campaigns: [Campaign], context: PaymentContext, usage: (Campaign) throws -> CampaignUsage) rethrows -> CampaignResult {
        struct Candidate {
            var campaign: Campaign
            var discountFen: Int64
            var points: Int64
            var pendingDays: Int
            var expiryMonths: Int
            var explanation: Explanation
        }
        var explanations: [String: Explanation] = [:]
        var candidates: [Candidate] = []
        for campaign in campaigns {
            var explanation = Explanation(campaignId: campaign.id, version: campaign.version, applied: false, reason: "", discountFen: 0, points: 0, caps: [])
            if let failed = failedCondition(campaign, context) {
                explanation.reason = failed
                explanations[campaign.id] = explanation
                continue
            }
            let use = try usage(campaign)
            // Discounts of the campaign's benefits, in integer fen.
            var discount: Int64 = 0
            var points: Int64 = 0
            var pendingDays = 0
            var expiryMonths = 12
            for benefit in campaign.benefits {
                switch benefit {
                case .thresholdOff(let tiers):
                    if let tier = tiers.last(where: { context.amountFen >= $0.minFen }) { discount += tier.offFen }
                case .percentOff(let bp, let rounding, let cap):
                    let (product, overflow) = context.amountFen.multipliedReportingOverflow(by: bp)
                    var off: Int64
                    if overflow {
                        off = context.amountFen / 10_000 * bp
                    } else {
                        switch rounding {
                        case .floor: off = product / 10_000
                        case .ceil: off = (product + 9_999) / 10_000
                        case .halfUp: off = (product + 5_000) / 10_000
                        }
                    }
                    if let cap { off = min(off, cap) }
                    explanation.rounding = "\(context.amountFen) x \(bp) bp / 10000 = \(product / 10_000).\(String(product % 10_000).leftPad(4)) fen, \(rounding.rawValue) \(off)"
                    discount += off
                case .fixedOff(let off):
                    discount += off
                case .firstPayment(let off):
                    if context.firstPayment { discount += off }
                case .pointsPerYuan(let rate, let multiplier, let weekdays, let pending, let expiry):
                    // Points are counted on what is paid, after the campaign's discount.
                    let weekday = ShanghaiCalendar.date(at: context.at).isoWeekday
                    let factor = weekdays.contains(weekday) ? multiplier : 1
                    let paid = max(0, context.amountFen - min(discount, context.amountFen - 1))
                    points += paid / 100 * rate * factor
                    pendingDays = pending
                    expiryMonths = expiry
                }
            }
            discount = min(discount, context.amountFen - 1)
            // Caps: a count cap reached stops the campaign; a fen cap trims its discount.
            var capped = false
            for (index, cap) in campaign.caps.enumerated() {
                let count = index < use.capCounts.count ? use.capCounts[index] : 0
                let fen = index < use.capFen.count ? use.capFen[index] : 0
                var line = "\(cap.scope.rawValue)/\(cap.period.rawValue):"
                if let maxCount = cap.maxCount {
                    line += " uses \(count)/\(maxCount)"
                    if count >= maxCount { capped = true }
                }
                if let maxFen = cap.maxFen {
                    line += " fen \(fen)/\(maxFen)"
                    discount = min(discount, max(0, maxFen - fen))
                    if fen >= maxFen && discount == 0 && points == 0 { capped = true }
                }
                explanation.caps.append(line)
            }
            if capped {
                explanation.reason = "cap reached"
                explanations[campaign.id] = explanation
                continue
            }
            // Budget: what is left of the total and of today's slice.
            if let total = campaign.budgetTotalFen {
                var left = max(0, total - use.budgetSpentFen)
                if let daily = campaign.budgetDailyFen { left = min(left, max(0, daily - use.budgetSpentTodayFen)) }
                explanation.budgetBeforeFen = left
                if discount > left {
                    if campaign.onExhaustion == .skip || left == 0 {
                        explanation.reason = left == 0 ? "budget exhausted" : "budget short (skip)"
                        explanation.budgetAfterFen = left
                        if points == 0 {
                            explanations[campaign.id] = explanation
                            continue
                        }
                        discount = 0
                    } else {
                        discount = left
                    }
                }
                explanation.budgetAfterFen = left - discount
            }
            if discount == 0 && points == 0 {
                explanation.reason = "no benefit for this amount"
                explanations[campaign.id] = explanation
                continue
            }
            candidates.append(Candidate(campaign: campaign, discountFen: discount, points: points, pendingDays: pendingDays, expiryMonths: expiryMonths, explanation: explanation))
        }

        // Stacking: exclusive groups keep their single best benefit; groups apply in priority order.
        var byGroup: [String: [Candidate]] = [:]
        for candidate in candidates { byGroup[candidate.campaign.group, default: []].append(candidate) }
        var chosen: [Candidate] = []
        for (_, members) in byGroup {
            if members.contains(where: { $0.campaign.exclusive }) {
                let best = members.sorted {
                    ($0.discountFen, $0.points, $0.campaign.priority, $1.campaign.id) > ($1.discountFen, $1.points, $1.campaign.priority, $0.campaign.id)
                }
                chosen.append(best[0])
                for other in best.dropFirst() {
                    var explanation = other.explanation
                    explanation.reason = "another campaign of exclusive group \(other.campaign.group) gives more"
                    explanations[other.campaign.id] = explanation
                }
            } else {
                chosen.append(contentsOf: members)
            }
        }
        chosen.sort { ($0.campaign.priority, $1.campaign.id) > ($1.campaign.priority, $0.campaign.id) }
        var allocations: [Allocation] = []
        var remaining = context.amountFen - 1
        for var candidate in chosen {
            let discount = min(candidate.discountFen, max(0, remaining))
            remaining -= discount
            if discount == 0 && candidate.points == 0 {
                candidate.explanation.reason = "nothing left to discount (0.01 must remain)"
                explanations[candidate.campaign.id] = candidate.explanation
                continue
            }
            var explanation = candidate.explanation
            explanation.applied = true
            explanation.reason = "applied"
            explanation.discountFen = discount
            explanation.points = candidate.points
            if let before = explanation.budgetBeforeFen { explanation.budgetAfterFen = before - discount }
            explanations[candidate.campaign.id] = explanation
            allocations.append(Allocation(campaignID: candidate.campaign.id, version: candidate.campaign.version, sponsor: candidate.campaign.sponsor, discountFen: discount, points: candidate.points, pendingDays: candidate.pendingDays, expiryMonths: candidate.expiryMonths))
        }
        return CampaignResult(allocations: allocations, explanations: campaigns.compactMap { explanations[$0.id] })
    }

    /// The first condition the payment fails, in words; nil when eligible.
    static func failedCondition(_ campaign: Campaign, _ context: PaymentContext) -> String? {
        if context.at < campaign.windowStart { return "before the window" }
        if context.at > campaign.windowEnd { return "after the window" }
        if let from = campaign.dailyFromMinute, let to = campaign.dailyToMinute {
            let minute = Int(ShanghaiCalendar.microsOfDay(at: context.at) / 60_000_000)
            if minute < from || minute >= to { return "outside the daily hours" }
        }
        if !campaign.paymentKinds.isEmpty && !campaign.paymentKinds.contains(context.kind) { return "payment kind \(context.kind.rawValue) not eligible" }
        if !campaign.billers.isEmpty && !campaign.billers.contains(context.biller ?? "") { return "biller not eligible" }
        if !campaign.categories.isEmpty && !campaign.categories.contains(context.category) { return "category \(context.category) not eligible" }
        if !campaign.districts.isEmpty && !campaign.districts.contains(context.district ?? "") { return "district not eligible" }
        if campaign.firstPaymentOnly && !context.firstPayment { return "not the first payment" }
        if !campaign.kycClasses.isEmpty && !campaign.kycClasses.contains(context.kycClass) { return "verification class \(context.kycClass) not eligible" }
        return nil
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
