import Foundation
import Ledger
import Logging
import QDSQL
import QDTestSupport
import Testing
@testable import JobRunner
@testable import Reports

@Suite struct ReconciliationJobTests {
    /// The `reconciliation` job reads on a snapshot that holds no lock: a payment another
    /// process posts meanwhile commits at once (on SQLite, with a busy timeout of half a
    /// second, it would fail if the reads held the writer), the day's figures and the ledger
    /// check are those of the snapshot (three nights' transactions, not the one posted
    /// meanwhile), and the chunk records the breaks and writes the files.
    @Test func aReconciliationReadsWhilePaymentsGoOn() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let before = try world.ledger.check().transactions
        let bank = try world.ledger.account(code: SystemAccounts.bankClearing).id
        let suspense = try world.ledger.account(code: SystemAccounts.suspense).id
        let (path, postgres, clock) = (world.path, world.postgres, world.clock)
        let step = HookedStep(inner: ReconciliationJob.implementation(directory: world.directory.appendingPathComponent("recon").path).steps[0]) {
            try onAnotherThread {
                let other = if let postgres {
                    SQLLedgerStore(database: try PostgresDatabase(url: postgres.url, options: postgres.options))
                } else {
                    SQLiteLedgerStore(pool: try SQLiteDatabase.open(path: path, migrator: BillingWorld.migrator(), busyTimeoutSeconds: 0.5))
                }
                _ = try Ledger(store: other, clock: clock).post(.transfer(key: "meanwhile", from: bank, to: suspense, amount: 1))
            }
        }
        let definition = try #require(try JobDefinition.loadAll(directory: repositoryRoot + "/Jobs").first { $0.name == "reconciliation" })
        let runner = JobRunner(
            store: world.store, clock: world.clock, logger: Logger(label: "test"), definitions: [definition],
            implementations: [JobImplementation(name: "reconciliation", steps: [step])],
            progress: ProgressReporter(logger: Logger(label: "test"), terminal: false), owner: "test-1", sleepMillis: { _ in })
        let report = try runner.run("reconciliation", overrides: ["date": "2026-11-27"])
        #expect(report.status == "completed")
        let json = try String(contentsOfFile: world.directory.appendingPathComponent("recon/reconciliation-20261127.json").path, encoding: .utf8)
        let recorded = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(recorded["ledger_ok"] as? Bool == true)
        #expect((recorded["ledger_head"] as? String)?.hasPrefix("\(before):") == true, "\(recorded["ledger_head"] ?? "none")")
        #expect(try world.ledger.check().transactions == before + 1)
        // The breaks the reads found are recorded: the same as a reconciliation run now.
        let open = try world.store.database.read { try $0.int("SELECT count(*) FROM recon_breaks WHERE resolved IS NULL") }
        let breaks = try #require(recorded["breaks"] as? [[String: Any]])
        #expect(open == breaks.count)
        #expect(breaks.compactMap { $0["category"] as? String }.sorted() == (try world.reconcile("2026-11-27")).breaks.map(\.category).sorted())
    }

    /// The reconciliation's reads before the ledger's check (each biller's day, the 30 days of
    /// paid bills a page at a time, the day's payments a page at a time) look at the stop
    /// request as they go: asked at once, they end before a page is read, with the check's own
    /// refusal to say anything (`CheckStopped`); never asked, they read every page.
    @Test func aStopRequestEndsTheReconciliationsReadsBeforeTheirPages() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let date = try #require(ShanghaiCalendar.Date(iso: "2026-11-27"))
        let stopped = #expect(throws: CheckStopped.self) {
            try world.store.snapshot { db, ledger in try Reconciliation.read(db, ledger: ledger, date: date, stopWhen: { true }) }
        }
        #expect(stopped?.rowsRead == 0)
        var looks = 0
        let reading = try world.store.snapshot { db, ledger in
            try Reconciliation.read(db, ledger: ledger, date: date, paymentsPage: 1, stopWhen: {
                looks += 1
                return false
            })
        }
        #expect(reading.figures.ledgerOk)
        // One look before the reads, one a biller, one a page of paid bills or payments (a
        // payment a page here), and the check's.
        #expect(looks > 2 + reading.figures.billers.count)
    }
}
