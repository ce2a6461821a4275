import Foundation
import GRDB
import QDTestSupport
import Testing
@testable import Billing
@testable import JobRunner
@testable import Ledger
@testable import Wallet
import QDSQL

@Suite struct NightlyBillingTests {
    @Test func theFirstNightPaysNotifiesAndReports() throws {
        let world = try BillingWorld()
        try world.populate()
        let report = try world.run("2026-11-27")
        #expect(report.status == "completed")
        #expect(report.assessment == .clean)
        #expect(try world.status("QD-WATER", "W2611-000001") == "paid")
        #expect(try world.status("QD-WATER", "W2611-000002") == "payable OVER_AUTOPAY_LIMIT")
        #expect(try world.status("QD-WATER", "W2611-000003") == "payable KYC_REQUIRED")
        #expect(try world.status("QD-WATER", "W2611-000004") == "paid")
        #expect(try world.status("QD-WATER", "W2611-000005") == "unmatched UNKNOWN_CUSTOMER")
        #expect(try world.status("QD-POWER", "P2611-100001") == "paid")
        #expect(try world.status("QD-POWER", "P2611-100002") == "payable INSUFFICIENT_FUNDS")
        #expect(try world.status("QD-GAS", "G2611-55001") == "payable AUTOPAY_OFF")
        #expect(try world.status("QD-GAS", "G2611-55002") == "payable ACCOUNT_FROZEN")
        #expect(try world.status("QD-GAS", "G2611-55003") == "paid")
        // Money moved exactly: Amount + LateFee from the wallet to the biller.
        #expect(try world.balance("13800000001") == 100_000 - 4_520 - 12_860)
        #expect(try world.balance("13800000006") == 50_000 - 5_430 - 7_230)
        #expect(try world.balance("13800000003") == 500)
        // The GBK feed's Chinese text arrived intact.
        #expect(try world.bill("QD-GAS", "G2611-55003")?["district"] as String? == "黄岛区")

        let summary = try world.summary(report)
        let water = try #require(summary.billers.first { $0.biller == "QD-WATER" })
        #expect(water.status == "processed" && water.feedId == "QD-WATER-20261127-01")
        #expect(water.bills == 5 && water.paid == 2 && water.paidFen == 9_950 && water.pending == 2 && water.unmatched == 1 && water.rejectedRecords == 1)
        #expect(water.pendingByReason == ["OVER_AUTOPAY_LIMIT": 1, "KYC_REQUIRED": 1])

        // Each report's PaidSum - RefundedSum is the ledger's movement for the day.
        for biller in ["QD-WATER", "QD-POWER", "QD-GAS"] {
            let row = try #require(try world.rows("SELECT * FROM payment_reports WHERE biller = ? AND business_date = '2026-11-27'", [biller]).first)
            #expect(try (row["paid_sum_fen"] as Int64) - (row["refunded_sum_fen"] as Int64) == (try world.ledgerMovement(biller, "2026-11-27")))
            #expect(try row["delivered_at"] as Int64? != nil)
        }
        let xml = try world.reportFile("QD-WATER", "20261127")
        #expect(xml.contains("<PaidSum Ccy=\"CNY\">99.50</PaidSum>"))
        #expect(xml.contains("<BillId>W2611-000002</BillId>\n    <Status>PENDING</Status>\n    <Reason>OVER_AUTOPAY_LIMIT</Reason>"))
        #expect(xml.contains("<BillId>W2611-000005</BillId>\n    <Status>UNMATCHED</Status>"))
        #expect(xml.contains("<BillId>W2610-000777</BillId>\n    <Status>REJECTED</Status>\n    <Reason>UNKNOWN_BILL</Reason>"))
        #expect(FileManager.default.fileExists(atPath: world.directory.appendingPathComponent("reports/outbound/QD-WATER/QDW-QD-WATER-20261127.xml").path))
        // Notices for the pending bills; receipts for the paid ones; no phone in clear.
        #expect(try world.count("SELECT count(*) FROM outbox WHERE kind = 'bill_notice'") == 5)
        #expect(try world.count("SELECT count(*) FROM outbox WHERE kind = 'autopay_receipt'") == 4)
        #expect(try world.count("SELECT count(*) FROM outbox WHERE payload LIKE '%13800000001%'") == 0)
        // Each message is named by its bill's row (twelve digits), then the bill: the ids' text
        // order is the order they were queued in, kind by kind.
        var rowOf: [String: Int64] = [:]
        for bill in try world.rows("SELECT id, biller, bill_id FROM bills") {
            rowOf["\(try bill["biller"] as String):\(try bill["bill_id"] as String)"] = try bill["id"] as Int64
        }
        // The notices of the bills their link decides (autopay off, a lower limit) were queued
        // by the ingest, the others by the processing: in row order each.
        for (kind, prefix) in [("bill_notice", "notice"), ("autopay_receipt", "autopay")] {
            let messages = try world.rows("SELECT message_id, payload FROM outbox WHERE kind = ? ORDER BY id", [kind])
            #expect(messages.count >= 4)
            var queued: [(id: String, atIngest: Bool)] = []
            for message in messages {
                let payload = try #require(try JSONSerialization.jsonObject(with: Data((try message["payload"] as String).utf8)) as? [String: Any])
                let reference = "\(try #require(payload["biller"] as? String)):\(try #require(payload["bill_id"] as? String))"
                let row = try #require(rowOf[reference])
                let id: String = try message["message_id"]
                #expect(id == prefix + ":" + String(repeating: "0", count: 12 - String(row).count) + String(row) + ":" + reference)
                queued.append((id, ["AUTOPAY_OFF", "OVER_AUTOPAY_LIMIT"].contains(payload["reason"] as? String ?? "")))
            }
            let atIngest = queued.filter(\.atIngest).map(\.id), later = queued.filter { !$0.atIngest }.map(\.id)
            #expect(atIngest.count == (kind == "bill_notice" ? 2 : 0))
            #expect(queued.map(\.id) == atIngest + later)
            #expect(atIngest == atIngest.sorted() && later == later.sorted())
        }
        // Each payment's ledger key is its bill's row (twelve digits), then the bill, read back
        // as the bill; the keys' text order is the order the night paid in.
        let payments = try world.rows("SELECT b.id, b.biller, b.bill_id, t.idempotency_key FROM bills b JOIN ledger_transactions t ON t.id = b.transaction_id ORDER BY t.id")
        #expect(payments.count == 4)
        for payment in payments {
            let (row, biller, billID, key): (Int64, String, String, String) = (try payment["id"], try payment["biller"], try payment["bill_id"], try payment["idempotency_key"])
            #expect(key == "bill:#" + String(repeating: "0", count: 12 - String(row).count) + String(row) + ":" + biller + ":" + billID)
            #expect(PaymentKey(key: key) == PaymentKey(biller: biller, billID: billID))
        }
        let keys = try payments.map { try $0["idempotency_key"] as String }
        #expect(keys == keys.sorted())
        #expect(try world.ledger.check().ok)
    }

