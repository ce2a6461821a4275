import GRDB
import Testing
@testable import Ledger

/// A small world for the refusal table: funded, empty, frozen, closed, overdraft and
/// points accounts.
struct World {
    let t: TestLedger
    let bank, a, b, frozen, closed, overdraft, points, pointsPool, capped: AccountID

    init() throws {
        t = try TestLedger()
        (a, bank) = try t.fundedWallet("a", fen: 10_000)
        b = try t.account("b")
        frozen = try t.fundedWallet("frozen", fen: 1_000, bank: bank).wallet
        _ = try t.ledger.setRules(accountID: frozen, rules: AccountRules(debitsMustNotExceedCredits: true, frozen: true), reason: "test")
        closed = try t.account("closed")
        _ = try t.ledger.setRules(accountID: closed, rules: AccountRules(debitsMustNotExceedCredits: true, closed: true), reason: "test")
        overdraft = try t.account("overdraft", AccountRules(debitsMustNotExceedCredits: true, overdraftLimit: 500))
        points = try t.account("points", .noOverdraft, kind: .userPoints, asset: .pts)
        pointsPool = try t.account("points-pool", .unrestricted, kind: .pointsLiability, asset: .pts)
        capped = try t.account("capped", AccountRules(creditsMustNotExceedDebits: true), kind: .suspense)
    }
}

@Suite struct RefusalTests {
    typealias Case = (name: String, refusal: LedgerRefusal, make: @Sendable (World) -> PostingAction)

    static let cases: [Case] = [
        ("no legs", .legsMustNotBeEmpty, { _ in .transfer(legs: []) }),
        ("zero amount", .amountMustBePositive, { w in .transfer(legs: [.debit(w.a, 0), .credit(w.b, 0)]) }),
        ("negative amount", .amountMustBePositive, { w in .transfer(legs: [.debit(w.a, -5), .credit(w.b, -5)]) }),
        ("unbalanced", .legsMustBalance, { w in .transfer(legs: [.debit(w.a, 5), .credit(w.b, 4)]) }),
        ("one leg", .legsMustBalance, { w in .transfer(legs: [.debit(w.a, 5)]) }),
        ("balanced across assets only", .legsMustBalance, { w in .transfer(legs: [.debit(w.a, 5), .credit(w.points, 5, .pts)]) }),
        ("a leg of 64-bit size", .amountExceedsLimit, { w in .transfer(legs: [.credit(w.a, Int64.max), .credit(w.b, 1), .debit(w.bank, 1)]) }),
        ("a leg one fen over the bound", .amountExceedsLimit, { w in .transfer(legs: [.debit(w.bank, LedgerLimits.amountMaxDefault + 1), .credit(w.b, LedgerLimits.amountMaxDefault + 1)]) }),
        ("a hold one fen over the bound", .amountExceedsLimit, { w in .hold(debit: w.bank, credit: w.b, asset: .cny, amount: LedgerLimits.amountMaxDefault + 1, expiresAt: nil) }),
        ("unknown account", .accountNotFound, { w in .transfer(legs: [.debit(w.a, 5), .credit(9_999, 5)]) }),
        ("asset mismatch", .assetMismatch, { w in .transfer(legs: [.debit(w.pointsPool, 5), .credit(w.a, 5)]) }),
        ("debit closed", .accountClosed, { w in .transfer(legs: [.debit(w.closed, 1), .credit(w.b, 1)]) }),
        ("credit closed", .accountClosed, { w in .transfer(legs: [.debit(w.a, 1), .credit(w.closed, 1)]) }),
        ("debit frozen", .accountFrozen, { w in .transfer(legs: [.debit(w.frozen, 1), .credit(w.b, 1)]) }),
        ("insufficient by one fen", .exceedsCredits, { w in .transfer(legs: [.debit(w.a, 10_001), .credit(w.b, 10_001)]) }),
        ("empty wallet", .exceedsCredits, { w in .transfer(legs: [.debit(w.b, 1), .credit(w.a, 1)]) }),
        ("beyond overdraft by one", .exceedsCredits, { w in .transfer(legs: [.debit(w.overdraft, 501), .credit(w.b, 501)]) }),
        ("credit beyond debits", .exceedsDebits, { w in .transfer(legs: [.debit(w.bank, 1), .credit(w.capped, 1)]) }),
        ("too many legs", .tooManyLegs, { w in .transfer(legs: Array(repeating: .debit(w.bank, 1), count: 33) + Array(repeating: .credit(w.b, 1), count: 33)) }),
        ("hold same account", .accountsMustBeDifferent, { w in .hold(debit: w.a, credit: w.a, asset: .cny, amount: 1, expiresAt: nil) }),
        ("hold zero", .amountMustBePositive, { w in .hold(debit: w.a, credit: w.b, asset: .cny, amount: 0, expiresAt: nil) }),
        ("hold expiry now", .expiryMustBeInFuture, { w in .hold(debit: w.a, credit: w.b, asset: .cny, amount: 1, expiresAt: TestLedger.start) }),
        ("hold beyond balance", .exceedsCredits, { w in .hold(debit: w.a, credit: w.b, asset: .cny, amount: 10_001, expiresAt: nil) }),
        ("hold from frozen", .accountFrozen, { w in .hold(debit: w.frozen, credit: w.b, asset: .cny, amount: 1, expiresAt: nil) }),
        ("hold wrong asset", .assetMismatch, { w in .hold(debit: w.a, credit: w.b, asset: .pts, amount: 1, expiresAt: nil) }),
        ("post unknown hold", .holdNotFound, { _ in .postHold(holdID: 9_999, amount: nil) }),
        ("void unknown hold", .holdNotFound, { _ in .voidHold(holdID: 9_999) }),
        ("post a transfer as hold", .holdNotFound, { _ in .postHold(holdID: 1, amount: nil) }),
        ("reverse unknown", .transactionNotFound, { _ in .reverse(transactionID: 9_999) }),
    ]

