import Foundation
import Ledger
import Testing
@testable import Campaigns

/// A campaign from a few lines of TOML (window 2026 whole year unless given).
func campaign(_ body: String, id: String = "c", group: String? = nil, exclusive: Bool = true, priority: Int = 0, extra: String = "") throws -> Campaign {
    try Campaign.parse("""
        id = "\(id)"
        version = 1
        sponsor = "SPONSOR"
        [window]
        start = 2026-01-01T00:00:00+08:00
        end = 2026-12-31T23:59:59+08:00
        \(extra)
        [stacking]
        group = "\(group ?? id)"
        mode = "\(exclusive ? "exclusive" : "stackable")"
        priority = \(priority)
        \(body)
        """, file: "\(id).toml")
}

/// 2026-11-28T10:00+08:00, a Saturday.
let saturday = ShanghaiCalendar.Date(year: 2026, month: 11, day: 28).startMicros + 10 * 3_600_000_000
/// 2026-11-25T10:00+08:00, a Wednesday.
let wednesday = ShanghaiCalendar.Date(year: 2026, month: 11, day: 25).startMicros + 10 * 3_600_000_000

func payment(_ fen: Int64, at: Int64 = saturday, first: Bool = false, kind: Campaign.PaymentKind = .utilityBill, biller: String = "QD-WATER", category: String = "water", kycClass: Int = 2) -> PaymentContext {
    PaymentContext(kind: kind, walletID: 1, billAccountID: 1, biller: biller, category: category, district: "市南区", amountFen: fen, at: at, kycClass: kycClass, firstPayment: first)
}

func discount(_ campaigns: [Campaign], _ context: PaymentContext, usage: CampaignUsage = CampaignUsage()) -> Int64 {
    CampaignEngine.evaluate(campaigns, context: context) { _ in usage }.discountFen
}

@Suite struct CampaignEngineTests {
    static let tiers = """
        [[benefit]]
        kind = "threshold_off"
        tiers = [ { min_fen = 5_000, off_fen = 300 }, { min_fen = 10_000, off_fen = 800 } ]
        """

    @Test(arguments: [(4_999, 0), (5_000, 300), (9_999, 300), (10_000, 800), (1_000_000, 800)] as [(Int64, Int64)])
    func thresholdTakesTheBestTierMetWithGreaterOrEqual(amount: Int64, off: Int64) throws {
        #expect(discount([try campaign(Self.tiers)], payment(amount)) == off)
    }

    @Test(arguments: [
        (12_345, 333, "floor", 411), (12_345, 333, "ceil", 412), (12_345, 333, "half_up", 411),
        (12_350, 500, "floor", 617), (12_350, 500, "ceil", 618), (12_350, 500, "half_up", 618),
        (12_349, 500, "half_up", 617), (1, 9_999, "floor", 0), (3, 5_000, "ceil", 2),
    ] as [(Int64, Int, String, Int64)])
    func percentRoundsAsDeclared(amount: Int64, bp: Int, rounding: String, off: Int64) throws {
        let c = try campaign("[[benefit]]\nkind = \"percent_off\"\nbasis_points = \(bp)\nrounding = \"\(rounding)\"")
        #expect(discount([c], payment(amount)) == min(off, amount - 1))
    }

    @Test func percentIsCapped() throws {
        let c = try campaign("[[benefit]]\nkind = \"percent_off\"\nbasis_points = 500\ncap_fen = 1_000")
        #expect(discount([c], payment(19_999)) == 999)
        #expect(discount([c], payment(20_000)) == 1_000)
        #expect(discount([c], payment(500_000)) == 1_000)
    }

    @Test func atLeastOneFenRemains() throws {
        let fixed = try campaign("[[benefit]]\nkind = \"fixed_off\"\noff_fen = 200")
        #expect(discount([fixed], payment(150)) == 149)
        #expect(discount([fixed], payment(1)) == 0)
        let other = try campaign("[[benefit]]\nkind = \"fixed_off\"\noff_fen = 100", id: "d", exclusive: false)
        let stacked = try campaign("[[benefit]]\nkind = \"fixed_off\"\noff_fen = 100", id: "e", group: "d", exclusive: false)
        #expect(discount([other, stacked], payment(150)) == 149)
        #expect(discount([other, stacked], payment(300)) == 200)
    }

    @Test func firstPaymentOnlyOnTheFirst() throws {
        let c = try campaign("[[benefit]]\nkind = \"first_payment\"\noff_fen = 500")
        #expect(discount([c], payment(4_520, first: true)) == 500)
        #expect(discount([c], payment(4_520, first: false)) == 0)
    }