    /// A bill payment's key is read in both its forms, led by the bill's row and the earlier
    /// `bill:BILLER:BILLID` (payments made before), and nothing else is taken for one.
    /// The processing's progress total counts the staged bills through the index of the new
    /// bills (`bills_new`), not by reading every bill kept: a night's cost that would grow
    /// with the months kept. The plan is asked of the engine, sequential scans priced out on
    /// PostgreSQL (a few test bills would otherwise be read whole).
    @Test func theNewBillsAreCountedThroughTheirIndex() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let plan = try world.plan(BillStore.countNewSQL)
        #expect(plan.contains { $0.contains("bills_new") }, "\(plan)")
        #expect(!plan.contains { $0.contains("SCAN bills") && !$0.contains("bills_new") || $0.contains("Seq Scan") }, "\(plan)")
        // What it counts: the bills still new, none after the night, every one staged again.
        #expect(try world.store.database.write { try BillStore($0).countNew() } == 0)
        try world.execute("UPDATE bills SET status = 'new' WHERE status = 'payable'")
        let payable = try world.count("SELECT count(*) FROM bills WHERE status = 'new'")
        #expect(payable >= 1)
        #expect(try world.store.database.write { try BillStore($0).countNew() } == payable)
    }

    @Test func paymentKeysAreReadInBothForms() {
        let key = PaymentKey(biller: "QD-GAS", billID: "G:1")
        #expect(key.key(row: 42) == "bill:#000000000042:QD-GAS:G:1")
        #expect(PaymentKey(key: "bill:#000000000042:QD-GAS:G:1") == key)
        #expect(PaymentKey(key: "bill:QD-GAS:G:1") == key)
        #expect(key.key(row: 1_234_567_890_123) == "bill:#1234567890123:QD-GAS:G:1")
        #expect(PaymentKey(key: "bill:#1234567890123:QD-GAS:G:1") == key)
        // Twelve digits at least, every row: the key's text order is the rows' order.
        #expect(key.key(row: 1) == "bill:#000000000001:QD-GAS:G:1")
        #expect(key.key(row: 999_999_999_999) == "bill:#999999999999:QD-GAS:G:1")
        #expect(key.key(row: Int64.max) == "bill:#9223372036854775807:QD-GAS:G:1")
        #expect(PaymentKey(biller: "QD-WATER", billID: "水费-7").key(row: 10) == "bill:#000000000010:QD-WATER:水费-7")
        #expect(PaymentKey.paddedRow(0) == "000000000000")
        #expect(BillCandidate.messageID("notice", rowID: 305, key: key) == "notice:000000000305:QD-GAS:G:1")
        for bad in ["bill:#42:QD-GAS:G1", "bill:#00000000004x:QD-GAS:G1", "bill:#000000000042QD-GAS:G1", "bill:#000000000042:",
                    "bill:#000000000042:QD-GAS", "bill:#", "bill:", "refund:QD-GAS:G1", "bill:#٠٠٠٠٠٠٠٠٠٠٤٢:QD-GAS:G1"] {
            #expect(PaymentKey(key: bad) == nil, "\(bad)")
        }
    }

    /// A payment the ledger refuses for a reason other than money or a freeze is not reported
    /// as INSUFFICIENT_FUNDS: a closed wallet account leaves the bill payable with
    /// ACCOUNT_CLOSED, in the bill, the resident's notice and the biller's report, and moves
    /// nothing.
    @Test func aClosedWalletAccountIsReportedAsClosedNotShortOfMoney() throws {
        let world = try BillingWorld()
        try world.populate()
        let wallet = try world.wallets.wallet(phone: "13800000001")
        var rules = AccountRules.noOverdraft
        rules.closed = true
        _ = try world.ledger.setRules(accountID: wallet.walletAccountID, rules: rules, reason: "closed for the test")
        let before = try world.ledgerMovement("QD-WATER", "2026-11-27")
        let report = try world.run("2026-11-27")
        #expect(report.status == "completed")
        #expect(try world.status("QD-WATER", "W2611-000001") == "payable ACCOUNT_CLOSED")
        #expect(try world.status("QD-POWER", "P2611-100002") == "payable INSUFFICIENT_FUNDS")
        #expect(try world.balance("13800000001") == 100_000)
        #expect(try world.count("SELECT count(*) FROM outbox WHERE kind = 'bill_notice' AND payload LIKE '%ACCOUNT_CLOSED%'") >= 1)
        let xml = try world.reportFile("QD-WATER", "20261127")
        #expect(xml.contains("<BillId>W2611-000001</BillId>\n    <Status>PENDING</Status>\n    <Reason>ACCOUNT_CLOSED</Reason>"))
        #expect(try world.ledgerMovement("QD-WATER", "2026-11-27") == before + 5_430)
        #expect(PendingReason(.accountClosed) == .accountClosed && PendingReason(.exceedsCredits) == .insufficientFunds && PendingReason(.accountFrozen) == .accountFrozen)
        #expect(PendingReason(.legsMustBalance).code == "PAYMENT_REFUSED")
        #expect(try world.ledger.check().ok)
    }

    /// A chunk whose payments exceed one ledger batch is posted in several batches inside
    /// the chunk's transaction, with the same outcome as one batch.
    @Test(arguments: [1, 2, 3])
    func aChunkLargerThanALedgerBatchIsPostedInPieces(batchSizeMax: Int) throws {
        let world = try BillingWorld()
        try world.populate()
        world.config.ledgerLimits.batchSizeMax = batchSizeMax
        let report = try world.run("2026-11-27")
        #expect(report.status == "completed", "\(report)")
        #expect(try world.status("QD-WATER", "W2611-000001") == "paid")
        #expect(try world.status("QD-POWER", "P2611-100001") == "paid")
        #expect(try world.status("QD-POWER", "P2611-100002") == "payable INSUFFICIENT_FUNDS")
        #expect(try world.status("QD-GAS", "G2611-55003") == "paid")
        #expect(try world.count("SELECT count(*) FROM bills WHERE status = 'paid'") == 4)
        #expect(try world.balance("13800000001") == 100_000 - 4_520 - 12_860)
        #expect(try world.balance("13800000006") == 50_000 - 5_430 - 7_230)
        #expect(try world.ledger.check().ok)
    }

    @Test func runningTheSameDayAgainChangesNothing() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let transactions = try world.count("SELECT count(*) FROM ledger_transactions")
        let balances = try BillingWorld.residents.map { try world.balance($0.phone) }
        #expect(try world.run("2026-11-27").status == "already_completed")
        let forced = try world.run("2026-11-27", force: true)
        #expect(forced.status == "completed")
        #expect(try world.summary(forced).billers.allSatisfy { $0.status == "skipped" })
        #expect(try world.count("SELECT count(*) FROM ledger_transactions") == transactions)
        #expect(try BillingWorld.residents.map { try world.balance($0.phone) } == balances)
    }

    @Test func theSecondNightCancelsRefundsAndIgnoresRepeats() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        world.clock.advance(micros: ShanghaiCalendar.dayMicros)
        let report = try world.run("2026-11-28")
        #expect(report.status == "completed")
        #expect(try world.status("QD-WATER", "W2611-000004") == "refunded")
        #expect(try world.status("QD-WATER", "W2611-000002") == "cancelled")
        #expect(try world.status("QD-WATER", "W2611-000006") == "paid")
        #expect(try world.balance("13800000006") == 50_000 - 7_230)
        #expect(try world.balance("13800000001") == 100_000 - 4_520 - 12_860 - 540)
        // G2611-55003 came again with the same content: not charged twice.
        #expect(try world.count("SELECT count(*) FROM ledger_transactions WHERE idempotency_key = ?", [try world.paymentKey("QD-GAS", "G2611-55003")]) == 1)
        #expect(try world.count("SELECT count(*) FROM feed_records WHERE outcome = 'seen_again'") == 1)
        #expect(try world.count("SELECT count(*) FROM feed_records WHERE outcome = 'duplicate_in_feed'") == 1)
        let water = try #require(try world.summary(report).billers.first { $0.biller == "QD-WATER" })
        #expect(water.cancelled == 2 && water.refunded == 1 && water.refundedFen == 5_430 && water.paid == 1)
        let xml = try world.reportFile("QD-WATER", "20261128")
        #expect(xml.contains("<RefundedCount>1</RefundedCount>\n    <RefundedSum Ccy=\"CNY\">54.30</RefundedSum>"))
        #expect(xml.contains("<BillId>W2611-000004</BillId>\n    <Status>REFUNDED</Status>"))
        #expect(xml.contains("<BillId>W2611-000002</BillId>\n    <Status>CANCELLED</Status>"))
        #expect(try world.ledgerMovement("QD-WATER", "2026-11-28") == 540 - 5_430)
        let power = try #require(try world.summary(report).billers.first { $0.biller == "QD-POWER" })
        #expect(power.status == "processed" && power.bills == 0)
        #expect(try world.ledger.check().ok)
    }

    @Test(arguments: [
        ("malformed.xml", "malformed"), ("wrong-totals.xml", "control_totals"), ("wrong-count.xml", "control_totals"),
        ("wrong-namespace.xml", "wrong_namespace"), ("wrong-biller.xml", "wrong_biller"), ("invalid-amount.xml", "invalid"),
        ("negative-amount.xml", "invalid"), ("wrong-currency.xml", "invalid"), ("external-entity.xml", "doctype"),
        ("external-entity-url.xml", "doctype"), ("entity-bomb.xml", "doctype"), ("wrong-encoding.xml", "encoding"),
        ("deep-nesting.xml", "invalid"), ("empty.xml", "malformed"), ("not-xml.xml", "malformed"),
    ])
    func aBrokenFeedIsRejectedWholeAndTheOthersGoOn(file: String, code: String) throws {
        let world = try BillingWorld()
        try world.populate()
        let report = try world.run("2026-11-27", feeds: ["QD-WATER": "file://\(sampleFeeds)/bad/\(file)"])
        #expect(report.status == "completed")
        #expect(report.assessment == .breaks)
        let water = try #require(try world.summary(report).billers.first { $0.biller == "QD-WATER" })
        #expect(water.status == "rejected")
        let recorded = try world.text("SELECT error_code FROM billing_runs WHERE biller = 'QD-WATER'")
        #expect(recorded == code, "\(water.error ?? "")")
        #expect(try world.count("SELECT count(*) FROM bills WHERE biller = 'QD-WATER'") == 0)
        #expect(try world.count("SELECT count(*) FROM feeds WHERE biller = 'QD-WATER'") == 0)
        #expect(try world.status("QD-POWER", "P2611-100001") == "paid")
        #expect(try world.ledger.check().ok)
        // Nothing of the hostile feed leaked into the database.
        #expect(try world.count("SELECT count(*) FROM feed_cancels WHERE reason LIKE '%root%'") == 0)
    }

    @Test func aFeedIdReusedWithOtherContentIsRefused() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let original = try String(contentsOfFile: sampleFeeds + "/QD-WATER/QD-WATER-20261127.xml", encoding: .utf8)
        let altered = world.directory.appendingPathComponent("altered.xml")
        // The same feed with one amount changed and its control sum still right: refused for
        // its reused FeedId only, not for its totals.
        let changed = original.replacingOccurrences(of: "<Amount Ccy=\"CNY\">45.20</Amount>", with: "<Amount Ccy=\"CNY\">45.21</Amount>")
            .replacingOccurrences(of: "<CtrlSum Ccy=\"CNY\">192.30</CtrlSum>", with: "<CtrlSum Ccy=\"CNY\">192.31</CtrlSum>")
        #expect(changed.contains("<CtrlSum Ccy=\"CNY\">192.31</CtrlSum>") && changed.contains("45.21"))
        try changed.write(to: altered, atomically: false, encoding: .utf8)
        let report = try world.run("2026-11-27", feeds: ["QD-WATER": altered.absoluteString], force: true)
        let water = try #require(try world.summary(report).billers.first { $0.biller == "QD-WATER" })
        #expect(water.status == "rejected")
        #expect(water.error?.contains("FeedId QD-WATER-20261127-01 was ingested before with other content") == true)
        #expect(try world.text("SELECT error_code FROM billing_runs WHERE biller = 'QD-WATER' ORDER BY execution_id DESC LIMIT 1") == "feed_id_reused")
        #expect(try world.bill("QD-WATER", "W2611-000001")?["due_fen"] as Int64? == 4_520)
    }

    /// The notices of the bills a feed's move leaves payable are written with the feed: when
    /// one of them cannot be written, nothing of that feed is (no bill, no notice, no feed
    /// row), the feeds before it stand, and the run taken up again stages it whole, each
    /// notice once.
    @Test func aFeedWhoseNoticeCannotBeWrittenLeavesNothingHalfWritten() throws {
        let world = try BillingWorld()
        try world.populate()
        // The water feed (the last, in the billers' order) holds W2611-000002, over its link's
        // per-bill limit.
        let refused = "%:QD-WATER:W2611-000002"
        if world.onPostgres {
            try world.execute("""
                CREATE FUNCTION refuse_notice() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.message_id LIKE '\(refused)' THEN RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$
                """)
            try world.execute("CREATE TRIGGER refuse_notice BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_notice()")
        } else {
            try world.execute("CREATE TRIGGER refuse_notice BEFORE INSERT ON outbox WHEN NEW.message_id LIKE '\(refused)' BEGIN SELECT RAISE(ABORT, 'refused for the test'); END")
        }
        let failed = try world.run("2026-11-27")
        #expect(failed.status == "failed")
        #expect(try world.count("SELECT count(*) FROM bills WHERE biller = 'QD-WATER'") == 0)
        #expect(try world.count("SELECT count(*) FROM feeds WHERE biller = 'QD-WATER'") == 0)
        #expect(try world.count("SELECT count(*) FROM outbox WHERE message_id LIKE '%:QD-WATER:%'") == 0)
        // The feeds before it were staged, with the notice of the bill their link decided.
        #expect(try world.status("QD-GAS", "G2611-55001") == "payable AUTOPAY_OFF")
        #expect(try world.count("SELECT count(*) FROM outbox WHERE message_id LIKE 'notice:%:QD-GAS:G2611-55001'") == 1)
        #expect(try world.count("SELECT count(*) FROM bills WHERE biller = 'QD-POWER'") == 3)
        #expect(try world.count("SELECT count(*) FROM bills WHERE status = 'paid'") == 0)

        try world.execute("DROP TRIGGER refuse_notice" + (world.onPostgres ? " ON outbox" : ""))
        world.clock.advance(micros: 61_000_000)
        let again = try world.run("2026-11-27")
        #expect(again.status == "completed")
        #expect(try world.status("QD-WATER", "W2611-000002") == "payable OVER_AUTOPAY_LIMIT")
        #expect(try world.count("SELECT count(*) FROM outbox WHERE message_id LIKE 'notice:%:QD-WATER:W2611-000002'") == 1)
        #expect(try world.count("SELECT count(*) FROM outbox WHERE message_id LIKE 'notice:%:QD-GAS:G2611-55001'") == 1)
        #expect(try world.count("SELECT count(*) FROM outbox WHERE kind = 'bill_notice'") == 5)
        #expect(try world.count("SELECT count(*) FROM bills WHERE status = 'paid'") == 4)
        #expect(try world.balance("13800000001") == 100_000 - 4_520 - 12_860)
        #expect(try world.ledger.check().ok)
    }
}

