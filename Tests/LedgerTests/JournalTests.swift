import Foundation
import GRDB
import QDTestEngines
import Testing
@testable import Ledger

@Suite struct JournalTests {
    @Test(arguments: [
        "UPDATE ledger_transactions SET memo = 'x'",
        "DELETE FROM ledger_transactions",
        "UPDATE ledger_entries SET amount = amount + 1",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_idempotency SET transaction_id = 1",
        "DELETE FROM ledger_idempotency",
        "UPDATE ledger_holds SET amount = 1",
        "DELETE FROM ledger_hold_resolutions",
        "DELETE FROM ledger_account_rule_changes",
    ])
    func databaseRefusesEditsOfTheJournal(sql: String) throws {
        let w = try World()
        let hold = try #require(try w.t.ledger.post(PostingRequest(key: "h", action: .hold(debit: w.a, credit: w.b, asset: .cny, amount: 1, expiresAt: nil))).transactionID)
        _ = try w.t.ledger.post(PostingRequest(key: "v", action: .voidHold(holdID: hold)))
        #expect {
            try w.t.execute(sql)
        } throws: { error in
            "\(error)".contains("append-only")
        }
        #expect(try w.t.ledger.check().ok)
    }

    /// PostgreSQL also has TRUNCATE, which skips row triggers: the journal refuses it too.
    @Test(.enabled(if: TestEngine.onPostgres), arguments: ["ledger_transactions", "ledger_entries", "ledger_idempotency", "ledger_account_rule_changes"])
    func theServerRefusesATruncateOfTheJournal(table: String) throws {
        let w = try World()
        #expect {
            try w.t.execute("TRUNCATE \(table) CASCADE")
        } throws: { error in
            "\(error)".contains("append-only")
        }
        #expect(try w.t.ledger.check().ok)
        #expect(try w.t.transactionCount() > 0)
    }

    @Test func balanceAtAnyPastTime() throws {
        let t = try TestLedger()
        let (a, bank) = try t.fundedWallet("a", fen: 0)
        var times: [TimestampMicros] = []
        for i in 1...5 {
            t.clock.advance(micros: 1_000_000)
            times.append(t.clock.nowMicros())
            _ = try t.ledger.post(.transfer(key: "t\(i)", from: bank, to: a, amount: Int64(i) * 100))
        }
        #expect(try t.ledger.balance(accountID: a, asOf: TestLedger.start) == 0)
        #expect(try t.ledger.balance(accountID: a, asOf: times[0]) == 100)
        #expect(try t.ledger.balance(accountID: a, asOf: times[0] + 999_999) == 100)
        #expect(try t.ledger.balance(accountID: a, asOf: times[2]) == 600)
        #expect(try t.ledger.balance(accountID: a, asOf: times[4]) == 1_500)
        // A system account too (with many writers its entries carry no running balance; its
        // balance then is the sum of its entries until then).
        #expect(try t.ledger.balance(accountID: bank, asOf: TestLedger.start) == 0)
        #expect(try t.ledger.balance(accountID: bank, asOf: times[2]) == -600)
        #expect(try t.ledger.balance(accountID: bank, asOf: times[4] + 1) == -1_500)
        let entries = try t.ledger.entries(accountID: a, limit: 2)
        #expect(entries.map(\.accountSeq) == [5, 4])
        #expect(entries.map(\.balanceAfter) == [1_500, 1_000])
        let older = try t.ledger.entries(accountID: a, beforeSeq: 4, limit: 10)
        #expect(older.map(\.accountSeq) == [3, 2, 1])
    }

    @Test func recordedAndEffectiveTimesAreSeparate() throws {
        let t = try TestLedger()
        let (a, bank) = try t.fundedWallet("a", fen: 0)
        let businessDay = TestLedger.start - 86_400_000_000
        let id = try #require(try t.ledger.post(PostingRequest(key: "late", action: .transfer(legs: [.debit(bank, 1), .credit(a, 1)]), effectiveAt: businessDay)).transactionID)
        let (record, _) = try #require(try t.ledger.transaction(id: id))
        #expect(record.effectiveAt == businessDay)
        #expect(record.recordedAt == TestLedger.start)
    }

    /// One writer at a time (SQLite): the journal's recorded time never goes backwards. With
    /// many writers (PostgreSQL) each transaction records its own clock's time, and the order
    /// of the journal is the seals'.
    @Test(.enabled(if: !TestEngine.onPostgres)) func recordedTimeNeverGoesBackwards() throws {
        let t = try TestLedger()
        let (a, bank) = try t.fundedWallet("a", fen: 0)
        _ = try t.ledger.post(.transfer(key: "1", from: bank, to: a, amount: 1))
        t.clock.set(TestLedger.start - 10_000_000)
        let id = try #require(try t.ledger.post(.transfer(key: "2", from: bank, to: a, amount: 1)).transactionID)
        #expect(try t.ledger.transaction(id: id)?.0.recordedAt == TestLedger.start)
        #expect(try t.ledger.check().ok)
    }

    @Test func openingAnAccountIsRetrySafe() throws {
        let t = try TestLedger()
        let spec = AccountSpec(code: "biller:QD-WATER", asset: .cny, kind: .billerSettlement, rules: .unrestricted)
        let first = try t.ledger.openAccount(spec)
        #expect(try t.ledger.openAccount(spec).id == first.id)
        #expect {
            try t.ledger.openAccount(AccountSpec(code: "biller:QD-WATER", asset: .pts, kind: .billerSettlement, rules: .unrestricted))
        } throws: { ($0 as? LedgerError)?.code == .accountCodeTaken }
        #expect { try t.ledger.openAccount(AccountSpec(code: "", asset: .cny, kind: .suspense, rules: .unrestricted)) } throws: { ($0 as? LedgerError)?.code == .invalidAccount }
        #expect(try t.ledger.account(code: "biller:QD-WATER").kind == .billerSettlement)
        #expect { try t.ledger.account(code: "nope") } throws: { ($0 as? LedgerError)?.code == .accountNotFound }
    }

    /// SQLite only: on PostgreSQL the server owns the files.
    @Test(.enabled(if: !TestEngine.onPostgres)) func databaseFileIsPrivate() throws {
        let t = try TestLedger()
        // Write something, so that SQLite's -wal and -shm files exist beside the database.
        _ = try t.fundedWallet("private", fen: 100)
        var checked = 0
        for path in [t.path, t.path + "-wal", t.path + "-shm"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(path)")
            checked += 1
        }
        #expect(checked == 3)
    }
}

