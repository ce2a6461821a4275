import Testing
@testable import Ledger

@Suite struct IdempotencyTests {
    @Test func retryReturnsTheOriginalTransaction() throws {
        let w = try World()
        let request = PostingRequest.transfer(key: "pay-1", from: w.a, to: w.b, amount: 4_520, memo: "bill")
        let first = try w.t.ledger.post(request)
        let id = try #require(first.transactionID)
        #expect(first == .committed(id, replayed: false))
        w.t.clock.advance(micros: 60_000_000)
        #expect(try w.t.ledger.post(request) == .committed(id, replayed: true))
        #expect(try w.t.ledger.post([request, request]) == [.committed(id, replayed: true), .committed(id, replayed: true)])
        #expect(try w.t.balance(w.a) == 10_000 - 4_520)
        #expect(try w.t.balance(w.b) == 4_520)
    }

    @Test(arguments: ["amount", "target", "memo", "effective", "kind"])
    func sameKeyDifferentRequestIsRefused(change: String) throws {
        let w = try World()
        let original = PostingRequest.transfer(key: "pay-1", from: w.a, to: w.b, amount: 100, memo: "m")
        _ = try w.t.ledger.post(original)
        var other = original
        switch change {
        case "amount": other = .transfer(key: "pay-1", from: w.a, to: w.b, amount: 101, memo: "m")
        case "target": other = .transfer(key: "pay-1", from: w.a, to: w.overdraft, amount: 100, memo: "m")
        case "memo": other.memo = "n"
        case "effective": other.effectiveAt = TestLedger.start - 1
        default: other.action = .hold(debit: w.a, credit: w.b, asset: .cny, amount: 100, expiresAt: nil)
        }
        #expect(try w.t.ledger.post(other) == .refused(.keyReusedWithDifferentRequest, replayed: false))
        #expect(try w.t.balance(w.b) == 100)
    }

    /// Several keys in one read (with many writers one statement, remembered for the rest
    /// of the transaction): the records found with what they said, absent keys left out; a
    /// key read absent and then posted in the same transaction is known as posted after.
    @Test func severalKeysAreReadTogetherAndStayTrueInTheTransaction() throws {
        let w = try World()
        let paid = try #require(try w.t.ledger.post(.transfer(key: "pay-1", from: w.a, to: w.b, amount: 100)).transactionID)
        _ = try w.t.ledger.post(.transfer(key: "too-much", from: w.a, to: w.b, amount: 1_000_000))
        let (found, again) = try w.t.store.write { tx in
            let found = try tx.idempotencyRecords(keys: ["pay-1", "nobody", "too-much", "pay-1"])
            let request = PostingRequest.transfer(key: "nobody", from: w.a, to: w.b, amount: 7)
            let first = try Ledger.post([request], in: tx, clock: w.t.clock)[0]
            let again = try Ledger.post([request], in: tx, clock: w.t.clock)[0]
            #expect(first.transactionID != nil && first == .committed(first.transactionID!, replayed: false))
            return (found, again)
        }
        #expect(Set(found.keys) == ["pay-1", "too-much"])
        #expect(found["pay-1"]?.transactionID == paid)
        #expect(found["too-much"]?.refusal == .exceedsCredits)
        #expect(found["too-much"]?.transactionID == nil)
        #expect(again.transactionID != nil && again == .committed(again.transactionID!, replayed: true))
        #expect(try w.t.balance(w.b) == 107)
    }

    /// Keys and memos holding what an array literal or a quoted value treats as its own
    /// (quotes, backslashes, commas, braces, the word NULL, an empty memo, text beyond ASCII)
    /// are written as they are in one batch (on PostgreSQL each column of the batch goes as one
    /// array literal, PostgreSQL's "Array Value Input"), read back equal, and replayed by the
    /// same requests.
    @Test func keysAndMemosOfAnyTextArePostedAndReplayedAsTheyCame() throws {
        let w = try World()
        let texts = ["quote \"in\" it", "back\\slash\\", "a,b", "{braces}", "NULL", "", "青岛 \u{1F600}", "\\\"", " spaced "]
        let requests = texts.enumerated().map { index, text in
            PostingRequest.transfer(key: "k\(index)-" + text, from: w.a, to: w.b, amount: Int64(index + 1), memo: text)
        }
        let results = try w.t.ledger.post(requests)
        for (index, result) in results.enumerated() {
            let id = try #require(result.transactionID)
            let (record, entries) = try #require(try w.t.ledger.transaction(id: id))
            #expect(record.key == requests[index].key)
            #expect(record.memo == texts[index])
            #expect(entries.map(\.amount) == [Int64(index + 1), Int64(index + 1)])
        }
        #expect(try w.t.ledger.post(requests) == results.map { .committed($0.transactionID!, replayed: true) })
        #expect(try w.t.balance(w.b) == Int64(texts.count * (texts.count + 1) / 2))
        #expect(try w.t.ledger.check().ok)
    }

