import Foundation
import GRDB
import Logging
import PropertyBased
import QDTestSupport
import Testing
@testable import Billing
@testable import Campaigns
@testable import JobRunner
@testable import Ledger
import Payments
import QDSQL
import QDSchema
import Reports
import Synchronization
@testable import Wallet

extension BillingWorld {
    /// Campaign files as in Jobs/campaigns/, registered like the CLI does.
    func useCampaigns(_ texts: [String]) throws {
        config.campaigns = try texts.enumerated().map { try Campaign.parse($0.element, file: "c\($0.offset).toml") }
        try store.transaction { db, _ in try CampaignBook.register(config.campaigns, db: db, now: clock.nowMicros()) }
    }

    func refund(_ body: (any SQLConnection, any LedgerWriting) throws -> Void) throws {
        try store.transaction(body)
    }

    func sponsorBalance(_ sponsor: String) throws -> Int64 {
        (try? ledger.account(code: SystemAccounts.sponsor(sponsor)).balance) ?? 0
    }

    /// Upgrades the database as one from before these schema steps: they are struck from the
    /// record of the steps applied, and the upgrade takes them again.
    func upgradeAgain(_ steps: [String]) throws {
        let names = steps.map { "'\($0)'" }.joined(separator: ", ")
        if let postgres {
            try execute("DELETE FROM qdwallet_migrations WHERE name IN (\(names))")
            try postgres.migrate(try QDWalletSchema.postgresMigrations())
        } else {
            try execute("DELETE FROM grdb_migrations WHERE identifier IN (\(names))")
            let pool = try DatabasePool(path: path)
            defer { try? pool.close() }
            try BillingWorld.migrator().migrate(pool)
        }
    }

    func budgetUsed(_ id: String) throws -> Int64 {
        try store.database.read { try $0.int64("SELECT spent_fen FROM campaign_budgets WHERE campaign_id = ?", [id]) } ?? 0
    }
}

let winter = """
    id = "winter"
    version = 1
    sponsor = "BUREAU"
    [window]
    start = 2026-11-01T00:00:00+08:00
    end = 2027-02-28T23:59:59+08:00
    [eligibility]
    payment_kinds = ["utility_bill"]
    [budget]
    total_fen = BUDGET
    on_exhaustion = "partial"
    [stacking]
    group = "utility"
    [[benefit]]
    kind = "threshold_off"
    tiers = [ { min_fen = 5_000, off_fen = 300 }, { min_fen = 10_000, off_fen = 800 } ]
    [[benefit]]
    kind = "points_per_yuan"
    rate = 1
    pending_days = 7
    expiry_months = 1
    """

/// A campaign text with caps added before its `[stacking]` table (campaigns.md: caps).
func withCaps(_ text: String, _ caps: [(scope: String, period: String, maxCount: Int)]) -> String {
    text.replacingOccurrences(of: "[stacking]", with: caps.map { "[[caps]]\nscope = \"\($0.scope)\"\nperiod = \"\($0.period)\"\nmax_count = \($0.maxCount)\n" }.joined() + "[stacking]")
}

@Suite struct CampaignBillingTests {
    @Test func discountsArePaidBySponsorsAndRefundsReverseExactly() throws {
        let world = try BillingWorld()
        try world.populate()
        // Caps no payment here reaches: the counters they read are checked below.
        try world.useCampaigns([withCaps(winter.replacingOccurrences(of: "BUDGET", with: "1_000_000"), [("wallet", "campaign", 10), ("bill_account", "calendar_month", 10)])])
        _ = try world.run("2026-11-27")
        // 陈静's water bill 54.30: 3.00 off, 51 points pending.
        #expect(try world.bill("QD-WATER", "W2611-000004")?["discount_fen"] as Int64? == 300)
        #expect(try world.balance("13800000006") == 50_000 - (5_430 - 300) - (7_230 - 300))
        #expect(try world.sponsorBalance("BUREAU") == -(300 + 800 + 300 + 0))
        #expect(try world.budgetUsed("winter") == 1_400)
        let points = try world.wallets.balance(phone: "13800000006").points
        #expect(points == 0) // pending, not vested
        #expect(try world.ledger.account(code: "points:6").creditsPending == 51 + 69)

        try cancelTheWaterBillAndExpectItRefundedWhole(world)
        #expect(try world.count("SELECT count(*) FROM campaign_allocations WHERE reversed_at IS NOT NULL") == 1)
        let movement = try world.rows("SELECT amount_fen, discount_fen FROM wallet_movements WHERE kind = 'bill_refund'").first
        #expect(try movement?["amount_fen"] as Int64? == 5_130)
        #expect(try world.ledger.check().ok)
        // The cap counters count the standing allocation only: 陈静's wallet has one use of
        // 3.00 left in the campaign, and each of her bill accounts what it kept.
        let walletID = try world.count("SELECT id FROM wallets WHERE phone = '13800000006'")
        let use = try world.rows("SELECT uses, discount_fen FROM campaign_cap_use WHERE campaign_id = 'winter' AND scope = 'wallet' AND period = 'campaign' AND scope_id = \(walletID)").first
        #expect(try use?["uses"] as Int64? == 1 && use?["discount_fen"] as Int64? == 300)
        #expect(try world.count("SELECT count(*) FROM campaign_cap_use WHERE campaign_id = 'winter' AND scope = 'bill_account' AND period = 'month' AND uses = 0 AND discount_fen = 0") == 1)
        // Only the pairs of scope and period the caps name are counted.
        #expect(try world.count("SELECT count(*) FROM campaign_cap_use WHERE NOT ((scope = 'wallet' AND period = 'campaign') OR (scope = 'bill_account' AND period = 'month'))") == 0)
        #expect(try world.count("SELECT pairs FROM campaign_cap_counting WHERE campaign_id = 'winter'") == 8 + 64)
        #expect(try world.store.database.read { try CampaignStore($0).capUseMismatches(limit: 10) }.isEmpty)
        // A database from before the counters gets them from its allocations when upgraded,
        // every pair of them (no version's caps are known to SQL), and keeps them all (a
        // counter a refund took to zero is not made again).
        let named = "SELECT scope, scope_id, period, period_key, uses, discount_fen FROM campaign_cap_use WHERE uses > 0 AND ((scope = 'wallet' AND period = 'campaign') OR (scope = 'bill_account' AND period = 'month')) ORDER BY 1, 2, 3, 4"
        let before = try world.rows(named).map { "\($0)" }
        #expect(before.count >= 4)
        try world.execute("DROP TABLE campaign_cap_use")
        try world.execute("DROP TABLE campaign_cap_counting")
        try world.upgradeAgain(["campaigns-v2-cap-counters", "campaigns-v3-counted-pairs"])
        #expect(try world.rows(named).map { "\($0)" } == before)
        #expect(try world.count("SELECT pairs FROM campaign_cap_counting WHERE campaign_id = 'winter'") == 255)
        #expect(try world.count("SELECT count(DISTINCT scope || period) FROM campaign_cap_use") == 8)
        #expect(try world.store.database.read { try CampaignStore($0).capUseMismatches(limit: 10) }.isEmpty)
        // A counter written around the book is found.
        try world.execute("UPDATE campaign_cap_use SET uses = uses + 1 WHERE campaign_id = 'winter' AND scope = 'wallet' AND period = 'day' AND scope_id = \(walletID) AND period_key = '2026-11-27'")
        let forged = try world.store.database.read { try CampaignStore($0).capUseMismatches(limit: 10) }
        #expect(forged.map { "\($0.scope) \($0.scopeId) \($0.period) \($0.periodKey) \($0.countedUses)/\($0.allocatedUses) \($0.countedFen)/\($0.allocatedFen)" } == ["wallet \(walletID) day 2026-11-27 2/1 300/300"])
    }