@Suite struct CheckTests {
    /// Tampering needs the append-only triggers out of the way, as an attacker with the file would.
    func tamper(_ t: TestLedger, _ sql: String) throws {
        try t.dropJournalTriggers()
        try t.executeAround(sql)
    }

    func busyWorld() throws -> World {
        let w = try World()
        for i in 0..<20 {
            _ = try w.t.ledger.post(.transfer(key: "p\(i)", from: w.a, to: w.b, amount: 100 + Int64(i)))
        }
        _ = try w.t.ledger.post(PostingRequest(key: "h", action: .hold(debit: w.a, credit: w.b, asset: .cny, amount: 50, expiresAt: nil)))
        return w
    }

    @Test func aCleanLedgerPasses() throws {
        let w = try busyWorld()
        let report = try w.t.ledger.check()
        #expect(report.ok)
        #expect(report.violations.isEmpty)
        #expect(report.transactions == 23)
        #expect(report.entries == 44)
        let cny = try #require(report.trialBalance.first { $0.asset == .cny })
        #expect(cny.debitsPosted == cny.creditsPosted)
        #expect(cny.debitsPending == 50 && cny.creditsPending == 50)
    }

    @Test(arguments: [
        ("UPDATE ledger_transactions SET memo = 'edited' WHERE id = 5", "hash_chain_broken"),
        // The newest row too: no later row re-hashes it, so the check must recompute its own.
        ("UPDATE ledger_transactions SET memo = 'edited' WHERE id = (SELECT max(id) FROM ledger_transactions)", "hash_chain_broken"),
        ("UPDATE ledger_transactions SET effective_at = effective_at + 1 WHERE id = (SELECT max(id) FROM ledger_transactions)", "hash_chain_broken"),
        ("UPDATE ledger_entries SET amount = amount + 1 WHERE transaction_id = 7 AND leg = 1", "unbalanced_transaction"),
        ("UPDATE ledger_entries SET amount = amount + 1 WHERE transaction_id = 7", "hash_chain_broken"),
        ("DELETE FROM ledger_entries WHERE transaction_id = 9", "account_totals_mismatch"),
        // A lost row: a gap in the ids with one writer; with many (ids from a sequence may
        // skip), the seal that names it.
        ("DELETE FROM ledger_transactions WHERE id = 10", TestEngine.onPostgres ? "sealed_transaction_missing" : "journal_gap"),
        ("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE code = 'b'", "asset_does_not_sum_to_zero"),
        ("UPDATE ledger_accounts SET debits_pending = 0 WHERE code = 'a'", "pending_totals_mismatch"),
        ("UPDATE ledger_accounts SET debits_posted = debits_posted + 20000, credits_posted = credits_posted + 20000 WHERE code = 'a'", "account_totals_mismatch"),
        ("DELETE FROM ledger_holds", "missing_hold"),
        ("UPDATE ledger_accounts SET entry_seq = entry_seq + 1 WHERE code = 'a'", "entry_sequence_mismatch"),
    ])
    func tamperingIsFound(sql: String, code: String) throws {
        let w = try busyWorld()
        try tamper(w.t, sql)
        let report = try w.t.ledger.check()
        #expect(!report.ok)
        #expect(report.violations.contains { $0.code == code }, "\(report.violations)")
    }