    @Test func sameKeyTwiceInOneBatchPostsOnce() throws {
        let w = try World()
        let request = PostingRequest.transfer(key: "dup", from: w.a, to: w.b, amount: 100)
        let results = try w.t.ledger.post([request, request])
        let id = try #require(results[0].transactionID)
        #expect(results == [.committed(id, replayed: false), .committed(id, replayed: true)])
        #expect(try w.t.balance(w.b) == 100)
    }

    @Test func failedAttemptsAreRemembered() throws {
        let w = try World()
        let request = PostingRequest.transfer(key: "too-much", from: w.a, to: w.b, amount: 20_000)
        #expect(try w.t.ledger.post(request) == .refused(.exceedsCredits, replayed: false))
        // The wallet is topped up, but the key keeps its first answer: a retry never turns
        // into a charge the caller stopped expecting.
        _ = try w.t.ledger.post(.transfer(key: "topup", from: w.bank, to: w.a, amount: 20_000))
        #expect(try w.t.ledger.post(request) == .refused(.exceedsCredits, replayed: true))
        #expect(try w.t.balance(w.b) == 0)
        // The same key with another request is still a conflict.
        #expect(try w.t.ledger.post(.transfer(key: "too-much", from: w.a, to: w.b, amount: 1)) == .refused(.keyReusedWithDifferentRequest, replayed: false))
    }

    @Test func linkedFailuresAreNotRememberedForTheInnocent() throws {
        let w = try World()
        let innocent = PostingRequest.transfer(key: "ok", from: w.a, to: w.b, amount: 1, linked: true)
        let guilty = PostingRequest.transfer(key: "bad", from: w.b, to: w.a, amount: 1_000_000)
        #expect(try w.t.ledger.post([innocent, guilty]) == [.refused(.linkedEventFailed, replayed: false), .refused(.exceedsCredits, replayed: false)])
        var alone = innocent
        alone.linked = false
        #expect(try w.t.ledger.post(alone).transactionID != nil)
    }
}

@Suite struct HoldTests {
    func hold(_ w: World, key: String = "h", amount: Int64 = 5_000, expiresAt: TimestampMicros? = nil) throws -> TransactionID {
        try #require(try w.t.ledger.post(PostingRequest(key: key, action: .hold(debit: w.a, credit: w.b, asset: .cny, amount: amount, expiresAt: expiresAt))).transactionID)
    }

    @Test func partialPostReleasesTheRest() throws {
        let w = try World()
        let id = try hold(w)
        #expect(try w.t.ledger.post(PostingRequest(key: "p", action: .postHold(holdID: id, amount: 3_000))).transactionID != nil)
        #expect(try w.t.balance(w.a) == 7_000)
        #expect(try w.t.available(w.a) == 7_000)
        #expect(try w.t.balance(w.b) == 3_000)
        #expect(try w.t.ledger.account(id: w.b).creditsPending == 0)
        #expect(try w.t.ledger.post(PostingRequest(key: "p2", action: .postHold(holdID: id, amount: nil))) == .refused(.holdAlreadyPosted, replayed: false))
        #expect(try w.t.ledger.post(PostingRequest(key: "v", action: .voidHold(holdID: id))) == .refused(.holdAlreadyPosted, replayed: false))
        #expect(try w.t.ledger.check().ok)
    }

    @Test func postingMoreThanHeldIsRefused() throws {
        let w = try World()
        let id = try hold(w)
        #expect(try w.t.ledger.post(PostingRequest(key: "p", action: .postHold(holdID: id, amount: 5_001))) == .refused(.exceedsHoldAmount, replayed: false))
        #expect(try w.t.ledger.post(PostingRequest(key: "p0", action: .postHold(holdID: id, amount: 0))) == .refused(.amountMustBePositive, replayed: false))
        #expect(try w.t.ledger.post(PostingRequest(key: "p1", action: .postHold(holdID: id, amount: 5_000))).transactionID != nil)
    }