    @Test func pointsPerWholeYuanPaidWithMultiplierDays() throws {
        let c = try campaign(Self.tiers + "\n[[benefit]]\nkind = \"points_per_yuan\"\nrate = 1\nmultiplier = 2\nmultiplier_days = [\"WED\"]")
        let saturdayResult = CampaignEngine.evaluate([c], context: payment(10_099)) { _ in CampaignUsage() }
        #expect(saturdayResult.discountFen == 800 && saturdayResult.points == 92)  // floor(92.99)
        let wednesdayResult = CampaignEngine.evaluate([c], context: payment(10_099, at: wednesday)) { _ in CampaignUsage() }
        #expect(wednesdayResult.points == 184)
    }

    @Test func conditionsAreExplained() throws {
        let c = try campaign(Self.tiers, extra: """
            daily_from = "08:00"
            daily_to = "20:00"
            [eligibility]
            payment_kinds = ["utility_bill"]
            categories = ["water"]
            districts = ["市南区"]
            kyc_classes = [2, 3]
            """)
        func reason(_ context: PaymentContext) -> String {
            CampaignEngine.evaluate([c], context: context) { _ in CampaignUsage() }.explanations[0].reason
        }
        #expect(reason(payment(6_000)) == "applied")
        #expect(reason(payment(6_000, kind: .qrPayment)) == "payment kind qr_payment not eligible")
        #expect(reason(payment(6_000, category: "gas")) == "category gas not eligible")
        #expect(reason(payment(6_000, kycClass: 1)) == "verification class 1 not eligible")
        #expect(reason(payment(6_000, at: saturday + 11 * 3_600_000_000)) == "outside the daily hours")
        #expect(reason(payment(6_000, at: ShanghaiCalendar.startOfYear(2027))) == "after the window")
        #expect(reason(payment(6_000, at: ShanghaiCalendar.startOfYear(2026) - 1)) == "before the window")
    }

    @Test func capsAtTheirExactBoundary() throws {
        let c = try campaign(Self.tiers + "\n[[caps]]\nscope = \"wallet\"\nperiod = \"calendar_month\"\nmax_count = 2\nmax_fen = 1_000")
        #expect(discount([c], payment(10_000), usage: CampaignUsage(capCounts: [1], capFen: [0])) == 800)
        #expect(discount([c], payment(10_000), usage: CampaignUsage(capCounts: [2], capFen: [0])) == 0)
        #expect(discount([c], payment(10_000), usage: CampaignUsage(capCounts: [1], capFen: [300])) == 700)
        #expect(discount([c], payment(10_000), usage: CampaignUsage(capCounts: [1], capFen: [1_000])) == 0)
    }

    @Test func budgetsPartialOrSkip() throws {
        let partial = try campaign(Self.tiers + "\n[budget]\ntotal_fen = 1_000\ndaily_fen = 900\non_exhaustion = \"partial\"")
        let skip = try campaign(Self.tiers + "\n[budget]\ntotal_fen = 1_000\non_exhaustion = \"skip\"")
        #expect(discount([partial], payment(10_000), usage: CampaignUsage(budgetSpentFen: 200)) == 800)
        #expect(discount([partial], payment(10_000), usage: CampaignUsage(budgetSpentFen: 500)) == 500)
        #expect(discount([partial], payment(10_000), usage: CampaignUsage(budgetSpentFen: 100, budgetSpentTodayFen: 500)) == 400)
        #expect(discount([partial], payment(10_000), usage: CampaignUsage(budgetSpentFen: 1_000)) == 0)
        #expect(discount([skip], payment(10_000), usage: CampaignUsage(budgetSpentFen: 200)) == 800)
        #expect(discount([skip], payment(10_000), usage: CampaignUsage(budgetSpentFen: 201)) == 0)
        let result = CampaignEngine.evaluate([skip], context: payment(10_000)) { _ in CampaignUsage(budgetSpentFen: 201) }
        #expect(result.explanations[0].reason == "budget short (skip)" && result.explanations[0].budgetBeforeFen == 799)
    }

    @Test func exclusiveGroupsTakeTheBestStackableOnesAddUp() throws {
        let tiers = try campaign(Self.tiers, id: "tiers", group: "g", priority: 50)
        let percent = try campaign("[[benefit]]\nkind = \"percent_off\"\nbasis_points = 1_000", id: "percent", group: "g", priority: 10)
        let bonus = try campaign("[[benefit]]\nkind = \"fixed_off\"\noff_fen = 100", id: "bonus", exclusive: false)
        let result = CampaignEngine.evaluate([tiers, percent, bonus], context: payment(10_000)) { _ in CampaignUsage() }
        #expect(result.allocations.map(\.campaignID).sorted() == ["bonus", "percent"])
        #expect(result.discountFen == 1_000 + 100)
        #expect(result.explanations.first { $0.campaignId == "tiers" }?.reason.contains("exclusive group g") == true)
        let small = CampaignEngine.evaluate([tiers, percent, bonus], context: payment(6_000)) { _ in CampaignUsage() }
        #expect(small.allocations.map(\.campaignID).sorted() == ["bonus", "percent"] && small.discountFen == 600 + 100)
    }

