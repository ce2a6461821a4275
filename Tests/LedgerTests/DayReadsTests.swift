import Foundation
import QDSQL
import QDTestEngines
import Testing
@testable import Ledger

/// What the reconciliation reads of a day's journal: the transactions effective that day (its
/// payments among them), a page at a time, and what each biller's account moved. Both through the index of the day a
/// transaction is effective (`ledger-transactions-by-effective-day`): the cost follows the day,
/// never the months kept before it.
@Suite struct DayReadsTests {
    static let day = TestLedger.start
    static let dayMicros: TimestampMicros = 86_400_000_000

    /// A journal around 2026-11-27 (Shanghai): payments (`bill:` keys) effective at several
    /// times of the day, two or three sharing one time as a night's payments do, written out of
    /// their effective order; payments of the day before and the day after; and other
    /// transactions of the day. Returns the day's transactions in (effective time, id) order.
    func journal(_ t: TestLedger) throws -> (day: [(id: TransactionID, key: String)], biller: AccountID, other: AccountID, idle: AccountID) {
        let bank = try t.account("bank", .unrestricted, kind: .bankClearing)
        let biller = try t.account("biller", .unrestricted, kind: .billerSettlement)
        let other = try t.account("other", .unrestricted, kind: .billerSettlement)
        let idle = try t.account("idle", .unrestricted, kind: .billerSettlement)
        let day = Self.day, end = Self.day + Self.dayMicros
        let writes: [(key: String, at: TimestampMicros, to: AccountID, fen: Int64)] = [
            ("bill:7", day + 3_600_000_000, biller, 700),
            ("bill:1", day, biller, 100),
            ("other:1", day, biller, 50_000),
            ("bill:2", day, other, 200),
            ("bill:before", day - 1, biller, 900_000),
            ("bill:8", day + 3_600_000_000, other, 800),
            ("bill:3", day, biller, 300),
            ("bills:1", day, biller, 70_000),
            ("xbill:1", day, biller, 80_000),
            ("bill:last", end - 1, other, 9),
            ("bill:after", end, biller, 600_000),
            ("bill:9", day + 3_600_000_000, biller, 1_000),
        ]
        var written: [(id: TransactionID, key: String, at: TimestampMicros)] = []
        for w in writes {
            let result = try t.ledger.post(PostingRequest(key: w.key, action: .transfer(legs: [.debit(bank, w.fen), .credit(w.to, w.fen)]), effectiveAt: w.at))
            written.append((try #require(result.transactionID), w.key, w.at))
        }
        // A refund of the day: the biller's account debited.
        let refund = try t.ledger.post(PostingRequest(key: "refund:1", action: .transfer(legs: [.debit(biller, 40), .credit(bank, 40)]), effectiveAt: day + 60_000_000))
        written.append((try #require(refund.transactionID), "refund:1", day + 60_000_000))
        let inDay = written.filter { $0.at >= day && $0.at < end }
            .sorted { ($0.at, $0.id) < ($1.at, $1.id) }
            .map { ($0.id, $0.key) }
        return (inDay, biller, other, idle)
    }

    @Test func aDaysTransactionsAreReadInPagesEachOnceInTheOrderOfTheirTime() throws {
        let t = try TestLedger()
        let (expected, _, _, _) = try journal(t)
        #expect(expected.map(\.key) == ["bill:1", "other:1", "bill:2", "bill:3", "bills:1", "xbill:1", "refund:1", "bill:7", "bill:8", "bill:9", "bill:last"])
        for limit in [1, 2, 3, 6, 11, 100] {
            var read: [(id: TransactionID, key: String)] = []
            var after: JournalPosition?
            var pages = 0
            // Bounded: a page that does not move on would otherwise be read forever.
            while pages <= expected.count + 1 {
                let page = try t.store.read { tx in
                    try tx.transactions(effectiveFrom: Self.day, to: Self.day + Self.dayMicros, after: after, limit: limit)
                }
                pages += 1
                #expect(page.count <= limit)
                read += page.map { ($0.id, $0.key) }
                guard page.count == limit, let last = page.last else { break }
                after = JournalPosition(effectiveAt: last.effectiveAt, id: last.id)
            }
            #expect(read.map(\.id) == expected.map(\.id), "pages of \(limit)")
            #expect(read.map(\.key) == expected.map(\.key), "pages of \(limit)")
            #expect(pages == expected.count / limit + 1, "pages of \(limit)")
        }
        // A position before the day starts at the day; one at its end reads nothing.
        let early = try t.store.read { try $0.transactions(effectiveFrom: Self.day, to: Self.day + Self.dayMicros, after: JournalPosition(effectiveAt: Self.day - 5, id: 999), limit: 2) }
        #expect(early.map(\.key) == ["bill:1", "other:1"])
        let past = try t.store.read { try $0.transactions(effectiveFrom: Self.day, to: Self.day + Self.dayMicros, after: JournalPosition(effectiveAt: Self.day + Self.dayMicros, id: 0), limit: 2) }
        #expect(past.isEmpty)
    }

    /// Credits less debits of each account asked for, in the transactions effective in the day
    /// alone; an account that did not move is 0.
    @Test func whatEachAccountMovedInADay() throws {
        let t = try TestLedger()
        let (_, biller, other, idle) = try journal(t)
        let moved = try t.store.read { try $0.movements(accountIDs: [biller, other, idle, biller], effectiveFrom: Self.day, to: Self.day + Self.dayMicros) }
        #expect(moved == [biller: 100 + 50_000 + 300 + 70_000 + 80_000 + 700 + 1_000 - 40, other: 200 + 800 + 9, idle: 0])
        let before = try t.store.read { try $0.movements(accountIDs: [biller, other], effectiveFrom: Self.day - Self.dayMicros, to: Self.day) }
        #expect(before == [biller: 900_000, other: 0])
        let none = try t.store.read { try $0.movements(accountIDs: [], effectiveFrom: Self.day, to: Self.day + Self.dayMicros) }
        #expect(none.isEmpty)
    }

    /// The plans: each read starts from the index of the day, never from the journal's first
    /// transaction or from an account's every entry, and pages in the index's order without a sort
    /// (SQLite keeps the written join order; PostgreSQL's plan is asked with sequential and
    /// bitmap scans priced out).
    @Test func theDaysReadsGoThroughTheIndexOfTheDay() throws {
        let t = try TestLedger()
        _ = try journal(t)
        let dialect: SQLDialect = t.postgres == nil ? .sqlite : .postgres
        func plan(_ text: String, _ binds: [SQLValue]) throws -> [String] {
            try t.store.database.write { db in
                if dialect == .postgres {
                    // A few test rows: a bitmap read and a sort would cost as little.
                    _ = try db.run("SET LOCAL enable_seqscan = off", [])
                    _ = try db.run("SET LOCAL enable_bitmapscan = off", [])
                    return try db.all("EXPLAIN " + text, binds) { try $0.text(0) }
                }
                return try db.all("EXPLAIN QUERY PLAN " + text, binds) { try $0.text(3) }
            }
        }
        let page = try plan(LedgerSession.Query.transactionsOfDayAfter.sql(dialect), [.integer(Self.day), .integer(0), .integer(Self.day + Self.dayMicros), .integer(10)])
        var plans = [page]
        if dialect == .sqlite {
            plans.append(try plan(LedgerSession.Query.transactionsLaterInDay.sql(dialect), [.integer(Self.day), .integer(Self.day + Self.dayMicros), .integer(10)]))
        } else {
            // The pair is one key of the seek.
            #expect(page.contains { $0.contains("Index Cond: ((ROW(effective_at, id) > ROW(") }, "\(page.joined(separator: " / "))")
        }
        for p in plans {
            #expect(p.contains { $0.contains("ledger_transactions_by_effective") }, "\(p)")
            #expect(!p.contains { $0.contains("SCAN ledger_transactions") || $0.contains("Seq Scan") || $0.contains("TEMP B-TREE FOR ORDER BY") || $0.contains("Sort") }, "\(p.joined(separator: " / "))")
        }
        if dialect == .sqlite {
            // The time and the id are both keys of the seek: a page starts where the last ended.
            #expect(page.contains { $0.contains("(effective_at=? AND id>?)") }, "\(page)")
            let moved = try plan(LedgerSession.movementsSQL(accounts: "?,?"), [.integer(Self.day), .integer(Self.day + Self.dayMicros), .integer(2), .integer(3)])
            #expect(moved.first?.contains("SEARCH t USING COVERING INDEX ledger_transactions_by_effective") == true, "\(moved)")
            #expect(moved.contains { $0.contains("SEARCH e USING PRIMARY KEY (transaction_id=?)") }, "\(moved)")
            #expect(!moved.contains { $0.contains("ledger_entries_by_account") }, "\(moved)")
        }
    }
}