    /// A bill paid before the row led its key (`bill:BILLER:BILLID` in the journal and in the
    /// campaigns' rows, as a database upgraded from then holds it) and cancelled after: refunded
    /// whole, and the campaigns release what they gave it, found under the key it was paid with.
    @Test func aPaymentFromBeforeTheRowLedItsKeyIsRefundedWhole() throws {
        let world = try BillingWorld()
        try world.populate()
        try world.useCampaigns([winter.replacingOccurrences(of: "BUDGET", with: "1_000_000")])
        _ = try world.run("2026-11-27")
        #expect(try world.budgetUsed("winter") == 1_400)
        let rowLed = try world.paymentKey("QD-WATER", "W2611-000004"), earlier = "bill:QD-WATER:W2611-000004"
        for table in ["ledger_transactions", "ledger_idempotency"] {
            if world.postgres != nil {
                try world.execute("ALTER TABLE \(table) DISABLE TRIGGER USER")
            } else {
                try world.execute("DROP TRIGGER \(table)_no_update")
            }
        }
        try world.execute("UPDATE ledger_transactions SET idempotency_key = ? WHERE idempotency_key = ?", [earlier, rowLed])
        try world.execute("UPDATE ledger_idempotency SET key = ? WHERE key = ?", [earlier, rowLed])
        try world.execute("UPDATE campaign_allocations SET payment_key = ? WHERE payment_key = ?", [earlier, rowLed])
        try world.execute("UPDATE campaign_explanations SET payment_key = ? WHERE payment_key = ?", [earlier, rowLed])
        #expect(try world.count("SELECT count(*) FROM campaign_allocations WHERE payment_key = ?", [earlier]) == 1)

        try cancelTheWaterBillAndExpectItRefundedWhole(world)
        #expect(try world.count("SELECT count(*) FROM campaign_allocations WHERE payment_key = ? AND reversed_at IS NOT NULL", [earlier]) == 1)
    }

    /// A payment's explanation is stored under its transaction, the key `campaign explain` and
    /// a bill's receipt read it by: the table's own key, no index beside it. A database from
    /// before, whose explanations were keyed by payment, keeps every one of them, field for
    /// field; one holding two explanations of one transaction is not upgraded, and keeps them.
    @Test func anExplanationIsKeptUnderItsPaymentsTransaction() throws {
        let world = try BillingWorld()
        try world.populate()
        try world.useCampaigns([winter.replacingOccurrences(of: "BUDGET", with: "1_000_000")])
        _ = try world.run("2026-11-27")
        let paid = try world.count("SELECT count(*) FROM bills WHERE status = 'paid'")
        #expect(paid >= 4)
        // Every paid bill's transaction has its explanation, and nothing else has one.
        #expect(try world.count("SELECT count(*) FROM campaign_explanations") == paid)
        #expect(try world.count("SELECT count(*) FROM bills b JOIN campaign_explanations e ON e.transaction_id = b.transaction_id WHERE b.status = 'paid'") == paid)
        let water = try #require(try world.bill("QD-WATER", "W2611-000004")?["transaction_id"] as Int64?)
        let explained = try #require(try world.store.database.read { try CampaignStore($0).explanation(transactionID: water) })
        #expect(explained.paymentKey == (try world.paymentKey("QD-WATER", "W2611-000004")))
        #expect(explained.explanation.contains("\"winter\"") && explained.explanation.contains("300"), "\(explained.explanation)")
        #expect(try world.store.database.read { try CampaignStore($0).explanation(transactionID: water + 1_000_000) } == nil)
        // The table's key is the transaction, and it has no other index.
        if world.postgres != nil {
            let indexes = try world.store.database.read { try $0.texts("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'campaign_explanations'") }
            #expect(indexes.count == 1 && indexes.allSatisfy { $0.contains("UNIQUE") && $0.hasSuffix("(transaction_id)") }, "\(indexes)")
        } else {
            #expect(try world.count("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'campaign_explanations'") == 0)
            let table = try world.text("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'campaign_explanations'") ?? ""
            #expect(table.contains("transaction_id INTEGER NOT NULL PRIMARY KEY"), "\(table)")
        }

        // The same explanations as a database from before holds them, upgraded.
        let all = "SELECT payment_key, transaction_id, context, explanation, at FROM campaign_explanations ORDER BY transaction_id"
        let before = try world.rows(all).map { "\($0.values)" }
        #expect(before.count == paid)
        func keyedByPayment(_ extra: String = "") throws {
            try world.execute("ALTER TABLE campaign_explanations RENAME TO explanations_now")
            let old = """
                CREATE TABLE campaign_explanations (
                    payment_key TEXT PRIMARY KEY,
                    transaction_id INTEGER,
                    context TEXT NOT NULL,
                    explanation TEXT NOT NULL,
                    at INTEGER NOT NULL
                );
                CREATE INDEX campaign_explanations_by_transaction ON campaign_explanations(transaction_id);
                INSERT INTO campaign_explanations SELECT payment_key, transaction_id, context, explanation, at FROM explanations_now;
                DROP TABLE explanations_now;
                """ + extra
            for statement in (world.postgres != nil ? try SQLDialect.postgresSchema(old) : old).split(separator: ";") where !statement.allSatisfy(\.isWhitespace) {
                try world.execute(String(statement))
            }
        }
        func upgrade() throws { try world.upgradeAgain(["campaigns-v7-explanations-by-transaction"]) }
        try keyedByPayment()
        try upgrade()
        #expect(try world.rows(all).map { "\($0.values)" } == before)
        #expect(try world.store.database.read { try CampaignStore($0).explanation(transactionID: water) }?.paymentKey == explained.paymentKey)

        // Two explanations of one transaction: the upgrade stops, and both stay as they were.
        try keyedByPayment("INSERT INTO campaign_explanations (payment_key, transaction_id, context, explanation, at) SELECT 'again', transaction_id, context, explanation, at FROM campaign_explanations WHERE transaction_id = \(water)")
        #expect(throws: (any Error).self) { try upgrade() }
        #expect(try world.count("SELECT count(*) FROM campaign_explanations") == paid + 1)
        #expect(try world.count("SELECT count(*) FROM campaign_explanations WHERE transaction_id = ?", [water]) == 2)
        #expect(try world.rows("SELECT payment_key, transaction_id, context, explanation, at FROM campaign_explanations WHERE payment_key <> 'again' ORDER BY transaction_id").map { "\($0.values)" } == before)
    }