    @Test func voidReturnsTheReservation() throws {
        let w = try World()
        let id = try hold(w)
        #expect(try w.t.available(w.a) == 5_000)
        #expect(try w.t.ledger.post(PostingRequest(key: "v", action: .voidHold(holdID: id))).transactionID != nil)
        #expect(try w.t.available(w.a) == 10_000)
        #expect(try w.t.balance(w.b) == 0)
        #expect(try w.t.ledger.post(PostingRequest(key: "p", action: .postHold(holdID: id, amount: nil))) == .refused(.holdAlreadyVoided, replayed: false))
        #expect(try w.t.ledger.check().ok)
    }

    @Test func expiryFollowsTheInjectedClock() throws {
        let w = try World()
        let expiresAt = TestLedger.start + 3_600_000_000
        let id = try hold(w, expiresAt: expiresAt)
        #expect(try w.t.ledger.post(PostingRequest(key: "x", action: .expireHold(holdID: id))) == .refused(.holdNotExpired, replayed: false))
        w.t.clock.set(expiresAt - 1)
        #expect(try w.t.ledger.expireHolds().isEmpty)
        #expect(try w.t.available(w.a) == 5_000)
        w.t.clock.set(expiresAt)
        #expect(try w.t.ledger.post(PostingRequest(key: "late", action: .postHold(holdID: id, amount: nil))) == .refused(.holdExpired, replayed: false))
        let expired = try w.t.ledger.expireHolds()
        #expect(expired.count == 1 && expired[0].transactionID != nil)
        #expect(try w.t.available(w.a) == 10_000)
        #expect(try w.t.ledger.expireHolds().isEmpty)
        #expect(try w.t.ledger.check().ok)
    }

    @Test func frozenWalletCanStillSettleAnEarlierHold() throws {
        let w = try World()
        let id = try hold(w)
        _ = try w.t.ledger.setRules(accountID: w.a, rules: AccountRules(debitsMustNotExceedCredits: true, frozen: true), reason: "fraud review")
        #expect(try w.t.ledger.post(.transfer(key: "t", from: w.a, to: w.b, amount: 1)) == .refused(.accountFrozen, replayed: false))
        #expect(try w.t.ledger.post(PostingRequest(key: "p", action: .postHold(holdID: id, amount: nil))).transactionID != nil)
        #expect(try w.t.balance(w.a) == 5_000)
    }
}

@Suite struct ReversalTests {
    @Test func reversalUndoesInFullOnce() throws {
        let w = try World()
        let id = try #require(try w.t.ledger.post(.transfer(key: "pay", from: w.a, to: w.b, amount: 2_500)).transactionID)
        let reversal = try #require(try w.t.ledger.post(PostingRequest(key: "rev", action: .reverse(transactionID: id))).transactionID)
        #expect(try w.t.balance(w.a) == 10_000)
        #expect(try w.t.balance(w.b) == 0)
        let (record, entries) = try #require(try w.t.ledger.transaction(id: reversal))
        #expect(record.kind == .reversal && record.refID == id)
        #expect(entries.map(\.side) == [.credit, .debit])
        #expect(try w.t.ledger.post(PostingRequest(key: "rev2", action: .reverse(transactionID: id))) == .refused(.alreadyReversed, replayed: false))
        #expect(try w.t.ledger.post(PostingRequest(key: "rev3", action: .reverse(transactionID: reversal))) == .refused(.notReversible, replayed: false))
        #expect(try w.t.ledger.post(PostingRequest(key: "rev", action: .reverse(transactionID: id))) == .committed(reversal, replayed: true))
        #expect(try w.t.ledger.check().ok)
    }

    @Test func reversalObeysTheRules() throws {
        let w = try World()
        let id = try #require(try w.t.ledger.post(.transfer(key: "pay", from: w.a, to: w.b, amount: 2_500)).transactionID)
        _ = try w.t.ledger.post(.transfer(key: "spend", from: w.b, to: w.overdraft, amount: 2_000))
        #expect(try w.t.ledger.post(PostingRequest(key: "rev", action: .reverse(transactionID: id))) == .refused(.exceedsCredits, replayed: false))
        #expect(try w.t.balance(w.b) == 500)
    }