    /// The accounts are checked in their own pass, streamed in id order with their entries
    /// (none held in memory): what it finds names the account, and the entry's transaction.
    /// An entry of an account that does not exist is found wherever its id falls: before the
    /// first account, between two, after the last.
    @Test(arguments: [
        ("SET account_id = 999999", "unknown_account", true),
        ("SET account_id = 0", "unknown_account", true),
        ("SET asset = 'PTS'", "asset_mismatch", false),
        ("SET balance_after = balance_after + 1", "running_balance_mismatch", false),
        ("SET account_seq = account_seq + 100", "entry_sequence_broken", false),
    ])
    func anEntryTamperedWithIsFoundOnItsAccount(change: String, code: String, unknown: Bool) throws {
        let w = try busyWorld()
        // The same request again: the ledger answers with the transaction it made.
        let payment = try #require(try w.t.ledger.post(.transfer(key: "p3", from: w.a, to: w.b, amount: 103)).transactionID)
        try tamper(w.t, "UPDATE ledger_entries \(change) WHERE transaction_id = \(payment) AND account_id = \(w.a)")
        let report = try w.t.ledger.check()
        let found = report.violations.filter { $0.code == code }
        #expect(!found.isEmpty, "\(report.violations)")
        if unknown {
            #expect(found.map(\.transactionID) == [payment])
            #expect(found.map(\.accountID) == [change.hasSuffix("= 0") ? 0 : 999999])
            // The account lost the entry: its totals no longer match.
            #expect(report.violations.contains { $0.code == "account_totals_mismatch" && $0.accountID == w.a })
        } else {
            #expect(found.allSatisfy { $0.accountID == w.a }, "\(found)")
            // Where the order of an account's entries is by sequence (PostgreSQL), the entry
            // moved to the end is reported there, after the one it left a gap before.
            #expect(found.contains { $0.transactionID == payment }, "\(found)")
        }
        // Every other account still checks: nothing else is reported on them.
        #expect(report.violations.allSatisfy { $0.accountID == nil || $0.accountID == w.a || $0.accountID == 0 || $0.accountID == 999999 }, "\(report.violations)")
    }

    /// An open hold's accounts carry its amount as pending; a hold that names an account that
    /// does not exist is found, and the account that lost it reports its pending.
    @Test func anOpenHoldOfAnAccountThatDoesNotExistIsFound() throws {
        let w = try busyWorld()
        try tamper(w.t, "UPDATE ledger_holds SET credit_account_id = 999999")
        let report = try w.t.ledger.check()
        #expect(report.violations.contains { $0.code == "unknown_account" && $0.accountID == 999999 }, "\(report.violations)")
        #expect(report.violations.contains { $0.code == "pending_totals_mismatch" && $0.accountID == w.b }, "\(report.violations)")
        #expect(!report.violations.contains { $0.code == "pending_totals_mismatch" && $0.accountID == w.a }, "\(report.violations)")
    }

    /// Holds ended each way beside the busy world's open one: one posted in part, one voided.
    struct Holds {
        let w: World
        let open, posted, post, voided, void, transfer: TransactionID
        /// An id after the journal's last.
        var invented: TransactionID { transfer + 1_000 }

        func id(_ name: String) -> TransactionID {
            switch name {
            case "post": post
            case "void": void
            case "transfer": transfer
            case "before": 0
            default: invented
            }
        }
    }