    /// The second night cancels 陈静's water bill (54.30, paid with 3.00 off and 51 points
    /// pending): the refund gives her back what she paid, the sponsor its 3.00, the budget its
    /// use, and takes the pending points back.
    func cancelTheWaterBillAndExpectItRefundedWhole(_ world: BillingWorld) throws {
        world.clock.advance(micros: ShanghaiCalendar.dayMicros)
        _ = try world.run("2026-11-28")
        #expect(try world.status("QD-WATER", "W2611-000004") == "refunded")
        #expect(try world.balance("13800000006") == 50_000 - (7_230 - 300))
        #expect(try world.sponsorBalance("BUREAU") == -(800 + 300))
        #expect(try world.budgetUsed("winter") == 1_100)
        #expect(try world.ledger.account(code: "points:6").creditsPending == 69)
    }

    /// Every PAID and REFUNDED item of every report says what its bill's row says: the amount
    /// paid to the biller (a discount is the sponsor's part of it), the time, the payment's or the
    /// refund's transaction as its reference, and the day; and every bill paid or refunded on
    /// a day is an item of that day's report (bill-feed.md: the payment report).
    @Test func reportItemsCarryTheirBillsAmountsAndReferences() throws {
        let world = try BillingWorld()
        try world.populate()
        try world.useCampaigns([winter.replacingOccurrences(of: "BUDGET", with: "1_000_000")])
        _ = try world.run("2026-11-27")
        // A second water feed of the 27th cancels a bill the night paid: refunded on its own
        // day, an item of the day's feeds (the report was delivered: the correction is its
        // version 2).
        let sameDay = try #require(try world.rows("SELECT bill_id FROM bills WHERE biller = 'QD-WATER' AND status = 'paid' AND bill_id <> 'W2611-000004' ORDER BY bill_id").first?["bill_id"] as String?)
        let second = world.directory.appendingPathComponent("QD-WATER-20261127-02.xml")
        try """
            <?xml version="1.0" encoding="UTF-8"?>
            <BillFeed xmlns="urn:qdwallet:billfeed:1"><Header><FeedId>QD-WATER-20261127-02</FeedId><BillerCode>QD-WATER</BillerCode><CreatedAt>2026-11-27T23:00:00+08:00</CreatedAt><BusinessDate>2026-11-27</BusinessDate><NbOfBills>0</NbOfBills><CtrlSum Ccy="CNY">0.00</CtrlSum></Header>
            <Cancel><BillId>\(sameDay)</BillId><Reason>meter misread</Reason></Cancel></BillFeed>
            """.write(to: second, atomically: false, encoding: .utf8)
        // The clock has not moved: the cancel's feed is ingested at the same moment as the
        // bill's, and the bill is still one item.
        #expect(try world.run("2026-11-27", feeds: ["QD-WATER": "file://" + second.path], force: true).status == "completed")
        #expect(try world.status("QD-WATER", sameDay) == "refunded")
        world.clock.advance(micros: ShanghaiCalendar.dayMicros)
        _ = try world.run("2026-11-28")
        func items(_ xml: String) -> [String: [String: String]] {
            var found: [String: [String: String]] = [:]
            for part in xml.components(separatedBy: "<Item>").dropFirst() {
                var fields: [String: String] = [:]
                for name in ["BillId", "Status", "Amount", "PaidAt", "PaymentRef", "Reason"] {
                    guard let open = part.range(of: "<\(name)"), let close = part.range(of: ">", range: open.upperBound..<part.endIndex),
                          let end = part.range(of: "</\(name)>", range: close.upperBound..<part.endIndex) else { continue }
                    fields[name] = String(part[close.upperBound..<end.lowerBound])
                }
                found[fields["BillId"] ?? ""] = fields
            }
            return found
        }
        func rfc3339(_ micros: Int64) -> String { ShanghaiCalendar.rfc3339(at: micros) }
        var discounted = 0, refunded = 0
        for biller in ["QD-WATER", "QD-POWER", "QD-GAS"] {
            for (day, compact) in [("2026-11-27", "20261127"), ("2026-11-28", "20261128")] {
                let listed = items(try world.reportFile(biller, biller == "QD-WATER" && compact == "20261127" ? compact + "-v2" : compact))
                let paid = try world.rows("SELECT bill_id, paid_fen, discount_fen, paid_at, transaction_id FROM bills WHERE biller = ? AND paid_business_date = ? AND (refunded_business_date IS NULL OR refunded_business_date <> ?)", [biller, day, day])
                for bill in paid {
                    let item = listed[try bill["bill_id"] as String]
                    #expect(item?["Status"] == "PAID", "\(biller) \(day) \(bill)")
                    #expect(item?["Amount"] == Money(fen: try bill["paid_fen"]).yuanString, "\(biller) \(day) \(bill)")
                    #expect(item?["PaymentRef"] == "QDW-T\(try bill["transaction_id"] as Int64)", "\(biller) \(day) \(bill)")
                    #expect(item?["PaidAt"] == rfc3339(try bill["paid_at"]), "\(biller) \(day) \(bill)")
                    if try bill["discount_fen"] as Int64 > 0 { discounted += 1 }
                }
                let back = try world.rows("SELECT bill_id, paid_fen, refund_transaction_id FROM bills WHERE biller = ? AND refunded_business_date = ?", [biller, day])
                for bill in back {
                    let item = listed[try bill["bill_id"] as String]
                    #expect(item?["Status"] == "REFUNDED", "\(biller) \(day) \(bill)")
                    #expect(item?["Amount"] == Money(fen: try bill["paid_fen"]).yuanString, "\(biller) \(day) \(bill)")
                    #expect(item?["PaymentRef"] == "QDW-T\(try bill["refund_transaction_id"] as Int64)", "\(biller) \(day) \(bill)")
                    refunded += 1
                }
                #expect(listed.values.filter { $0["Status"] == "PAID" }.count == paid.count, "\(biller) \(day)")
                #expect(listed.values.filter { $0["Status"] == "REFUNDED" }.count == back.count, "\(biller) \(day)")
            }
        }
        // The campaign discounted some payments, and a cancel refunded one bill on the day it
        // was paid and one on the next: every kind of item was checked.
        #expect(discounted >= 3)
        #expect(refunded == 2)
        #expect(items(try world.reportFile("QD-WATER", "20261127-v2"))[sameDay]?["Status"] == "REFUNDED")
        // 陈静's water bill: 54.30 due and paid to the biller (3.00 of it by the sponsor),
        // refunded on the 28th.
        let water = items(try world.reportFile("QD-WATER", "20261127-v2"))["W2611-000004"]
        #expect(water?["Status"] == "PAID" && water?["Amount"] == "54.30", "\(String(describing: water))")
        #expect(items(try world.reportFile("QD-WATER", "20261128"))["W2611-000004"]?["Status"] == "REFUNDED")
    }

