import Foundation
import QDSQL
import QDTestSupport
import Testing
@testable import Billing
import Ledger

/// On a server, where writers do not take turns, a bill's status is decided by one
/// transaction at a time: pay-bill locks the bill's row (after the wallet), and so does the
/// night's cancel step. (With one writer at a time, SQLite, there is nothing to wait for.)
@Suite(.enabled(if: ProcessInfo.processInfo.environment["QDWALLET_TEST_ENGINE"] == "postgres"), .serialized)
struct BillLockTests {
    /// A payable bill of a resident after the first sample night: its row, reference and phone.
    func payableBill(_ world: BillingWorld) throws -> (rowID: Int64, reference: String, phone: String) {
        let row = try world.store.database.read { db in
            try db.one("""
                SELECT b.id, b.biller, b.bill_id, w.phone FROM bills b JOIN wallets w ON w.id = b.wallet_id
                WHERE b.status = 'payable' ORDER BY b.id LIMIT 1
                """) { (try $0.int64(0), "\(try $0.text(1)):\(try $0.text(2))", try $0.text(3)) }
        }
        return try #require(row, "the first sample night leaves no payable bill of a resident")
    }

    /// Holds the bill's row in a transaction of its own until `release` is signalled (and,
    /// with `cancelling`, cancels the bill in it, as the night's cancel would).
    func holdBill(_ world: BillingWorld, rowID: Int64, release: DispatchSemaphore, cancelling: Bool = false) throws -> OnThread<Bool> {
        let held = DispatchSemaphore(value: 0)
        let store = world.store, now = world.clock.nowMicros()
        let holder = OnThread { () -> Bool in
            try store.transaction { db, _ in
                try BillStore(db).lock(rowIDs: [rowID])
                if cancelling { try BillStore(db).markCancelled(rowID: rowID, on: ShanghaiCalendar.date(at: now), at: now) }
                held.signal()
                return release.wait(timeout: .now() + 20) == .success
            }
        }
        #expect(held.wait(timeout: .now() + 10) == .success)
        return holder
    }

