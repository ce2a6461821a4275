import Foundation
import QDSQL
import QDTestEngines
import Synchronization
import Testing
@testable import Ledger

/// Many writers at once on PostgreSQL, where the races are real: people's accounts are
/// locked, system accounts are not, the chain is sealed after commit, and every invariant of
/// `Ledger.check()` holds afterwards. (With one writer at a time, SQLite, there is nothing to
/// race.)
@Suite(.enabled(if: TestEngine.onPostgres), .serialized)
struct ConcurrentWritersTests {
    /// Runs `body` on a thread of its own; `wait()` returns its error, if any.
    final class Worker: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var failure: (any Error)?
        private var ended = false
        init(_ body: @escaping @Sendable () throws -> Void) {
            Thread.detachNewThread { [self] in
                do { try body() } catch { failure = error }
                done.signal()
            }
        }
        /// Whether it finished within `seconds`.
        func finished(within seconds: Double) -> Bool {
            if ended { return true }
            ended = done.wait(timeout: .now() + seconds) == .success
            return ended
        }
        func wait() throws {
            if !ended { done.wait() }
            ended = true
            if let failure { throw failure }
        }
    }

    /// A payment posted in a transaction kept open until `release()` (waits until it posted).
    struct OpenPayment {
        let worker: Worker
        let gate = DispatchSemaphore(value: 0)
        init(_ t: TestLedger, _ request: PostingRequest) throws {
            let store = t.store, clock = t.clock, gate = gate
            let posted = DispatchSemaphore(value: 0)
            worker = Worker {
                try store.transaction { _, tx in
                    _ = try Ledger.post([request], in: tx, clock: clock)
                    posted.signal()
                    _ = gate.wait(timeout: .now() + 20)
                }
            }
            #expect(posted.wait(timeout: .now() + 10) == .success)
        }
        func release() throws {
            gate.signal()
            try worker.wait()
        }
    }

    @Test func paymentsOfDifferentWalletsToOneBillerDoNotWaitForEachOther() throws {
        let t = try TestLedger()
        let biller = try t.account("biller:QD-WATER", .unrestricted, kind: .billerSettlement)
        let (a, bank) = try t.fundedWallet("a", fen: 10_000)
        let (b, _) = try t.fundedWallet("b", fen: 10_000, bank: bank)
        let store = t.store, clock = t.clock
        // A pays the biller and keeps its transaction open, holding a's lock.
        let first = try OpenPayment(t, .transfer(key: "a-pays", from: a, to: biller, amount: 100))
        // B pays the same biller meanwhile: another wallet, and the biller's totals are added
        // to, not locked. Under one writers' lock this would wait for A.
        let second = Worker { _ = try Ledger(store: store, clock: clock).post(.transfer(key: "b-pays", from: b, to: biller, amount: 200)) }
        let secondFinishedWhileFirstOpen = second.finished(within: 8)
        try first.release()
        try second.wait()
        #expect(secondFinishedWhileFirstOpen, "a payment of another wallet waited for an open transaction")
        #expect(try t.ledger.account(id: biller).balance == 300)
        let report = try t.ledger.check()
        #expect(report.ok, "\(report.violations)")
        #expect(report.transactions == 4 && report.unsealed == 0)
    }

    @Test func paymentsOfOneWalletTakeTurns() throws {
        let t = try TestLedger()
        let biller = try t.account("biller:QD-POWER", .unrestricted, kind: .billerSettlement)
        let (a, _) = try t.fundedWallet("a", fen: 150)
        let store = t.store, clock = t.clock
        let first = try OpenPayment(t, .transfer(key: "first", from: a, to: biller, amount: 100))
        // The same wallet: the second payment waits for the first's lock, then sees the balance
        // the first left (50) and is refused, instead of spending the 150 twice.
        let outcome = Mutex<PostingResult?>(nil)
        let second = Worker { outcome.withLock { $0 = nil }; let result = try Ledger(store: store, clock: clock).post(.transfer(key: "second", from: a, to: biller, amount: 100)); outcome.withLock { $0 = result } }
        #expect(!second.finished(within: 1.5), "a payment of the same wallet did not wait for the open one")
        try first.release()
        try second.wait()
        #expect(outcome.withLock { $0 } == .refused(.exceedsCredits, replayed: false))
        #expect(try t.ledger.account(id: a).balance == 50)
        #expect(try t.ledger.check().ok)
    }

    /// Eight writers, each with its own sessions, post transfers among six wallets, to two
    /// billers and from the bank, with holds, posts, voids and reversals, as fast as they can.
    /// Afterwards: no wallet below zero, money conserved to the fen, every transaction once,
    /// and the whole check clean (running balances and sequences of every wallet, the seals).
    @Test func manyWritersRacingKeepEveryInvariant() throws {
        let t = try TestLedger()
        let billers = [try t.account("biller:1", .unrestricted, kind: .billerSettlement), try t.account("biller:2", .unrestricted, kind: .billerSettlement)]
        let bank = try t.account("bank", .unrestricted, kind: .bankClearing)
        var wallets: [AccountID] = []
        for i in 0..<6 { wallets.append(try t.fundedWallet("w\(i)", fen: 5_000, bank: bank).wallet) }
        let accounts = wallets
        let clock = t.clock
        var workers: [Worker] = []
        let committed = Mutex(0)
        for writer in 0..<8 {
            // Each writer its own pool of sessions: as a separate process would.
            let database = try TestEngine.anotherPool(try #require(t.postgres))
            let ledger = Ledger(store: SQLLedgerStore(database: database), clock: clock)
            workers.append(Worker {
                var random = SystemRandomNumberGenerator()
                for step in 0..<60 {
                    let from = accounts.randomElement(using: &random)!
                    let to = Bool.random(using: &random) ? billers.randomElement(using: &random)! : accounts.randomElement(using: &random)!
                    let amount = Int64.random(in: 1...400, using: &random)
                    var requests: [PostingRequest] = []
                    switch step % 5 {
                    case 0: requests = [.transfer(key: "top-\(writer)-\(step)", from: bank, to: from, amount: amount)]
                    case 1:
                        // A batch of three: several wallets locked at once, in one order.
                        requests = (0..<3).map { k in .transfer(key: "batch-\(writer)-\(step)-\(k)", from: accounts[(writer + k) % accounts.count], to: k == 1 ? billers[0] : accounts[(writer + k + 1) % accounts.count], amount: amount) }
                    case 2:
                        let hold = try ledger.post(PostingRequest(key: "hold-\(writer)-\(step)", action: .hold(debit: from, credit: billers[1], asset: .cny, amount: amount, expiresAt: nil)))
                        if let id = hold.transactionID {
                            requests = [PostingRequest(key: "settle-\(writer)-\(step)", action: step % 2 == 0 ? .postHold(holdID: id, amount: nil) : .voidHold(holdID: id))]
                        }
                    case 3:
                        let paid = try ledger.post(.transfer(key: "pay-\(writer)-\(step)", from: from, to: to == from ? billers[0] : to, amount: amount))
                        if let id = paid.transactionID, step % 2 == 1 {
                            requests = [PostingRequest(key: "undo-\(writer)-\(step)", action: .reverse(transactionID: id))]
                        }
                    default:
                        requests = [.transfer(key: "pay-\(writer)-\(step)", from: from, to: to == from ? billers[1] : to, amount: amount)]
                    }
                    if !requests.isEmpty {
                        let results = try ledger.post(requests)
                        committed.withLock { $0 += results.filter { $0.transactionID != nil }.count }
                    }
                }
            })
        }
        for worker in workers { try worker.wait() }

        var total: Int64 = 0
        for id in accounts + billers + [bank] { total += try t.ledger.account(id: id).balance }
        #expect(total == 0, "money created or lost")
        for id in accounts {
            #expect(try t.ledger.account(id: id).available >= 0)
        }
        #expect(committed.withLock { $0 } > 100)
        let report = try t.ledger.check()
        #expect(report.ok, "\(report.violations.prefix(10))")
        #expect(report.unsealed == 0)
        // Every key once in the journal.
        let repeated = try t.store.database.read { try $0.int("SELECT count(*) FROM (SELECT idempotency_key FROM ledger_transactions GROUP BY idempotency_key HAVING count(*) > 1) AS r") }
        #expect(repeated == 0)
    }

    /// A check (the `ledger-check` job's, a reconciliation's) reads the ledger while payments
    /// go on: on READ COMMITTED each statement would see newer commits than the one before
    /// (the accounts before a payment, its entries after), so it reads one snapshot.
    @Test func aCheckOnASnapshotSeesOneState() throws {
        let t = try TestLedger()
        let (a, bank) = try t.fundedWallet("a", fen: 1_000)
        let other = Ledger(store: SQLLedgerStore(database: try TestEngine.anotherPool(try #require(t.postgres))), clock: t.clock)
        let report = try t.store.snapshot { _, tx in
            _ = try tx.account(id: a)  // the snapshot is taken here
            #expect(try other.post(.transfer(key: "meanwhile", from: bank, to: a, amount: 5)).transactionID != nil)
            return try Ledger.check(tx)
        }
        #expect(report.ok, "\(report.violations)")
        #expect(report.transactions == 1)
        #expect(try t.ledger.check().transactions == 2)
    }

    @Test func theSealsAreTheChainAndACheckFindsARowWrittenAroundTheLedger() throws {
        let t = try TestLedger()
        let (a, bank) = try t.fundedWallet("a", fen: 1_000)
        for i in 0..<5 { _ = try t.ledger.post(.transfer(key: "p\(i)", from: a, to: bank, amount: 10)) }
        var report = try t.ledger.check()
        #expect(report.ok && report.transactions == 6)
        // The anchor is the last seal: position 6.
        #expect(report.head.hasPrefix("6:"))
        #expect(try t.ledger.check(expectingHead: report.head).ok)
        // A row inserted behind the ledger's back is neither sealed nor queued.
        try t.execute("INSERT INTO ledger_transactions (id, kind, idempotency_key, recorded_at, effective_at, memo, prev_hash, hash) VALUES (999, 'transfer', 'forged', 1, 1, '', '\\x', '\\x00')")
        report = try t.ledger.check()
        #expect(report.violations.contains { $0.code == "unsealed_transaction" && $0.transactionID == 999 }, "\(report.violations)")
        #expect(report.violations.contains { $0.code == "missing_entries" })
    }

    @Test func aSealRewrittenBreaksTheChain() throws {
        let t = try TestLedger()
        let (a, bank) = try t.fundedWallet("a", fen: 1_000)
        for i in 0..<4 { _ = try t.ledger.post(.transfer(key: "p\(i)", from: a, to: bank, amount: 10)) }
        try t.execute("ALTER TABLE ledger_seals DISABLE TRIGGER USER")
        try t.execute("UPDATE ledger_seals SET hash = '\\x00' WHERE pos = 2")
        let report = try t.ledger.check()
        #expect(report.violations.contains { $0.code == "hash_chain_broken" }, "\(report.violations)")
    }
}