    /// A cap a later version adds counts what the campaign gave before it (campaigns.md:
    /// caps per wallet and calendar month): its counters are filled from the standing
    /// allocations when the version is registered, the refunded one left out.
    @Test func aCapAddedByALaterVersionCountsWhatCameBefore() throws {
        let world = try BillingWorld()
        try world.populate()
        try world.useCampaigns([winter.replacingOccurrences(of: "BUDGET", with: "1_000_000")])
        _ = try world.run("2026-11-27")
        world.clock.advance(micros: ShanghaiCalendar.dayMicros)
        _ = try world.run("2026-11-28")
        #expect(try world.status("QD-WATER", "W2611-000004") == "refunded")
        // No cap, no counters.
        #expect(try world.count("SELECT count(*) FROM campaign_cap_use") == 0)
        #expect(try world.count("SELECT pairs FROM campaign_cap_counting WHERE campaign_id = 'winter'") == 0)
        let standing = try world.rows("SELECT wallet_id, count(*) AS uses, sum(discount_fen) AS fen FROM campaign_allocations WHERE reversed_at IS NULL GROUP BY wallet_id ORDER BY wallet_id")
            .map { "\(try $0["wallet_id"] as Int64) 2026-11 \(try $0["uses"] as Int64) \(try $0["fen"] as Int64)" }
        #expect(standing.count >= 2)
        let second = withCaps(winter.replacingOccurrences(of: "BUDGET", with: "1_000_000").replacingOccurrences(of: "version = 1", with: "version = 2"), [("wallet", "calendar_month", 2)])
        try world.useCampaigns([second])
        let counted = try world.rows("SELECT scope_id, period_key, uses, discount_fen FROM campaign_cap_use WHERE campaign_id = 'winter' AND scope = 'wallet' AND period = 'month' ORDER BY scope_id")
            .map { "\(try $0["scope_id"] as Int64) \(try $0["period_key"] as String) \(try $0["uses"] as Int64) \(try $0["discount_fen"] as Int64)" }
        #expect(counted == standing)
        #expect(try world.count("SELECT count(*) FROM campaign_cap_use") == standing.count)
        #expect(try world.count("SELECT pairs FROM campaign_cap_counting WHERE campaign_id = 'winter'") == 4)
        #expect(try world.store.database.read { try CampaignStore($0).capUseMismatches(limit: 10) }.isEmpty)
        // Registering the same versions again changes nothing.
        try world.store.transaction { db, _ in try CampaignBook.register(world.config.campaigns, db: db, now: world.clock.nowMicros()) }
        #expect(try world.count("SELECT count(*) FROM campaign_cap_use") == standing.count)
    }