    @Test func holdsAndVoidsAreNotReversible() throws {
        let w = try World()
        let id = try #require(try w.t.ledger.post(PostingRequest(key: "h", action: .hold(debit: w.a, credit: w.b, asset: .cny, amount: 1, expiresAt: nil))).transactionID)
        #expect(try w.t.ledger.post(PostingRequest(key: "r", action: .reverse(transactionID: id))) == .refused(.notReversible, replayed: false))
    }

    @Test func twoReversalsInOneBatchPostOnce() throws {
        let w = try World()
        let id = try #require(try w.t.ledger.post(.transfer(key: "pay", from: w.a, to: w.b, amount: 2_500)).transactionID)
        let results = try w.t.ledger.post([
            PostingRequest(key: "r1", action: .reverse(transactionID: id)),
            PostingRequest(key: "r2", action: .reverse(transactionID: id)),
        ])
        #expect(results[0].transactionID != nil)
        #expect(results[1] == .refused(.alreadyReversed, replayed: false))
    }
}

@Suite struct BatchTests {
    @Test func eachRequestStandsAlone() throws {
        let w = try World()
        let results = try w.t.ledger.post([
            .transfer(key: "1", from: w.a, to: w.b, amount: 6_000),
            .transfer(key: "2", from: w.a, to: w.b, amount: 6_000),
            .transfer(key: "3", from: w.a, to: w.b, amount: 4_000),
        ])
        #expect(results[0].transactionID != nil)
        #expect(results[1] == .refused(.exceedsCredits, replayed: false))
        #expect(results[2].transactionID != nil)
        #expect(results[2].transactionID == results[0].transactionID! + 1)
        #expect(try w.t.balance(w.a) == 0)
        #expect(try w.t.ledger.check().ok)
    }

    @Test func linkedGroupsSucceedOrFailTogether() throws {
        let w = try World()
        let results = try w.t.ledger.post([
            .transfer(key: "g1", from: w.a, to: w.b, amount: 3_000, linked: true),
            .transfer(key: "g2", from: w.b, to: w.overdraft, amount: 3_000, linked: true),
            .transfer(key: "g3", from: w.overdraft, to: w.closed, amount: 1),
            .transfer(key: "after", from: w.a, to: w.b, amount: 1_000),
        ])
        #expect(results[0] == .refused(.linkedEventFailed, replayed: false))
        #expect(results[1] == .refused(.linkedEventFailed, replayed: false))
        #expect(results[2] == .refused(.accountClosed, replayed: false))
        #expect(results[3].transactionID == 3) // two fundings before it; the failed group left no gap
        #expect(try w.t.balance(w.a) == 9_000)
        #expect(try w.t.balance(w.b) == 1_000)
        #expect(try w.t.balance(w.overdraft) == 0)
        #expect(try w.t.ledger.check().ok)

        let ok = try w.t.ledger.post([
            .transfer(key: "h1", from: w.a, to: w.b, amount: 3_000, linked: true),
            .transfer(key: "h2", from: w.b, to: w.overdraft, amount: 3_500),
        ])
        #expect(ok.allSatisfy { $0.transactionID != nil })
        #expect(try w.t.balance(w.overdraft) == 3_500)
    }

    @Test func anOpenChainIsRefused() throws {
        let w = try World()
        let results = try w.t.ledger.post([
            .transfer(key: "ok", from: w.a, to: w.b, amount: 1),
            .transfer(key: "open", from: w.a, to: w.b, amount: 1, linked: true),
        ])
        #expect(results[0].transactionID != nil)
        #expect(results[1] == .refused(.linkedEventChainOpen, replayed: false))
        #expect(try w.t.balance(w.b) == 1)
    }

    @Test func aHoldCanBePostedInItsOwnGroup() throws {
        let w = try World()
        let holdID = try w.t.transactionCount() + 1
        let results = try w.t.ledger.post([
            PostingRequest(key: "h", action: .hold(debit: w.a, credit: w.b, asset: .cny, amount: 100, expiresAt: nil), linked: true),
            PostingRequest(key: "p", action: .postHold(holdID: Int64(holdID), amount: 40)),
        ])
        #expect(results.allSatisfy { $0.transactionID != nil })
        #expect(try w.t.balance(w.b) == 40)
        #expect(try w.t.available(w.a) == 9_960)
        #expect(try w.t.ledger.check().ok)
    }
}
