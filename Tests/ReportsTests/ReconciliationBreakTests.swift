import Foundation
import GRDB
import QDTestEngines
import QDTestSupport
import Testing
@testable import Billing
@testable import JobRunner
@testable import Ledger
@testable import Reports
import Wallet

/// A refused or missing feed is a break, and the biller is told its feed was refused, and why.
@Suite struct RefusedFeedTests {
    @Test func aRefusedFeedIsABreakAndTheBillerGetsARejectionStatus() throws {
        let world = try BillingWorld()
        try world.populate()
        let report = try world.run("2026-11-27", feeds: ["QD-WATER": "file://\(sampleFeeds)/bad/wrong-totals.xml"])
        #expect(report.assessment == .breaks)
        // ISO 20022 style group status beside the (empty) payment report, locally and delivered.
        let local = world.config.reportsDirectory + "/QD-WATER/QDW-QD-WATER-20261127-status.xml"
        let delivered = world.config.reportsDirectory + "/outbound/QD-WATER/QDW-QD-WATER-20261127-status.xml"
        for path in [local, delivered] {
            let status = try String(contentsOfFile: path, encoding: .utf8)
            #expect(status.contains("<GrpSts>RJCT</GrpSts>"))
            #expect(status.contains("<Rsn>CONTROL_TOTALS</Rsn>"))
            #expect(status.contains("<BillerCode>QD-WATER</BillerCode>") && status.contains("<BusinessDate>2026-11-27</BusinessDate>"))
            #expect(!status.contains(world.directory.path))
        }
        // The other billers' feeds were fine: no status file for them.
        #expect(!FileManager.default.fileExists(atPath: world.config.reportsDirectory + "/QD-GAS/QDW-QD-GAS-20261127-status.xml"))
        // The day's reconciliation has the break.
        let reconciliation = try world.store.transaction { db, ledger in try Reconciliation.run(db, ledger: ledger, date: ShanghaiCalendar.Date(year: 2026, month: 11, day: 27)) }
        let categories = reconciliation.breaks.map { "\($0.category) \($0.subject)" }
        #expect(categories.contains("feed_rejected QD-WATER 2026-11-27"), "\(categories)")
        #expect(!categories.contains { $0.hasPrefix("feed_rejected QD-GAS") || $0.hasPrefix("missing_feed QD-GAS") })
    }

    @Test func aDayWithoutTheBillersFeedIsABreak() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        // The 26th never ran: every biller's feed of that day is missing.
        let reconciliation = try world.store.transaction { db, ledger in try Reconciliation.run(db, ledger: ledger, date: ShanghaiCalendar.Date(year: 2026, month: 11, day: 26)) }
        let missing = reconciliation.breaks.filter { $0.category == "missing_feed" }.map(\.subject).sorted()
        #expect(missing == ["QD-GAS 2026-11-26", "QD-POWER 2026-11-26", "QD-WATER 2026-11-26"])
    }
}

/// The hash chain has an external anchor: each payment report and reconciliation carries the
/// chain head, and `ledger check --expect-head` proves a later database still holds it.
@Suite struct LedgerAnchorTests {
    /// SQLite: the backup is a copy of the file (on PostgreSQL, a dump restored elsewhere).
    @Test(.enabled(if: !TestEngine.onPostgres)) func aLostTailIsFoundAgainstTheAnchorOfADeliveredReport() throws {
        let world = try BillingWorld()
        try world.populate()
        // A copy of the database before the night: what a restore of an old backup gives.
        try (world.store as? SQLiteLedgerStore)?.pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        let backup = world.directory.appendingPathComponent("backup.sqlite").path
        try FileManager.default.copyItem(atPath: world.path, toPath: backup)
        _ = try world.run("2026-11-27")
        let xml = try world.reportFile("QD-WATER", "20261127")
        let start = try #require(xml.range(of: "<LedgerHead>"))
        let end = try #require(xml.range(of: "</LedgerHead>"))
        let anchor = String(xml[start.upperBound..<end.lowerBound])
        #expect(ChainHead.parse(anchor: anchor) != nil)
        // The live ledger holds the anchor.
        #expect(try world.ledger.check(expectingHead: anchor).ok)
        let reconciliation = try world.store.transaction { db, ledger in try Reconciliation.run(db, ledger: ledger, date: ShanghaiCalendar.Date(year: 2026, month: 11, day: 27)) }
        #expect(try world.ledger.check(expectingHead: reconciliation.ledgerHead).ok)
        // The restored backup passes its own check, but not against the anchor.
        let restored = Ledger(store: SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: backup, migrator: BillingWorld.migrator())))
        #expect(try restored.check().ok)
        let proof = try restored.check(expectingHead: anchor)
        #expect(!proof.ok)
        #expect(proof.violations.map(\.code) == ["expected_head_missing"])
        // An anchor whose hash was rewritten is told apart from a missing one.
        let parsed = try #require(ChainHead.parse(anchor: anchor))
        let forged = "\(parsed.id):" + String(repeating: "0", count: 64)
        #expect(try world.ledger.check(expectingHead: forged).violations.map(\.code) == ["expected_head_differs"])
        #expect(throws: LedgerError.self) { try world.ledger.check(expectingHead: "12:nothex") }
    }
}