    @Test(arguments: cases.map(\.name))
    func refuses(name: String) throws {
        let entry = try #require(Self.cases.first { $0.name == name })
        let w = try World()
        let before = try w.t.transactionCount()
        let balances = try [w.a, w.b, w.bank, w.frozen, w.overdraft].map { try w.t.ledger.account(id: $0) }
        let result = try w.t.ledger.post(PostingRequest(key: "k-\(name)", action: entry.make(w)))
        #expect(result == .refused(entry.refusal, replayed: false))
        #expect(try w.t.transactionCount() == before)
        let after = try [w.a, w.b, w.bank, w.frozen, w.overdraft].map { try w.t.ledger.account(id: $0) }
        #expect(after == balances)
        #expect(try w.t.ledger.check().ok)
    }

    /// No account, system accounts included, can come near 64 bits: a leg is at most
    /// 10^12 fen and an account's totals at most 10^17. The operator's typo of a top-up of
    /// 92233720368547758.07 is refused, and the next top-up still goes through.
    @Test func noAccountCanApproachSixtyFourBits() throws {
        let t = try TestLedger(limits: LedgerLimits(accountTotalMax: 3_000_000_000_000))
        let (a, bank) = try t.fundedWallet("a", fen: 0)
        #expect(try t.ledger.post(.transfer(key: "typo", from: bank, to: a, amount: Int64.max)) == .refused(.amountExceedsLimit, replayed: false))
        #expect(try t.ledger.post(.transfer(key: "big-1", from: bank, to: a, amount: LedgerLimits.amountMaxDefault)).transactionID != nil)
        #expect(try t.ledger.post(.transfer(key: "big-2", from: bank, to: a, amount: LedgerLimits.amountMaxDefault)).transactionID != nil)
        #expect(try t.ledger.post(.transfer(key: "big-3", from: bank, to: a, amount: LedgerLimits.amountMaxDefault)).transactionID != nil)
        // The bank's debits total is now at its bound: one more fen is refused, not wrapped.
        #expect(try t.ledger.post(.transfer(key: "one-more", from: bank, to: a, amount: 1)) == .refused(.balanceOverflow, replayed: false))
        #expect(try t.ledger.account(id: bank).debitsPosted == 3_000_000_000_000)
        #expect(try t.ledger.account(id: a).balance == 3_000_000_000_000)
        #expect(try t.ledger.check().ok)
        // The default bounds leave two orders of magnitude below Int64.max.
        #expect(LedgerLimits().accountTotalMax * 2 + LedgerLimits().amountMax * Int64(LedgerLimits().legsMax) < Int64.max / 40)
    }

