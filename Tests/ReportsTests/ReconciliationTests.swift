import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import GRDB
import QDSQL
import QDSchema
import QDTestSupport
import Testing
@testable import Billing
@testable import Ledger
@testable import Reports

extension BillingWorld {
    func reconcile(_ date: String, paymentsPage: Int = 5_000) throws -> Reconciliation {
        try store.transaction { db, tx in try Reconciliation.run(db, ledger: tx, date: ShanghaiCalendar.Date(iso: date)!, paymentsPage: paymentsPage) }
    }
}

@Suite struct ReconciliationTests {
    func nights() throws -> BillingWorld {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        world.clock.advance(micros: ShanghaiCalendar.dayMicros)
        _ = try world.run("2026-11-28")
        return world
    }

    @Test func aCleanDayHasNoBreaks() throws {
        let world = try nights()
        for date in ["2026-11-27", "2026-11-28"] {
            let report = try world.reconcile(date)
            #expect(report.breaks.isEmpty, "\(report.breaks)")
            #expect(report.ledgerOk)
            for biller in report.billers {
                #expect(biller.paidNetFen == biller.ledgerMovementFen)
                #expect(biller.reportPaidFen.map { $0 - (biller.reportRefundedFen ?? 0) } == biller.ledgerMovementFen)
            }
        }
        let water = try #require(try world.reconcile("2026-11-27").billers.first { $0.biller == "QD-WATER" })
        #expect(water.feedBills == 5 && water.feedCtrlSumFen == 19_230 && water.ingested.count == 5)
        #expect(water.paidAuto == .init(2, 9_950) && water.unmatched == .init(1, 2_175) && water.rejectedRecords == 1)
        // W2611-000002 was cancelled the next night; W2611-000003 still waits for verification.
        #expect(water.pendingByReason == ["KYC_REQUIRED": .init(1, 2_610)])
    }

    @Test func aMissingLedgerPostingIsABreak() throws {
        let world = try nights()
        try world.execute("UPDATE bills SET transaction_id = 99999 WHERE bill_id = 'P2611-100001'")
        let report = try world.reconcile("2026-11-27")
        #expect(report.breaks.contains { $0.category == "missing_in_ledger" && $0.subject == "QD-POWER:P2611-100001" })
        #expect(report.breaks.contains { $0.category == "missing_in_report" })
    }

    /// A payment is in the bills when any bill records it: looked for first on the bill its
    /// key names, then among every bill's payments.
    @Test func aPaymentIsMissingFromTheBillsOnlyWhenNoBillRecordsIt() throws {
        let world = try nights()
        let key = try world.paymentKey("QD-POWER", "P2611-100001")
        let right = try #require(try world.store.database.read { try $0.int64("SELECT id FROM ledger_transactions WHERE idempotency_key = ?", [key]) })
        try world.execute("UPDATE bills SET transaction_id = 99999 WHERE bill_id = 'P2611-100001'")
        var report = try world.reconcile("2026-11-27")
        #expect(report.breaks.filter { $0.category == "missing_in_report" }.map(\.subject) == ["transaction \(right)"])
        // The day's payments are read a page at a time: the same answer whatever the page.
        for page in [1, 2, 3] {
            let paged = try world.reconcile("2026-11-27", paymentsPage: page)
            #expect(paged.breaks.filter { $0.category == "missing_in_report" }.map(\.subject) == ["transaction \(right)"], "page \(page)")
        }
        // Another bill records it: not missing from the bills (that bill's own breaks aside).
        try world.execute("UPDATE bills SET transaction_id = ? WHERE bill_id = 'W2611-000005'", [right])
        report = try world.reconcile("2026-11-27")
        #expect(!report.breaks.contains { $0.category == "missing_in_report" }, "\(report.breaks)")
        #expect(report.breaks.contains { $0.category == "missing_in_ledger" && $0.subject == "QD-POWER:P2611-100001" })
    }