    /// A registration that starts counting a pair and a payment that adds to the counters,
    /// in two sessions at once, in both orders: the payment's allocation is counted once,
    /// by whichever committed second. On PostgreSQL the campaign's counting row is the lock
    /// between them (shared by payments, exclusive while a pair is filled); on SQLite the
    /// writers take turns.
    @Test(arguments: [true, false]) func aRegistrationRacingAPaymentCountsItOnce(registrationFirst: Bool) throws {
        let world = try BillingWorld()
        try world.populate()
        try world.useCampaigns([winter.replacingOccurrences(of: "BUDGET", with: "1_000_000")])
        let walletID = Int64(try world.count("SELECT id FROM wallets WHERE phone = '13800000006'"))
        let at = world.clock.nowMicros()
        let keys = CampaignBook.periodKeys(at)
        let allocation = CampaignStore.NewAllocation(paymentKey: "race", transactionID: 1, campaignID: "winter", version: 1, sponsor: "BUREAU", walletID: walletID, billAccountID: nil,
                                                     discountFen: 300, points: 0, pointsHoldID: nil, vestAt: nil, expiresAt: nil, at: at, day: keys.day, week: keys.week, month: keys.month)
        let capped = try Campaign.parse(withCaps(winter.replacingOccurrences(of: "BUDGET", with: "1_000_000").replacingOccurrences(of: "version = 1", with: "version = 2"), [("wallet", "day", 5)]), file: "c.toml")
        let (first, second) = (try world.anotherStore(), try world.anotherStore())
        let started = DispatchSemaphore(value: 0)
        let pay: @Sendable (SQLLedgerStore) throws -> Void = { store in try store.transaction { db, _ in try CampaignStore(db).insert([allocation]) } }
        let register: @Sendable (SQLLedgerStore) throws -> Void = { store in try store.transaction { db, _ in try CampaignBook.register([capped], db: db, now: at) } }
        let finished = DispatchSemaphore(value: 0)
        let failure = Mutex<(any Error)?>(nil)
        // The first one stays open 300 ms after its work, while the second one starts (a
        // thread of its own: the second blocks on the first's lock).
        Thread.detachNewThread {
            do {
                try first.transaction { db, _ in
                    if registrationFirst { try CampaignBook.register([capped], db: db, now: at) } else { try CampaignStore(db).insert([allocation]) }
                    started.signal()
                    Thread.sleep(forTimeInterval: 0.3)
                }
            } catch {
                failure.withLock { $0 = error }
                started.signal()
            }
            finished.signal()
        }
        started.wait()
        try (registrationFirst ? pay : register)(second)
        finished.wait()
        if let error = failure.withLock({ $0 }) { throw error }
        #expect(try world.count("SELECT uses FROM campaign_cap_use WHERE campaign_id = 'winter' AND scope = 'wallet' AND period = 'day' AND scope_id = ?", [walletID]) == 1)
        #expect(try world.store.database.read { try CampaignStore($0).capUseMismatches(limit: 10) } == [])
    }

    @Test func pointsVestAfterTheRefundWindowAndExpireAcrossMonthEnds() throws {
        let world = try BillingWorld()
        try world.populate()
        try world.useCampaigns([winter.replacingOccurrences(of: "BUDGET", with: "1_000_000")])
        _ = try world.run("2026-11-27")
        let runner = JobRunner(store: world.store, clock: world.clock, logger: Logger(label: "t"),
                               definitions: [try JobDefinition(.parse("name = \"campaign-settlement\"\nidentifying = [\"date\"]\n[parameters]\ndate = \"{yesterday}\"", file: "s.job.toml"))],
                               implementations: [CampaignSettlement.implementation(statementsDirectory: world.directory.appendingPathComponent("statements").path)], sleepMillis: { _ in })
        // Paid 2026-11-28 02:00; pending 7 days: not vested on 12-04, vested on 12-05.
        // Each settlement runs at 05:00 the day after its date, as scheduled.
        world.clock.set(shanghai(2026, 12, 5, 5, 0))
        _ = try runner.run("campaign-settlement", overrides: ["date": "2026-12-04"])
        #expect(try world.wallets.balance(phone: "13800000001").points == 0)
        world.clock.set(shanghai(2026, 12, 6, 5, 0))
        _ = try runner.run("campaign-settlement", overrides: ["date": "2026-12-05"])
        let vested = try world.wallets.balance(phone: "13800000001").points
        #expect(vested == 120 + 45)  // 45.20 is under the first tier: no discount, 45 points
        // Vested 2026-12-05 02:00, one month: expires 2027-01-05 02:00.
        world.clock.set(shanghai(2027, 1, 5, 5, 0))
        _ = try runner.run("campaign-settlement", overrides: ["date": "2027-01-04"])
        #expect(try world.wallets.balance(phone: "13800000001").points == vested)
        world.clock.set(shanghai(2027, 1, 6, 5, 0))
        let report = try runner.run("campaign-settlement", overrides: ["date": "2027-01-05"])
        #expect(try world.wallets.balance(phone: "13800000001").points == 0)
        #expect(try world.count("SELECT count(*) FROM campaign_allocations WHERE points_status = 'expired'") == 4)
        // Rerunning changes nothing.
        let transactions = try world.count("SELECT count(*) FROM ledger_transactions")
        _ = try runner.run("campaign-settlement", overrides: ["date": "2027-01-05"], force: true)
        #expect(try world.count("SELECT count(*) FROM ledger_transactions") == transactions)
        #expect(report.status == "completed")
        let csv = try String(contentsOfFile: world.directory.appendingPathComponent("statements/BUREAU-20270105.csv").path, encoding: .utf8)
        #expect(csv.hasPrefix("sponsor,period_start,period_end,campaign_id"))
        #expect(try world.ledger.check().ok)
    }

    @Test func statementsEqualTheLedgerMovements() throws {
        let world = try BillingWorld()
        try world.populate()
        try world.useCampaigns([winter.replacingOccurrences(of: "BUDGET", with: "1_000_000")])
        _ = try world.run("2026-11-27")
        world.clock.advance(micros: ShanghaiCalendar.dayMicros)
        _ = try world.run("2026-11-28")
        let statements = try world.store.database.read { db in try SponsorStatement.all(db, date: ShanghaiCalendar.Date(year: 2026, month: 11, day: 30)) }
        let bureau = try #require(statements.first { $0.sponsor == "BUREAU" })
        #expect(bureau.discountsNetFen == 1_100)
        #expect(bureau.ledgerSponsorMovementFen == 1_100)
        #expect(bureau.agrees)
    }