    @Test func requestLimitsAreRefused() throws {
        let t = try TestLedger(limits: LedgerLimits(keyBytesMax: 8, memoBytesMax: 4))
        let (a, bank) = try t.fundedWallet("a", fen: 0)
        #expect(try t.ledger.post(.transfer(key: "", from: bank, to: a, amount: 1)) == .refused(.keyMustNotBeEmpty, replayed: false))
        #expect(try t.ledger.post(.transfer(key: "123456789", from: bank, to: a, amount: 1)) == .refused(.keyTooLong, replayed: false))
        #expect(try t.ledger.post(.transfer(key: "k", from: bank, to: a, amount: 1, memo: "12345")) == .refused(.memoTooLong, replayed: false))
        #expect(try t.ledger.post(.transfer(key: "k2", from: bank, to: a, amount: 1, memo: "1234")).transactionID != nil)
    }

    @Test func batchLimitIsAnError() throws {
        let t = try TestLedger(limits: LedgerLimits(batchSizeMax: 2))
        let (a, bank) = try t.fundedWallet("a", fen: 0)
        let requests = (0..<3).map { PostingRequest.transfer(key: "k\($0)", from: bank, to: a, amount: 1) }
        #expect { try t.ledger.post(requests) } throws: { ($0 as? LedgerError)?.code == .batchTooLarge }
        #expect(try t.balance(a) == 0)
    }

    /// More requests than a batch: posted in several, a linked group never split, the
    /// results in request order; a group larger than a batch is an error, not a split.
    @Test func postInBatchesKeepsLinkedGroupsWhole() throws {
        let t = try TestLedger(limits: LedgerLimits(batchSizeMax: 3))
        let (a, bank) = try t.fundedWallet("a", fen: 1_000)
        let b = try t.account("b")
        let limits = t.ledger.limits
        // Groups of 1, 1, 2, 1: the pair at 2-3 straddles the first cut at 3, so the first
        // batch ends before it; its second request fails, so both are refused together.
        let requests: [PostingRequest] = [
            .transfer(key: "s1", from: a, to: b, amount: 100),
            .transfer(key: "s2", from: a, to: b, amount: 100),
            .transfer(key: "g1", from: a, to: b, amount: 100, linked: true),
            .transfer(key: "g2", from: b, to: bank, amount: 5_000),
            .transfer(key: "s3", from: a, to: b, amount: 100),
        ]
        let results = try t.ledger.store.write { tx in try Ledger.postInBatches(requests, in: tx, clock: t.ledger.clock, limits: limits) }
        #expect(results.count == 5)
        #expect(results[0].transactionID != nil && results[1].transactionID != nil && results[4].transactionID != nil)
        #expect(results[2] == .refused(.linkedEventFailed, replayed: false))
        #expect(results[3] == .refused(.exceedsCredits, replayed: false))
        #expect(try t.balance(a) == 700)
        #expect(try t.balance(b) == 300)
        let oversized = (0..<4).map { PostingRequest.transfer(key: "big\($0)", from: a, to: b, amount: 1, linked: $0 < 3) }
        #expect { try t.ledger.store.write { tx in try Ledger.postInBatches(oversized, in: tx, clock: t.ledger.clock, limits: limits) } } throws: { ($0 as? LedgerError)?.code == .batchTooLarge }
        #expect(try t.balance(a) == 700)
        #expect(try t.ledger.check().ok)
    }
}