    func holdsWorld() throws -> Holds {
        let w = try busyWorld()
        // The busy world's open hold: its request again answers with it.
        let open = try #require(try w.t.ledger.post(PostingRequest(key: "h", action: .hold(debit: w.a, credit: w.b, asset: .cny, amount: 50, expiresAt: nil))).transactionID)
        let posted = try #require(try w.t.ledger.post(PostingRequest(key: "h2", action: .hold(debit: w.a, credit: w.b, asset: .cny, amount: 70, expiresAt: nil))).transactionID)
        let voided = try #require(try w.t.ledger.post(PostingRequest(key: "h3", action: .hold(debit: w.a, credit: w.b, asset: .cny, amount: 90, expiresAt: nil))).transactionID)
        let post = try #require(try w.t.ledger.post(PostingRequest(key: "h2-post", action: .postHold(holdID: posted, amount: 30))).transactionID)
        let void = try #require(try w.t.ledger.post(PostingRequest(key: "h3-void", action: .voidHold(holdID: voided))).transactionID)
        let transfer = try #require(try w.t.ledger.post(.transfer(key: "after", from: w.a, to: w.b, amount: 5)).transactionID)
        return Holds(w: w, open: open, posted: posted, post: post, voided: voided, void: void, transfer: transfer)
    }

    /// Only the hold no resolution names is pending: 50 on each side, not 50 + 70 + 90.
    @Test func onlyTheOpenHoldIsPending() throws {
        let h = try holdsWorld()
        let report = try h.w.t.ledger.check()
        #expect(report.ok, "\(report.violations)")
        let cny = try #require(report.trialBalance.first { $0.asset == .cny })
        #expect(cny.debitsPending == 50 && cny.creditsPending == 50)
        #expect(try h.w.t.ledger.account(id: h.w.a).debitsPending == 50)
        #expect(try h.w.t.ledger.account(id: h.w.b).creditsPending == 50)
    }

    /// With no transaction at all, a row of the journal's other tables still has none to be
    /// handed to: it is found all the same.
    @Test func theRowsOfAnEmptyJournalAreFound() throws {
        let t = try TestLedger()
        let (x, y) = (try t.account("x"), try t.account("y"))
        #expect(try t.ledger.check().ok)
        try tamper(t, "INSERT INTO ledger_entries (transaction_id, leg, account_id, asset, side, amount, balance_after, account_seq, recorded_at) VALUES (1, 0, \(x), 'CNY', 0, 5, -5, 1, 0)")
        try tamper(t, "INSERT INTO ledger_holds (id, debit_account_id, credit_account_id, asset, amount, expires_at) VALUES (2, \(x), \(y), 'CNY', 7, NULL)")
        let report = try t.ledger.check()
        #expect(report.violations.filter { $0.code == "orphan_entry" }.map(\.transactionID) == [1], "\(report.violations)")
        #expect(report.violations.filter { $0.code == "orphan_hold" }.map(\.transactionID) == [2], "\(report.violations)")
        #expect(report.entries == 1)
    }

    /// Holds of amounts no account could store (a journal written around the ledger: the
    /// schema bounds an amount only below) are summed in 128 bits: the accounts they name are
    /// found with pending that does not match, the check does not end on the engine's overflow.
    @Test func heldAmountsPastSixtyFourBitsAreAMismatchNotAnError() throws {
        let h = try holdsWorld()
        let second = try #require(try h.w.t.ledger.post(PostingRequest(key: "h4", action: .hold(debit: h.w.a, credit: h.w.b, asset: .cny, amount: 60, expiresAt: nil))).transactionID)
        try tamper(h.w.t, "UPDATE ledger_holds SET amount = \(Int64.max) WHERE id IN (\(h.open), \(second))")
        let report = try h.w.t.ledger.check()
        let pending = report.violations.filter { $0.code == "pending_totals_mismatch" }
        #expect(pending.compactMap(\.accountID).sorted() == [h.w.a, h.w.b].sorted(), "\(report.violations)")
        // Two of Int64.max: 2^64 - 2, which no Int64 holds.
        #expect(pending.allSatisfy { $0.message.contains("18446744073709551614") }, "\(pending)")
    }

    /// A transaction is reversed once (the journal's unique index of the reversals by what
    /// they name refuses a second). A journal written around it with a second reversal is
    /// found on that second one alone, through the reversals in the order of what they name.
    @Test func aTransactionReversedTwiceIsFoundOnTheSecondReversal() throws {
        let w = try busyWorld()
        let original = try #require(try w.t.ledger.post(.transfer(key: "r", from: w.a, to: w.b, amount: 10)).transactionID)
        let first = try #require(try w.t.ledger.post(PostingRequest(key: "r-undo", action: .reverse(transactionID: original))).transactionID)
        // The same movement as the reversal: made one, only the journal's kinds disagree.
        let second = try #require(try w.t.ledger.post(.transfer(key: "r-again", from: w.b, to: w.a, amount: 10)).transactionID)
        #expect(try w.t.ledger.check().ok)
        try w.t.execute("DROP INDEX ledger_transactions_one_reversal")
        try tamper(w.t, "UPDATE ledger_transactions SET kind = 'reversal', ref_id = \(original) WHERE id = \(second)")
        let report = try w.t.ledger.check()
        #expect(report.violations.filter { $0.code == "reversed_twice" }.map(\.transactionID) == [second], "\(report.violations)")
        #expect(!report.violations.contains { $0.transactionID == first && $0.code != "hash_chain_broken" }, "\(report.violations)")
    }