/// Dies like a killed process.
struct Killed: AbortingError {}

/// Two signals between a run and a racing payer.
/// `body` on a thread of its own; `value()` waits for its result.
final class OnThread<T: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<T, any Error>?
    init(_ body: @escaping @Sendable () throws -> T) {
        Thread.detachNewThread { [self] in
            result = Result { try body() }
            done.signal()
        }
    }
    func value() throws -> T {
        done.wait()
        return try result!.get()
    }
}

final class Handshake: Sendable {
    let runReady = DispatchSemaphore(value: 0)
    let payerTried = DispatchSemaphore(value: 0)
}

/// Runs the inner step; before its first chunk, tells the payer the run is under way and
/// waits (at most 30 s) until the payer has tried.
final class HandshakeStep: JobStep, @unchecked Sendable {
    let inner: any JobStep
    let handshake: Handshake
    var waited = false
    init(_ inner: any JobStep, _ handshake: Handshake) {
        self.inner = inner
        self.handshake = handshake
    }
    var name: String { inner.name }
    var checkpointVersion: Int { inner.checkpointVersion }
    func initialCheckpoint(_ context: JobContext) throws -> Data { try inner.initialCheckpoint(context) }
    func beforeChunk(_ context: JobContext, checkpoint: Data) throws -> (any Sendable)? {
        if !waited {
            waited = true
            handshake.runReady.signal()
            _ = handshake.payerTried.wait(timeout: .now() + 30)
        }
        return try inner.beforeChunk(context, checkpoint: checkpoint)
    }
    func runChunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, checkpoint: Data) throws -> ChunkResult {
        try inner.runChunk(context, db: db, ledger: ledger, checkpoint: checkpoint)
    }
}