@Suite struct BoundaryTests {
    @Test func debitOfExactlyTheBalancePasses() throws {
        let w = try World()
        #expect(try w.t.ledger.post(.transfer(key: "all", from: w.a, to: w.b, amount: 10_000)).transactionID != nil)
        #expect(try w.t.balance(w.a) == 0)
        #expect(try w.t.balance(w.b) == 10_000)
        #expect(try w.t.ledger.post(.transfer(key: "one-more", from: w.a, to: w.b, amount: 1)) == .refused(.exceedsCredits, replayed: false))
    }

    @Test func overdraftLimitIsInclusive() throws {
        let w = try World()
        #expect(try w.t.ledger.post(.transfer(key: "od", from: w.overdraft, to: w.b, amount: 500)).transactionID != nil)
        #expect(try w.t.balance(w.overdraft) == -500)
        #expect(try w.t.ledger.post(.transfer(key: "od2", from: w.overdraft, to: w.b, amount: 1)) == .refused(.exceedsCredits, replayed: false))
        #expect(try w.t.ledger.check().ok)
    }

    @Test func holdsReduceAvailableNotPosted() throws {
        let w = try World()
        let hold = try #require(try w.t.ledger.post(PostingRequest(key: "h", action: .hold(debit: w.a, credit: w.b, asset: .cny, amount: 6_000, expiresAt: nil))).transactionID)
        #expect(try w.t.balance(w.a) == 10_000)
        #expect(try w.t.available(w.a) == 4_000)
        // Exactly the available amount passes; one fen more does not.
        #expect(try w.t.ledger.post(.transfer(key: "t1", from: w.a, to: w.b, amount: 4_001)) == .refused(.exceedsCredits, replayed: false))
        #expect(try w.t.ledger.post(.transfer(key: "t2", from: w.a, to: w.b, amount: 4_000)).transactionID != nil)
        #expect(try w.t.available(w.a) == 0)
        #expect(try w.t.ledger.post(PostingRequest(key: "p", action: .postHold(holdID: hold, amount: nil))).transactionID != nil)
        #expect(try w.t.balance(w.a) == 0)
        #expect(try w.t.balance(w.b) == 10_000)
        #expect(try w.t.ledger.check().ok)
    }

    @Test func frozenAccountStillReceives() throws {
        let w = try World()
        #expect(try w.t.ledger.post(.transfer(key: "in", from: w.a, to: w.frozen, amount: 1)).transactionID != nil)
        #expect(try w.t.balance(w.frozen) == 1_001)
        _ = try w.t.ledger.setRules(accountID: w.frozen, rules: .noOverdraft, reason: "unfreeze")
        #expect(try w.t.ledger.post(.transfer(key: "out", from: w.frozen, to: w.b, amount: 1_001)).transactionID != nil)
    }

    @Test func multiLegTransactionChecksNetPerAccount() throws {
        let w = try World()
        // A pays 100.00 to B while B pays 30.00 back in the same transaction; B had nothing,
        // but its net is a credit, so the transaction passes.
        let result = try w.t.ledger.post(PostingRequest(key: "net", action: .transfer(legs: [
            .debit(w.a, 10_000), .credit(w.b, 10_000), .debit(w.b, 3_000), .credit(w.a, 3_000),
        ])))
        #expect(result.transactionID != nil)
        #expect(try w.t.balance(w.a) == 3_000)
        #expect(try w.t.balance(w.b) == 7_000)
        let (_, entries) = try #require(try w.t.ledger.transaction(id: result.transactionID!))
        #expect(entries.map(\.balanceAfter) == [0, 10_000, 7_000, 3_000])
        #expect(try w.t.ledger.check().ok)
    }

    @Test func pointsAreTheirOwnAsset() throws {
        let w = try World()
        #expect(try w.t.ledger.post(.transfer(key: "pts", from: w.pointsPool, to: w.points, amount: 45, asset: .pts)).transactionID != nil)
        #expect(try w.t.balance(w.points) == 45)
        let report = try w.t.ledger.check()
        #expect(report.ok)
        let pts = try #require(report.trialBalance.first { $0.asset == .pts })
        #expect(pts.debitsPosted == 45 && pts.creditsPosted == 45)
    }
}