    /// A campaign window means the business date for the nightly run's autopay (the payment is
    /// effective on that date), and the clock for a payment made now (pay-bill, QR). A run
    /// for 27 November a week late still gets 27 November's campaign; a pay-bill a week late
    /// does not.
    @Test func campaignWindowsMeanTheBusinessDateForAutopayAndTheClockForPayBill() throws {
        let oneDay = winter.replacingOccurrences(of: "BUDGET", with: "1_000_000")
            .replacingOccurrences(of: "start = 2026-11-01T00:00:00+08:00", with: "start = 2026-11-27T00:00:00+08:00")
            .replacingOccurrences(of: "end = 2027-02-28T23:59:59+08:00", with: "end = 2026-11-27T23:59:59+08:00")
        let late = try BillingWorld()
        try late.populate()
        try late.useCampaigns([oneDay])
        late.clock.set(shanghai(2026, 12, 5, 2, 0))
        _ = try late.run("2026-11-27")
        // 陈静's water bill 54.30, paid by autopay with the 27th's 3.00 off.
        #expect(try late.bill("QD-WATER", "W2611-000004")?["discount_fen"] as Int64? == 300)
        #expect(try late.budgetUsed("winter") > 0)
        // A bill left payable, paid by hand on 5 December: the window has closed.
        try late.execute("UPDATE wallets SET kyc_verified = 1, kyc_class = 2")
        let payable = try late.rows("SELECT b.biller, b.bill_id, w.phone FROM bills b JOIN wallets w ON w.id = b.wallet_id WHERE b.status = 'payable' AND w.frozen = 0 AND b.due_fen >= 5000 ORDER BY b.id")
        #expect(payable.count >= 2)
        let first = payable[0]
        func fund(_ phone: String, _ key: String) throws {
            let card = try late.wallets.cards(phone: phone).first ?? late.wallets.bindCard(phone: phone, cardNumber: "4111111111111111", bank: "ICBC")
            _ = try late.wallets.topUp(phone: phone, cardID: card.id, amountFen: 100_000, idempotencyKey: key)
        }
        try fund(first["phone"], "more-1")
        let december = try late.billing.payBillWithCampaigns(late.config.campaigns, phone: first["phone"], reference: "\(first["biller"] as String):\(first["bill_id"] as String)")
        #expect(december.discountFen == 0)
        // The same kind of bill paid by hand on the 27th itself gets the discount.
        late.clock.set(shanghai(2026, 11, 27, 15, 0))
        let second = payable[1]
        try fund(second["phone"], "more-2")
        let onTheDay = try late.billing.payBillWithCampaigns(late.config.campaigns, phone: second["phone"], reference: "\(second["biller"] as String):\(second["bill_id"] as String)")
        #expect(onTheDay.discountFen > 0)
        #expect(try late.ledger.check().ok)
    }