/// Runs the inner step, but dies before its chunk number `crashAt`.
final class CrashingStep: JobStep, @unchecked Sendable {
    let inner: any JobStep
    let crashAt: Int
    var chunks = 0
    init(_ inner: any JobStep, crashAt: Int) {
        self.inner = inner
        self.crashAt = crashAt
    }
    var name: String { inner.name }
    var checkpointVersion: Int { inner.checkpointVersion }
    func initialCheckpoint(_ context: JobContext) throws -> Data { try inner.initialCheckpoint(context) }
    func beforeChunk(_ context: JobContext, checkpoint: Data) throws -> (any Sendable)? { try inner.beforeChunk(context, checkpoint: checkpoint) }
    func runChunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, checkpoint: Data) throws -> ChunkResult {
        chunks += 1
        if chunks == crashAt { throw Killed() }
        let result = try inner.runChunk(context, db: db, ledger: ledger, checkpoint: checkpoint)
        return result
    }
}

@Suite struct BillingCrashTests {
    @Test(arguments: [1, 2, 4, 7, 8])
    func aCrashInTheMiddleOfProcessingLosesAndRepeatsNothing(crashAt: Int) throws {
        let world = try BillingWorld()
        try world.populate()
        let config = world.config
        let steps: [any JobStep] = [IngestStep(config: config), CancelStep(config: config), CrashingStep(ProcessStep(config: config), crashAt: crashAt), ReportStep(config: config)]
        #expect(throws: Killed.self) { try world.runner(chunkSize: 1, steps: steps).run("nightly-billing", overrides: ["date": "2026-11-27"]) }
        // The bills no wallet has linked were written unmatched by the ingest, before any chunk;
        // those whose link has autopay off or a lower limit, payable with their notices.
        #expect(try world.count("SELECT count(*) FROM bills WHERE status = 'unmatched' AND reason = 'UNKNOWN_CUSTOMER' AND wallet_id IS NULL") == 2)
        #expect(try world.count("SELECT count(*) FROM bills WHERE status = 'payable' AND reason IN ('AUTOPAY_OFF', 'OVER_AUTOPAY_LIMIT') AND wallet_id IS NOT NULL") == 2)
        #expect(try world.count("SELECT count(*) FROM outbox WHERE kind = 'bill_notice' AND (payload LIKE '%AUTOPAY_OFF%' OR payload LIKE '%OVER_AUTOPAY_LIMIT%')") == 2)
        // The processing's seven bills, one a chunk (the eighth chunk finds none left).
        let processedBefore = try world.count("SELECT count(*) FROM bills WHERE status <> 'new' AND status <> 'unmatched'") - 2
        #expect(processedBefore == crashAt - 1)
        world.clock.advance(micros: 61_000_000)
        let report = try world.runner(chunkSize: 1, owner: "second").run("nightly-billing", overrides: ["date": "2026-11-27"])
        #expect(report.status == "completed")
        #expect(report.abandonedExecutionId == 1)
        #expect(try world.count("SELECT count(*) FROM bills WHERE status = 'new'") == 0)
        #expect(try world.count("SELECT count(*) FROM bills WHERE status = 'paid'") == 4)
        #expect(try world.count("SELECT count(*) FROM ledger_transactions WHERE idempotency_key LIKE 'bill:%'") == 4)
        #expect(try world.balance("13800000001") == 100_000 - 4_520 - 12_860)
        #expect(try world.count("SELECT count(*) FROM outbox WHERE kind = 'bill_notice'") == 5)
        #expect(try world.ledger.check().ok)
    }