    /// The month of paid bills is read a page at a time: every bill paid after the first day
    /// through the last, each once, whatever the page.
    @Test func paidBillsAreReadInPagesEachOnce() throws {
        let world = try nights()
        func pages(_ size: Int) throws -> [[String]] {
            var pages: [[String]] = []
            try world.store.database.read { db in
                try BillStore(db).forEachPaidBillPage(after: ShanghaiCalendar.Date(iso: "2026-11-26")!, through: ShanghaiCalendar.Date(iso: "2026-11-28")!, page: size) {
                    pages.append($0.map(\.key.reference))
                }
            }
            return pages
        }
        let expected = try world.store.database.read {
            try $0.texts("SELECT biller || ':' || bill_id FROM bills WHERE paid_business_date IN ('2026-11-27', '2026-11-28') AND status IN ('paid', 'refunded')")
        }
        #expect(expected.count >= 4)
        let whole = try pages(5_000).flatMap { $0 }
        #expect(whole.sorted() == expected.sorted())
        let single = try pages(1)
        #expect(single.allSatisfy { $0.count == 1 })
        #expect(single.flatMap { $0 } == whole)
        // The first day is outside the window.
        var later: [String] = []
        try world.store.database.read { db in
            try BillStore(db).forEachPaidBillPage(after: ShanghaiCalendar.Date(iso: "2026-11-27")!, through: ShanghaiCalendar.Date(iso: "2026-11-28")!, page: 2) { later += $0.map(\.key.reference) }
        }
        let paidOn28 = try world.store.database.read {
            try $0.texts("SELECT biller || ':' || bill_id FROM bills WHERE paid_business_date = '2026-11-28' AND status IN ('paid', 'refunded')")
        }
        #expect(!paidOn28.isEmpty && paidOn28.count < expected.count)
        #expect(later.sorted() == paidOn28.sorted())
    }