    @Test func payBillWaitsForAnotherTransactionOnTheBillAndSeesItsOutcome() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let bill = try payableBill(world)
        let release = DispatchSemaphore(value: 0)
        // The bill is being cancelled by another transaction, not committed yet.
        let holder = try holdBill(world, rowID: bill.rowID, release: release, cancelling: true)
        let answered = DispatchSemaphore(value: 0)
        let billing = world.billing
        let payer = OnThread { () -> String in
            defer { answered.signal() }
            do {
                _ = try billing.payBill(phone: bill.phone, reference: bill.reference, password: "123456")
                return "paid"
            } catch let refusal as BillingRefusal {
                return refusal.rawValue
            }
        }
        #expect(answered.wait(timeout: .now() + 1.5) == .timedOut, "pay-bill did not wait for the transaction holding its bill")
        release.signal()
        #expect(try holder.value())
        // It read the bill again under the lock: cancelled, so nothing is paid. (Reading it
        // before the lock would have paid a bill cancelled meanwhile.)
        #expect(try payer.value() == "bill_not_payable")
        #expect(try world.count("SELECT count(*) FROM bills WHERE id = ? AND status = 'cancelled'", [bill.rowID]) == 1)
        #expect(try world.count("SELECT count(*) FROM ledger_transactions WHERE idempotency_key LIKE ?", ["bill:%" + bill.reference]) == 0)
        #expect(try world.ledger.check().ok)
    }

    /// The cancel step takes the bill's row before it decides (a pay-bill holding it is
    /// waited for), and the night still ends.
    @Test func theNightsCancelWaitsForAnotherTransactionOnTheBill() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        // The second sample night cancels W2611-000002, still open after the first.
        let rowID = try #require(try world.store.database.read { db in
            try db.one("SELECT id FROM bills WHERE biller = 'QD-WATER' AND bill_id = 'W2611-000002'") { try $0.int64(0) }
        })
        let release = DispatchSemaphore(value: 0)
        let holder = try holdBill(world, rowID: rowID, release: release)
        world.clock.advance(micros: ShanghaiCalendar.dayMicros)
        let ran = DispatchSemaphore(value: 0)
        let runner = try world.runner()
        let night = OnThread { () -> String in
            defer { ran.signal() }
            return try runner.run("nightly-billing", overrides: ["date": "2026-11-28"]).status
        }
        #expect(ran.wait(timeout: .now() + 3) == .timedOut, "the night's cancel did not wait for the transaction holding its bill")
        release.signal()
        #expect(try holder.value())
        #expect(try night.value() == "completed")
        #expect(try world.status("QD-WATER", "W2611-000002") == "cancelled")
        #expect(try world.ledger.check().ok)
    }

    /// The process step reads a chunk, locks its wallets, then asks what changed since the
    /// read instead of reading the chunk again: a bill paid meanwhile is dropped; a link
    /// unlinked, changed, or made for a bill read without one sends it back to a whole read.
    @Test func aChunkReadBeforeItsLocksSeesWhatChangedMeanwhile() throws {
        let world = try BillingWorld()
        try world.populate()
        let ingest = try world.runner(steps: [IngestStep(config: world.config)]).run("nightly-billing", overrides: ["date": "2026-11-27"])
        #expect(ingest.status == "completed")
        let day = try #require(ShanghaiCalendar.Date(iso: "2026-11-27"))
        // The ingest wrote the bills no wallet links unmatched: every new bill has a link. One
        // link undone after the ingest leaves its bill to be read new without one.
        let staged = try world.store.database.read { db in try BillStore(db).newBills(of: day, after: 0, limit: 1_000) }
        #expect(!staged.isEmpty && staged.allSatisfy { $0.link != nil })
        let undone = try #require(staged.last?.link)
        try world.execute("UPDATE bill_accounts SET status = 'unlinked' WHERE id = ?", [undone.id])
        let chunk = try world.store.database.read { db in try BillStore(db).newBills(of: day, after: 0, limit: 1_000) }
        let changed = { try world.store.database.read { db in try BillStore(db).changedSince(chunk) } }
        let linked = try #require(chunk.first { $0.link != nil })
        let unlinked = try #require(chunk.first { $0.link == nil })
        #expect(chunk.count > 2)

        var now = try changed()
        #expect(now.gone.isEmpty)
        #expect(!now.linksChanged)

        // Paid by hand meanwhile: no longer new, dropped; the links are as read.
        try world.execute("UPDATE bills SET status = 'paid' WHERE id = ?", [linked.rowID])
        now = try changed()
        #expect(now.gone == [linked.rowID])
        #expect(!now.linksChanged)

        // A link's per-bill limit changed meanwhile.
        let link = try #require(linked.link)
        try world.execute("UPDATE bill_accounts SET autopay_limit_fen = autopay_limit_fen + 1 WHERE id = ?", [link.id])
        #expect(try changed().linksChanged)
        try world.execute("UPDATE bill_accounts SET autopay_limit_fen = autopay_limit_fen - 1 WHERE id = ?", [link.id])
        #expect(try !changed().linksChanged)

        // Unlinked meanwhile.
        try world.execute("UPDATE bill_accounts SET status = 'unlinked' WHERE id = ?", [link.id])
        #expect(try changed().linksChanged)
        try world.execute("UPDATE bill_accounts SET status = 'linked' WHERE id = ?", [link.id])
        #expect(try !changed().linksChanged)

        // A bill read without a link has one now.
        let customer = try #require(try world.text("SELECT customer_no FROM bills WHERE id = ?", [unlinked.rowID]))
        _ = try world.billing.link(phone: BillingWorld.residents[1].phone, biller: unlinked.biller, customerNo: customer, autopay: false, autopayLimitFen: nil)
        #expect(try changed().linksChanged)
    }
}