    /// Which holds are open rests on the resolution rows; each row must agree with the
    /// journal's transaction that resolved the hold, both ways. Every way a row can be
    /// removed, moved or invented is found on the transaction it concerns, and on the
    /// accounts whose pending it changes.
    @Test(arguments: [
        // The row removed: the posted hold looks open again.
        ("remove", "hold_not_open", "post", true),
        // The row moved to the open hold: that one looks resolved, the voided one open.
        ("move to the open hold", "hold_not_open", "void", true),
        // The row made to name a transfer.
        // (Pending unchanged: the row still names the voided hold.)
        ("name a transfer", "hold_resolution_orphaned", "transfer", false),
        ("name a transfer", "hold_not_open", "void", false),
        // A row naming a transaction the journal lacks, after the last one.
        ("invent", "hold_resolution_orphaned", "invented", true),
        // A hold row on a transfer.
        ("hold on a transfer", "unexpected_hold", "transfer", true),
        // An entry of a transaction after the last one.
        ("entry after the last", "orphan_entry", "invented", false),
        // A hold row of no transaction, after the last and before the first: an open hold
        // the journal does not hold.
        ("hold after the last", "orphan_hold", "invented", true),
        ("hold before the first", "orphan_hold", "before", true),
    ])
    func aResolutionRowThatDisagreesWithTheJournalIsFound(change: String, code: String, on transaction: String, pendingChanges: Bool) throws {
        let h = try holdsWorld()
        let sql = switch change {
        case "remove": "DELETE FROM ledger_hold_resolutions WHERE hold_id = \(h.posted)"
        case "move to the open hold": "UPDATE ledger_hold_resolutions SET hold_id = \(h.open) WHERE hold_id = \(h.voided)"
        case "name a transfer": "UPDATE ledger_hold_resolutions SET transaction_id = \(h.transfer) WHERE hold_id = \(h.voided)"
        case "invent": "INSERT INTO ledger_hold_resolutions (hold_id, transaction_id, outcome, amount_posted) VALUES (\(h.open), \(h.invented), 'voided', 0)"
        case "hold after the last", "hold before the first": "INSERT INTO ledger_holds (id, debit_account_id, credit_account_id, asset, amount, expires_at) VALUES (\(h.id(transaction)), \(h.w.a), \(h.w.b), 'CNY', 7, NULL)"
        case "hold on a transfer": "INSERT INTO ledger_holds (id, debit_account_id, credit_account_id, asset, amount, expires_at) VALUES (\(h.transfer), \(h.w.a), \(h.w.b), 'CNY', 7, NULL)"
        default: "INSERT INTO ledger_entries (transaction_id, leg, account_id, asset, side, amount, balance_after, account_seq, recorded_at) VALUES (\(h.invented), 0, \(h.w.a), 'CNY', 0, 5, 0, 0, 0)"
        }
        try tamper(h.w.t, sql)
        let report = try h.w.t.ledger.check()
        #expect(report.violations.contains { $0.code == code && $0.transactionID == h.id(transaction) }, "\(report.violations)")
        // The accounts' stored pending no longer matches the holds left open, or still does.
        let pending = report.violations.filter { $0.code == "pending_totals_mismatch" }.compactMap(\.accountID)
        #expect(pending.sorted() == (pendingChanges ? [h.w.a, h.w.b].sorted() : []), "\(report.violations)")
    }

    @Test func aRuleViolationIsFound() throws {
        let w = try busyWorld()
        // Rules are data: tighten one behind the ledger's back.
        try w.t.execute("UPDATE ledger_accounts SET overdraft_limit = 0 WHERE code = 'overdraft'")
        try w.t.execute("UPDATE ledger_accounts SET credits_must_not_exceed_debits = 1 WHERE code = 'b'")
        let report = try w.t.ledger.check()
        #expect(report.violations.contains { $0.code == "rule_violated" && $0.accountID == w.b })
    }
}