    @Test func anAlteredReportIsABreak() throws {
        let world = try nights()
        let path = world.config.reportsDirectory + "/QD-GAS/QDW-QD-GAS-20261127.xml"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: "<PaidCount>1</PaidCount>", with: "<PaidCount>2</PaidCount>").write(toFile: path, atomically: false, encoding: .utf8)
        let report = try world.reconcile("2026-11-27")
        #expect(report.breaks.map(\.category) == ["report_altered"])
        #expect(report.breaks[0].subject == "QD-GAS 2026-11-27")
    }

    /// A payment is one bill's: a second bill naming a transaction another bill names is
    /// refused by the database (`billing-v12-one-bill-a-payment`), and nothing is changed.
    @Test func aPaymentClaimedByASecondBillIsRefused() throws {
        let world = try nights()
        let transaction = try #require(try world.store.database.read { try $0.int64("SELECT transaction_id FROM bills WHERE bill_id = 'W2611-000001'") })
        let before = try world.rows("SELECT status, transaction_id, paid_fen FROM bills WHERE bill_id = 'W2611-000002'").map(\.values)
        do {
            try world.execute("UPDATE bills SET status = 'paid', transaction_id = ?, paid_fen = due_fen, paid_business_date = '2026-11-27', paid_via = 'autopay' WHERE bill_id = 'W2611-000002'", [transaction])
            Issue.record("a second bill took a payment another bill records")
        } catch let error as SQLError {
            #expect(error.kind == .constraint, "\(error)")
        }
        #expect(try world.rows("SELECT status, transaction_id, paid_fen FROM bills WHERE bill_id = 'W2611-000002'").map(\.values) == before)
        #expect(try world.count("SELECT count(*) FROM bills WHERE transaction_id = ?", [transaction]) == 1)
        #expect(try world.reconcile("2026-11-27").breaks.isEmpty)
    }

    /// A database where two bills already name one payment (written before the unique index)
    /// is not upgraded: the step is refused with its cause, and nothing is changed.
    @Test func anUpgradeOverAPaymentClaimedTwiceIsRefusedAndChangesNothing() throws {
        let world = try nights()
        let transaction = try #require(try world.store.database.read { try $0.int64("SELECT transaction_id FROM bills WHERE bill_id = 'W2611-000001'") })
        try world.execute("DROP INDEX bills_by_transaction")
        try world.execute(world.onPostgres ? "DELETE FROM qdwallet_migrations WHERE name = 'billing-v12-one-bill-a-payment'"
                                           : "DELETE FROM grdb_migrations WHERE identifier = 'billing-v12-one-bill-a-payment'")
        try world.execute("UPDATE bills SET transaction_id = ? WHERE bill_id = 'W2611-000002'", [transaction])
        do {
            if let postgres = world.postgres {
                try postgres.migrate(try QDWalletSchema.postgresMigrations())
            } else {
                _ = try world.anotherStore()
            }
            Issue.record("a database with a payment claimed twice was upgraded")
        } catch let error as LedgerError {
            #expect(!world.onPostgres)
            #expect(error.message.contains("could not be upgraded"), "\(error)")
            #expect(error.cause?.contains("UNIQUE") == true, "\(error)")
        } catch let error as SQLError {
            #expect(world.onPostgres)
            #expect(error.kind == .constraint, "\(error)")
        }
        #expect(try world.count("SELECT count(*) FROM bills WHERE transaction_id = ?", [transaction]) == 2)
        let index = world.onPostgres ? "SELECT count(*) FROM pg_indexes WHERE indexname = 'bills_by_transaction' AND schemaname = current_schema()"
                                     : "SELECT count(*) FROM sqlite_master WHERE name = 'bills_by_transaction'"
        #expect(try world.count(index) == 0)
        let recorded = world.onPostgres ? "SELECT count(*) FROM qdwallet_migrations WHERE name = 'billing-v12-one-bill-a-payment'"
                                        : "SELECT count(*) FROM grdb_migrations WHERE identifier = 'billing-v12-one-bill-a-payment'"
        #expect(try world.count(recorded) == 0)
    }

    /// Which bill records a payment is one read of the bills' index of their payments.
    @Test func aPaymentsBillIsFoundThroughTheIndexOfPayments() throws {
        let world = try nights()
        let plan = try world.plan(BillStore.recordedPaymentsSQL(marks: "?,?"), [Int64(1), Int64(2)])
        #expect(plan.contains { $0.contains("bills_by_transaction") }, "\(plan)")
        #expect(!plan.contains { $0.contains("SCAN bills") || $0.contains("Seq Scan") }, "\(plan)")
    }

    @Test func breaksCarryForwardAndAgeUntilResolved() throws {
        let world = try nights()
        try world.execute("UPDATE bills SET transaction_id = 99999 WHERE bill_id = 'P2611-100001'")
        #expect(try world.reconcile("2026-11-27").breaks.allSatisfy { $0.ageDays == 0 })
        let later = try world.reconcile("2026-11-29")
        let missing = try #require(later.breaks.first { $0.category == "missing_in_ledger" })
        #expect(missing.firstSeen == "2026-11-27" && missing.ageDays == 2)
        // Unmatched bills become breaks after three days.
        #expect(later.breaks.contains { $0.category.hasPrefix("unmatched_over") } == false)
        #expect(try world.reconcile("2026-11-30").breaks.contains { $0.category == "unmatched_over_3_days" && $0.subject == "QD-WATER:W2611-000005" })
        // Fixed: the break is resolved and no longer listed.
        let key = try world.paymentKey("QD-POWER", "P2611-100001")
        let right = try world.store.database.read { try $0.int64("SELECT id FROM ledger_transactions WHERE idempotency_key = ?", [key]) }
        try world.execute("UPDATE bills SET transaction_id = ? WHERE bill_id = 'P2611-100001'", [right])
        #expect(try world.reconcile("2026-12-01").breaks.contains { $0.category == "missing_in_ledger" } == false)
        #expect(try world.count("SELECT count(*) FROM recon_breaks WHERE category = 'missing_in_ledger' AND resolved = '2026-12-01'") == 1)
    }

    @Test func theHTMLPageIsSelfContainedAndParses() throws {
        let world = try nights()
        let html = try world.reconcile("2026-11-27").html
        #expect(!html.lowercased().contains("<script"))
        #expect(!html.contains("http://") || html.components(separatedBy: "http://").dropFirst().allSatisfy { $0.hasPrefix("www.w3.org/2000/svg") })
        #expect(html.contains("<svg") && html.contains("<polyline"))
        let body = html.replacingOccurrences(of: "<!DOCTYPE html>\n", with: "")
        let parser = XMLParser(data: Data(body.utf8))
        #expect(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
    }

    @Test func csvAndJSONCarryTheSameNumbers() throws {
        let world = try nights()
        let report = try world.reconcile("2026-11-27")
        #expect(report.csv.contains("biller,2026-11-27,QD-WATER,paid_auto,2,9950,"))
        let json = try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any]
        #expect((json?["breaks"] as? [Any])?.isEmpty == true)
        let billers = try #require(json?["billers"] as? [[String: Any]])
        #expect(billers.count == 3)
        // Every biller's numbers in the CSV are the JSON's, to the fen.
        for biller in billers {
            let code = try #require(biller["biller"] as? String)
            for (metric, key) in [("paid_auto", "paid_auto"), ("paid_manual", "paid_manual"), ("ingested", "ingested"), ("unmatched", "unmatched"), ("refunded", "refunded")] {
                let count = try #require(biller[key] as? [String: Any])
                let line = "biller,2026-11-27,\(code),\(metric),\(count["count"] as? Int ?? -1),\(count["fen"] as? Int ?? -1),"
                #expect(report.csv.contains(line), "\(line) is not in the CSV")
            }
        }
    }
}