    @Test func payBillRacingTheRunNeverPaysTwice() throws {
        let world = try BillingWorld()
        try world.populate()
        let clock = world.clock
        // The resident pays every bill by hand while the nightly run processes them one per chunk.
        let manual = try world.anotherStore()
        let manualWallets = WalletService(store: manual, ledger: Ledger(store: manual, clock: clock), hasher: PasswordHasher(iterations: 1_000), dataKey: world.wallets.dataKey)
        let manualBilling = BillingService(wallets: manualWallets)
        // The run waits at its first payment chunk until the resident has tried: the two sides
        // overlap for certain, whatever the machine's load.
        let handshake = Handshake()
        let config = world.config
        let steps: [any JobStep] = [IngestStep(config: config), CancelStep(config: config), HandshakeStep(ProcessStep(config: config), handshake), ReportStep(config: config)]
        let runner = try world.runner(chunkSize: 1, steps: steps)
        // Threads of their own: both sides block (on the handshake, on the database), which
        // tasks of the shared cooperative pool must not do on a busy two-core machine.
        let run = OnThread { try runner.run("nightly-billing", overrides: ["date": "2026-11-27"]) }
        let paid = OnThread { () -> (done: Int, duringRun: Int) in
            var done = 0
            var duringRun = 0
            _ = handshake.runReady.wait(timeout: .now() + 30)
            for round in 0..<200 {
                for bill in ["QD-WATER:W2611-000001", "QD-POWER:P2611-100001", "QD-GAS:G2611-55001"] {
                    if (try? manual.database.read({ try $0.int("SELECT count(*) FROM job_locks") })) == 1 { duringRun += 1 }
                    if (try? manualBilling.payBill(phone: "13800000001", reference: bill, password: "123456")) != nil { done += 1 }
                }
                if round == 0 { handshake.payerTried.signal() }
            }
            return (done, duringRun)
        }
        let (report, manualSide) = (try run.value(), try paid.value())
        #expect(report.status == "completed")
        #expect(manualSide.duringRun >= 3, "pay-bill was not tried while the run held its lock: the race was not run")
        for (biller, bill) in [("QD-WATER", "W2611-000001"), ("QD-POWER", "P2611-100001"), ("QD-GAS", "G2611-55001")] {
            #expect(try world.count("SELECT count(*) FROM ledger_transactions WHERE idempotency_key = ?", [try world.paymentKey(biller, bill)]) == 1)
        }
        #expect(try world.balance("13800000001") == 100_000 - 4_520 - 12_860 - 5_600)
        #expect(try world.count("SELECT count(*) FROM wallet_movements WHERE kind = 'bill' AND wallet_id = 1") == 3)
        #expect(try world.ledger.check().ok)
    }
}