    @Test(arguments: [
        ("id = \"x\"\nversion = 1\nsponsor = \"S\"\n[[benefit]]\nkind = \"fixed_off\"\noff_fen = 1", "x.toml: window: is required"),
        ("id = \"x\"\nversion = 0\nsponsor = \"S\"", "x.toml: version: must be 1 or more"),
        ("id = \"X\"\nversion = 1\nsponsor = \"S\"", "x.toml: id: use 1 to 64"),
        ("id = \"x\"\nversion = 1\nsponsor = \"S\"\n[window]\nstart = 2026-01-01T00:00:00\nend = 2026-02-01T00:00:00+08:00", "x.toml: window.start: needs an offset"),
        ("id = \"x\"\nversion = 1\nsponsor = \"S\"\n[window]\nstart = 2026-02-01T00:00:00+08:00\nend = 2026-01-01T00:00:00+08:00", "x.toml: window.end: must be after"),
        ("id = \"x\"\nversion = 1\nsponsor = \"S\"\n[window]\nstart = 2026-01-01T00:00:00+08:00\nend = 2026-02-01T00:00:00+08:00\n[[benefit]]\nkind = \"half_off\"", "x.toml: benefit.kind:"),
        ("id = \"x\"\nversion = 1\nsponsor = \"S\"\n[window]\nstart = 2026-01-01T00:00:00+08:00\nend = 2026-02-01T00:00:00+08:00\n[[benefit]]\nkind = \"percent_off\"\nbasis_points = 20000", "x.toml: benefit.basis_points: must be 1 to 10000"),
        ("id = \"x\"\nversion = 1\nsponsor = \"S\"\n[window]\nstart = 2026-01-01T00:00:00+08:00\nend = 2026-02-01T00:00:00+08:00\n[budget]\ntotal_fen = 5\non_exhaustion = \"maybe\"\n[[benefit]]\nkind = \"fixed_off\"\noff_fen = 1", "x.toml: budget.on_exhaustion:"),
        ("id = \"x\"\nversion = 1\nsponsor = \"S\"\nsponsr = \"T\"", "x.toml: sponsr: unknown key"),
        ("id = \"x\"\nversion = 1\nsponsor = \"S\"\n[window]\nstart = 2026-01-01T00:00:00+08:00\nend = 2026-02-01T00:00:00+08:00\n[[benefit]]\nkind = \"fixed_off\"\noff_fen = 9223372036854775807", "x.toml: benefit.off_fen: must be positive fen, at most"),
        ("id = \"x\"\nversion = 1\nsponsor = \"S\"\n[window]\nstart = 2026-01-01T00:00:00+08:00\nend = 2026-02-01T00:00:00+08:00\n[[caps]]\nscope = \"wallet\"\nperiod = \"month\"\n[[benefit]]\nkind = \"fixed_off\"\noff_fen = 1", "x.toml: caps.period:"),
    ])
    func definitionsAreValidatedWithFileKeyAndProblem(toml: String, message: String) {
        #expect {
            _ = try Campaign.parse(toml, file: "x.toml")
        } throws: { error in
            "\(error)".hasPrefix(message)
        }
    }

    @Test func theShippedCampaignsLoad() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Jobs/campaigns").path
        let campaigns = try Campaign.loadAll(directory: folder)
        #expect(campaigns.map(\.id) == ["2026-winter-utility", "first-bill-welcome", "gas-five-percent", "qr-food-weekend"])
    }

    @Test func monthsAddUpAcrossMonthEnds() {
        let jan31 = ShanghaiCalendar.Date(year: 2027, month: 1, day: 31).startMicros + 3_600_000_000
        #expect(ShanghaiCalendar.date(at: CampaignBook.addMonths(jan31, 1)) == ShanghaiCalendar.Date(year: 2027, month: 2, day: 28))
        #expect(ShanghaiCalendar.date(at: CampaignBook.addMonths(jan31, 13)) == ShanghaiCalendar.Date(year: 2028, month: 2, day: 29))
        #expect(ShanghaiCalendar.date(at: CampaignBook.addMonths(jan31, 12)) == ShanghaiCalendar.Date(year: 2028, month: 1, day: 31))
    }
}