    /// Many pay-bills at once, from separate connections as separate processes would, against
    /// a budget that cannot cover them all: the budget is used to the fen, never beyond.
    @Test func aBudgetRacedToZeroIsNeverOverspent() async throws {
        let world = try BillingWorld()
        try world.populate()
        try world.useCampaigns([winter.replacingOccurrences(of: "BUDGET", with: "1_000")])
        // Nobody has autopay for these: everything is paid by hand, concurrently.
        try world.execute("UPDATE bill_accounts SET autopay = 0")
        try world.execute("UPDATE wallets SET kyc_verified = 1, kyc_class = 2")
        _ = try world.wallets.setFrozen(phone: "13800000004", frozen: false, reason: "test")
        _ = try world.run("2026-11-27")
        let bills = try world.rows("SELECT b.biller, b.bill_id, w.phone FROM bills b JOIN wallets w ON w.id = b.wallet_id WHERE b.status = 'payable'")
            .map { (try $0["phone"] as String, "\(try $0["biller"] as String):\(try $0["bill_id"] as String)") }
        #expect(bills.count >= 5)
        let campaigns = world.config.campaigns
        let clock = world.clock
        let key = world.wallets.dataKey
        // Separate pools, as separate processes would have.
        let stores = try bills.map { _ in try world.anotherStore() }
        let outcomes = await withTaskGroup(of: String.self) { group in
            for ((phone, bill), store) in zip(bills, stores) {
                group.addTask {
                    do {
                        let wallets = WalletService(store: store, ledger: Ledger(store: store, clock: clock), hasher: PasswordHasher(iterations: 1_000), dataKey: key)
                        let receipt = try BillingService(wallets: wallets, campaigns: campaigns).payBill(phone: phone, reference: bill, password: "123456")
                        return receipt.replayed ? "replayed" : "paid"
                    } catch WalletRefusal.insufficientFunds {
                        return "insufficient funds"
                    } catch {
                        return "unexpected: \(error)"
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        // Every payment was either made or refused for the wallet's money, never for the race.
        #expect(outcomes.filter { $0 != "paid" && $0 != "insufficient funds" } == [])
        #expect(outcomes.filter { $0 == "paid" }.count >= 3)
        let used = try world.budgetUsed("winter")
        // To the fen: the bills asked for more than the budget (partial on exhaustion).
        #expect(used == 1_000)
        #expect(try world.sponsorBalance("BUREAU") == -used)
        let allocated = try world.count("SELECT coalesce(sum(discount_fen), 0) FROM campaign_allocations WHERE campaign_id = 'winter'")
        #expect(Int64(allocated) == used)
        #expect(try world.ledger.check().ok)
    }

    /// Random payments and refunds: each payment gets exactly its tier's discount, cut to
    /// what is left of the budget; discounts add up to the sponsor's movement and to the
    /// budget used, whatever the order; a refusal is one of the expected ones, never swallowed.
    @Test func discountsAlwaysEqualSponsorMovementAndBudgetUsed() async throws {
        await propertyCheck(count: 30, input: Gen.int(in: 0...1_000_000).array(of: 4...16)) { codes in
            let world = try BillingWorld()
            try world.populate()
            // Caps that do not bind, so the counters are kept (and checked after every step).
            try world.useCampaigns([withCaps(winter.replacingOccurrences(of: "BUDGET", with: "1_500"), [("wallet", "day", 50), ("bill_account", "campaign", 50)])])
            try world.execute("UPDATE bill_accounts SET autopay = 0")
            try world.execute("UPDATE wallets SET kyc_verified = 1, kyc_class = 2")
            _ = try world.wallets.setFrozen(phone: "13800000004", frozen: false, reason: "test")
            _ = try world.run("2026-11-27")
            let payable = try world.rows("SELECT b.id, b.biller, b.bill_id, w.phone, b.feed_id, b.due_fen FROM bills b JOIN wallets w ON w.id = b.wallet_id WHERE b.status = 'payable' ORDER BY b.id")
                .map { (try $0["phone"] as String, "\(try $0["biller"] as String):\(try $0["bill_id"] as String)", try $0["due_fen"] as Int64) }
            #expect(payable.count >= 5)
            for code in codes {
                let (phone, bill, due) = payable[code % payable.count]
                if code % 3 == 0 {
                    // A refund: reverse the payment and its campaigns, as a cancel does.
                    try world.refund { db, tx in
                        let parts = bill.split(separator: ":").map(String.init)
                        guard let row = try db.oneRow("SELECT b.transaction_id, w.points_account_id, b.id FROM bills b JOIN wallets w ON w.id = b.wallet_id WHERE biller = ? AND bill_id = ? AND status = 'paid'", [parts[0], parts[1]]) else { return }
                        let result = try world.ledger.post([PostingRequest(key: "refund:\(bill):\(code)", action: .reverse(transactionID: try row[0]))], in: tx)[0]
                        guard let refund = result.transactionID else { return }
                        try CampaignBook(db: db, campaigns: []).reverse(paymentKey: PaymentKey(biller: parts[0], billID: parts[1]).key(row: try row[2]), reversalTransactionID: refund, pointsAccount: try row[1], tx: tx, clock: world.clock, at: world.clock.nowMicros())
                        try db.run("UPDATE bills SET status = 'refunded' WHERE biller = ? AND bill_id = ?", [parts[0], parts[1]])
                    }
                } else {
                    let usedBefore = try world.budgetUsed("winter")
                    let balanceBefore = try world.balance(phone)
                    do {
                        let receipt = try world.billing.payBillWithCampaigns(world.config.campaigns, phone: phone, reference: bill)
                        if !receipt.replayed {
                            // campaigns.md: the highest tier reached, partial on exhaustion.
                            let tier: Int64 = due >= 10_000 ? 800 : due >= 5_000 ? 300 : 0
                            #expect(receipt.discountFen == min(tier, 1_500 - usedBefore), "\(bill) due \(due)")
                            #expect(receipt.amountFen == due - receipt.discountFen)
                            #expect(try world.balance(phone) == balanceBefore - receipt.amountFen)
                        }
                    } catch BillingRefusal.billAlreadyPaid, BillingRefusal.billNotPayable {
                        // Paid from another wallet, or refunded: refused, and nothing moved.
                        #expect(try world.balance(phone) == balanceBefore)
                    } catch WalletRefusal.insufficientFunds {
                        #expect(try world.balance(phone) < due)
                    }
                }
                world.clock.advance(micros: 60_000_000)
                let used = try world.budgetUsed("winter")
                let live = try world.count("SELECT coalesce(sum(discount_fen), 0) FROM campaign_allocations WHERE campaign_id = 'winter' AND reversed_at IS NULL")
                #expect(used == Int64(live))
                #expect(try world.sponsorBalance("BUREAU") == -used)
                #expect(used <= 1_500)
                // Every cap counter equals the standing allocations it counts, refunds taken off.
                #expect(try world.store.database.read { try CampaignStore($0).capUseMismatches(limit: 10) } == [])
            }
            #expect(try world.ledger.check().ok)
        }
    }
}

extension BillingService {
    @Suite struct QRCampaignTests {
    @Test func qrPaymentsGoThroughTheSameEngine() throws {
        let world = try BillingWorld()
        try world.populate()
        let food = """
            id = "food"
            version = 1
            sponsor = "BUREAU"
            [window]
            start = 2026-11-01T00:00:00+08:00
            end = 2027-03-31T23:59:59+08:00
            [eligibility]
            payment_kinds = ["qr_payment"]
            categories = ["food"]
            [[caps]]
            scope = "wallet"
            period = "day"
            max_count = 1
            [[benefit]]
            kind = "threshold_off"
            tiers = [ { min_fen = 2_000, off_fen = 100 } ]
            [[benefit]]
            kind = "points_per_yuan"
            rate = 1
            """
        try world.useCampaigns([food])
        let wallets = WalletService(store: world.store, ledger: world.ledger, hasher: PasswordHasher(iterations: 1_000), dataKey: world.wallets.dataKey, planner: CampaignPlanner(campaigns: world.config.campaigns, clock: world.ledger.clock))
        _ = try wallets.registerMerchant(id: "M0001", name: "台东小吃", category: "food", mcc: "5812")
        let qr = try wallets.merchantQR(id: "M0001", amountFen: nil)
        let receipt = try wallets.payQR(phone: "13800000001", payload: qr, amountFen: 3_000, password: "123456", idempotencyKey: "q1")
        #expect(receipt.amountFen == 2_900 && receipt.discountFen == 100 && receipt.points == 29)
        #expect(try world.ledger.account(code: "merchant:M0001").balance == 3_000)
        #expect(try world.sponsorBalance("BUREAU") == -100)
        // The answer is built from what the payment wrote; its retry reads the movement back.
        var replay = try wallets.payQR(phone: "13800000001", payload: qr, amountFen: 3_000, password: "123456", idempotencyKey: "q1")
        #expect(replay.replayed)
        replay.replayed = false
        #expect(replay == receipt)
        // The daily cap: the second payment of the day pays in full.
        let second = try wallets.payQR(phone: "13800000001", payload: qr, amountFen: 3_000, password: "123456", idempotencyKey: "q2")
        #expect(second.discountFen == 0 && second.amountFen == 3_000)
        #expect(try world.balance("13800000001") == 100_000 - 2_900 - 3_000)
        #expect(try world.ledger.check().ok)
    }
}

/// pay-bill with campaigns, as the CLI wires it.
    func payBillWithCampaigns(_ campaigns: [Campaign], phone: String, reference: String) throws -> WalletService.Receipt {
        try BillingService(wallets: wallets, campaigns: campaigns).payBill(phone: phone, reference: reference, password: "123456")
    }
}

/// What seeded bugs survived before: each of these fails with one of them.
@Suite struct CampaignGapTests {
    /// A night whose discounts exceed the remaining budget: the budget is used to the fen,
    /// never beyond, though every allocation of the chunk is still in flight.
    @Test func aNightBeyondTheBudgetUsesItToTheFen() throws {
        let world = try BillingWorld()
        try world.populate()
        try world.useCampaigns([winter.replacingOccurrences(of: "BUDGET", with: "1_000")])
        _ = try world.run("2026-11-27")
        // Unbounded, the night's tiers would give 3.00 + 8.00 + 3.00 = 14.00.
        #expect(try world.budgetUsed("winter") == 1_000)
        #expect(try world.sponsorBalance("BUREAU") == -1_000)
        #expect(try world.count("SELECT coalesce(sum(discount_fen), 0) FROM campaign_allocations WHERE campaign_id = 'winter'") == 1_000)
        #expect(try world.count("SELECT coalesce(sum(discount_fen), 0) FROM bills") == 1_000)
        #expect(try world.ledger.check().ok)
    }

    /// A cap counts a wallet's discounted payments across chunks and nights (campaigns.md:
    /// caps per wallet and calendar month). The nightly run reads a chunk's cap counters
    /// at once and counts its own payments in flight: with chunks of two bills, the first
    /// two bills of the month get the discount and no later one does, that night or the next.
    @Test func aWalletCapHoldsAcrossChunksAndNights() throws {
        let world = try BillingWorld()
        try world.populate()
        try world.useCampaigns(["""
            id = "capped"
            version = 1
            sponsor = "BUREAU"
            [window]
            start = 2026-11-01T00:00:00+08:00
            end = 2027-02-28T23:59:59+08:00
            [eligibility]
            payment_kinds = ["utility_bill"]
            [budget]
            total_fen = 1_000_000
            on_exhaustion = "partial"
            [[caps]]
            scope = "wallet"
            period = "calendar_month"
            max_count = 2
            [stacking]
            group = "utility"
            [[benefit]]
            kind = "threshold_off"
            tiers = [ { min_fen = 100, off_fen = 10 } ]
            """])
        // 13800000001's water account: five bills of 1.00 tonight, two tomorrow.
        let tonight = try FeedIdentityTests.feed(world.directory, biller: "QD-WATER", feedID: "C-1", customer: "1100234567", bills: (1...5).map { (id: "C-\($0)", fen: Int64(100)) })
        let report = try world.runner(chunkSize: 2).run("nightly-billing", overrides: ["date": "2026-11-27", "feed.QD-WATER": tonight])
        #expect(report.status == "completed")
        let walletID = try world.count("SELECT id FROM wallets WHERE phone = '13800000001'")
        #expect(try world.count("SELECT count(*) FROM bills WHERE bill_id LIKE 'C-%' AND status = 'paid'") == 5)
        // The sample night pays one of its bills too (power, 12.86, discounted first): the
        // wallet's two discounts of the month are that one and C-1.
        #expect(try world.count("SELECT count(*) FROM bills WHERE wallet_id = ? AND discount_fen = 10", [walletID]) == 2)
        #expect(try world.count("SELECT count(*) FROM bills WHERE bill_id LIKE 'C-%' AND discount_fen = 10") == 1)
        #expect(try world.text("SELECT min(bill_id) FROM bills WHERE bill_id LIKE 'C-%' AND discount_fen = 10") == "C-1")
        world.clock.advance(micros: ShanghaiCalendar.dayMicros)
        let tomorrow = try FeedIdentityTests.feed(world.directory, biller: "QD-WATER", feedID: "C-2", businessDate: "2026-11-28", customer: "1100234567", bills: (6...7).map { (id: "C-\($0)", fen: Int64(100)) })
        #expect(try world.runner(chunkSize: 2).run("nightly-billing", overrides: ["date": "2026-11-28", "feed.QD-WATER": tomorrow]).status == "completed")
        #expect(try world.count("SELECT count(*) FROM bills WHERE bill_id LIKE 'C-%' AND status = 'paid'") == 7)
        #expect(try world.count("SELECT count(*) FROM campaign_allocations WHERE wallet_id = ?", [walletID]) == 2)
        #expect(try world.count("SELECT count(*) FROM bills WHERE bill_id IN ('C-6', 'C-7') AND discount_fen = 0") == 2)
        #expect(try world.count("SELECT uses FROM campaign_cap_use WHERE scope = 'wallet' AND scope_id = ? AND period = 'month' AND period_key = '2026-11'", [walletID]) == 2)
        #expect(try world.store.database.read { try CampaignStore($0).capUseMismatches(limit: 10) } == [])
        #expect(try world.sponsorBalance("BUREAU") == -(try world.budgetUsed("capped")))
        #expect(try world.ledger.check().ok)
    }

    /// pay-bill evaluates the campaigns as autopay does: the discount is given and funded.
    @Test func payBillGivesTheCampaignsDiscount() throws {
        let world = try BillingWorld()
        try world.populate()
        try world.useCampaigns([winter.replacingOccurrences(of: "BUDGET", with: "1_000_000")])
        try world.execute("UPDATE bill_accounts SET autopay = 0")
        _ = try world.run("2026-11-27")
        // 陈静's water bill 54.30 is over the first tier (50.00): 3.00 off.
        let before = try world.balance("13800000006")
        let receipt = try world.billing.payBillWithCampaigns(world.config.campaigns, phone: "13800000006", reference: "QD-WATER:W2611-000004")
        #expect(receipt.discountFen == 300)
        #expect(receipt.amountFen == 5_430 - 300)
        #expect(before - (try world.balance("13800000006")) == 5_130)
        #expect(try world.sponsorBalance("BUREAU") == -300)
        #expect(try world.budgetUsed("winter") == 300)
        #expect(try world.ledger.check().ok)
    }
}

/// Two billers may send the same BillId on the same night: a payment's identity is its
/// biller and its BillId.
@Suite struct SharedBillIDTests {
    @Test func twoBillersBillsWithOneBillIdArePaidApart() throws {
        let world = try BillingWorld()
        try world.populate()
        let water = try FeedIdentityTests.feed(world.directory, biller: "QD-WATER", feedID: "W-1", billID: "SAME-1", customer: "1100234567", fen: 1_000)
        let gas = try FeedIdentityTests.feed(world.directory, biller: "QD-GAS", feedID: "G-1", billID: "SAME-1", customer: "88001236", fen: 2_000)
        _ = try world.run("2026-11-27", feeds: ["QD-WATER": water, "QD-GAS": gas])
        let waterBill = try #require(try world.bill("QD-WATER", "SAME-1"))
        let gasBill = try #require(try world.bill("QD-GAS", "SAME-1"))
        #expect(try waterBill["status"] as String == "paid" && gasBill["status"] as String == "paid")
        #expect(try (waterBill["transaction_id"] as Int64?) != (gasBill["transaction_id"] as Int64?))
        #expect(try world.ledgerMovement("QD-WATER", "2026-11-27") == 1_000)
        #expect(try world.ledgerMovement("QD-GAS", "2026-11-27") == 2_000)
    }
}
