import Foundation
import GRDB
import JobRunner
import Ledger

/// `campaign-settlement --date D`: vests pending points whose refund window has passed,
/// expires vested points past their expiry (soonest-to-expire first), and writes each
/// sponsor's statement for the month up to D (CSV and JSON) whose totals equal the ledger's
/// movements. Rerunning changes nothing: every posting has its own idempotency key.
public enum CampaignSettlement {
    public static func implementation(statementsDirectory: String) -> JobImplementation {
        JobImplementation(
            name: "campaign-settlement",
            steps: [VestStep(), ExpireStep(), StatementStep(directory: statementsDirectory)],
            summary: { db, context in
                let date = try context.date("date")
                let statements = try Statement.all(db, date: date)
                let encoder = JSONEncoder()
                encoder.keyEncodingStrategy = .convertToSnakeCase
                encoder.outputFormatting = [.sortedKeys]
                return try encoder.encode(["statements": statements])
            })
    }

    /// The end of business day D: points due by then are settled.
    static func cutoff(_ context: JobContext) throws -> TimestampMicros {
        try context.date("date").adding(days: 1).startMicros
    }

    struct VestStep: TypedJobStep {
        struct Checkpoint: Codable, Sendable { var lastID: Int64 }
        let name = "vest"
        let checkpointVersion = 1
        func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(lastID: 0) }
        func chunk(_ context: JobContext, db: Database, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            let rows = try Row.fetchAll(db, sql: """
                SELECT id, points_hold_id, points FROM campaign_allocations
                WHERE points_status = 'pending' AND vest_at < ? AND id > ? ORDER BY vest_at, id LIMIT ?
                """, arguments: [try cutoff(context), checkpoint.lastID, context.chunkSizeMax])
            let requests = rows.map { row in
                PostingRequest(key: "points-vest:\(row["id"] as Int64)", action: .postHold(holdID: row["points_hold_id"], amount: nil), memo: "points vested")
            }
            let results = try Ledger.postInBatches(requests, in: ledger, clock: context.clock)
            var counts = ChunkCounts(read: rows.count, done: rows.count < context.chunkSizeMax)
            for (row, result) in zip(rows, results) {
                if result.transactionID != nil {
                    try db.execute(sql: "UPDATE campaign_allocations SET points_status = 'vested' WHERE id = ?", arguments: [row["id"] as Int64])
                    counts.written += 1
                } else {
                    counts.failed += 1
                }
            }
            return (Checkpoint(lastID: rows.last?["id"] ?? checkpoint.lastID), counts)
        }
    }

    struct ExpireStep: TypedJobStep {
        struct Checkpoint: Codable, Sendable { var lastID: Int64 }
        let name = "expire"
        let checkpointVersion = 1
        func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(lastID: 0) }
        func chunk(_ context: JobContext, db: Database, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            guard let liability = try ledger.account(code: SystemAccounts.pointsLiability) else {
                throw LedgerError(.accountNotFound, "the points liability account is missing: run `qdwallet init`")
            }
            // Soonest-to-expire lot first.
            let rows = try Row.fetchAll(db, sql: """
                SELECT a.id, a.points_remaining, w.points_account_id FROM campaign_allocations a JOIN wallets w ON w.id = a.wallet_id
                WHERE a.points_status = 'vested' AND a.expires_at < ? AND a.id > ? ORDER BY a.expires_at, a.id LIMIT ?
                """, arguments: [try cutoff(context), checkpoint.lastID, context.chunkSizeMax])
            var counts = ChunkCounts(read: rows.count, done: rows.count < context.chunkSizeMax)
            for row in rows {
                let remaining: Int64 = row["points_remaining"]
                if remaining > 0 {
                    let result = try Ledger.post([.transfer(key: "points-expire:\(row["id"] as Int64)", from: row["points_account_id"], to: liability.id, amount: remaining, asset: .pts, memo: "points expired")], in: ledger, clock: context.clock)[0]
                    guard result.transactionID != nil else { counts.failed += 1; continue }
                }
                try db.execute(sql: "UPDATE campaign_allocations SET points_status = 'expired', points_remaining = 0 WHERE id = ?", arguments: [row["id"] as Int64])
                counts.written += 1
            }
            return (Checkpoint(lastID: rows.last?["id"] ?? checkpoint.lastID), counts)
        }
    }

    struct StatementStep: TypedJobStep {
        struct Checkpoint: Codable, Sendable { var written: Bool }
        let directory: String
        let name = "statements"
        let checkpointVersion = 1
        func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(written: false) }
        func chunk(_ context: JobContext, db: Database, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            let date = try context.date("date")
            let statements = try Statement.all(db, date: date)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            for statement in statements {
                let base = (directory as NSString).appendingPathComponent("\(statement.sponsor)-\(date.compact)")
                try encoder.encode(statement).write(to: URL(fileURLWithPath: base + ".json"), options: .atomic)
                try statement.csv.write(toFile: base + ".csv", atomically: true, encoding: .utf8)
            }
            return (Checkpoint(written: true), ChunkCounts(read: statements.count, written: statements.count, done: true))
        }
    }
}

/// A sponsor's settlement statement for the month up to a business day.
public struct Statement: Codable, Sendable, Hashable {
    public struct Line: Codable, Sendable, Hashable {
        public var campaignId: String
        public var payments: Int
        public var discountsFen: Int64
        public var refunds: Int
        public var refundedFen: Int64
        public var netFen: Int64
        public var pointsIssued: Int64
        public var pointsTakenBack: Int64
    }

    public var sponsor: String
    public var periodStart: String
    public var periodEnd: String
    public var lines: [Line]
    public var discountsNetFen: Int64
    /// The movement of the sponsor's ledger account in the period (debits less credits).
    public var ledgerSponsorMovementFen: Int64
    public var pointsIssued: Int64
    public var pointsVested: Int64
    public var pointsExpired: Int64
    /// The statement agrees with the ledger.
    public var agrees: Bool

    var csv: String {
        var text = "sponsor,period_start,period_end,campaign_id,payments,discounts_fen,refunds,refunded_fen,net_fen,points_issued,points_taken_back\n"
        for line in lines {
            text += "\(sponsor),\(periodStart),\(periodEnd),\(line.campaignId),\(line.payments),\(line.discountsFen),\(line.refunds),\(line.refundedFen),\(line.netFen),\(line.pointsIssued),\(line.pointsTakenBack)\n"
        }
        text += "\(sponsor),\(periodStart),\(periodEnd),TOTAL,,,,,\(discountsNetFen),\(pointsIssued),\n"
        return text
    }

    /// Every sponsor's statement for the month of `date`, up to and including it.
    public static func all(_ db: Database, date: ShanghaiCalendar.Date) throws -> [Statement] {
        let start = ShanghaiCalendar.Date(year: date.year, month: date.month, day: 1)
        let from = start.startMicros, to = date.adding(days: 1).startMicros
        let sponsors = try String.fetchAll(db, sql: "SELECT DISTINCT sponsor FROM campaign_allocations ORDER BY sponsor")
        return try sponsors.map { sponsor in
            let lines = try Row.fetchAll(db, sql: """
                SELECT campaign_id,
                    sum(CASE WHEN at >= ?1 AND at < ?2 AND discount_fen > 0 THEN 1 ELSE 0 END) AS payments,
                    sum(CASE WHEN at >= ?1 AND at < ?2 THEN discount_fen ELSE 0 END) AS discounts,
                    sum(CASE WHEN reversed_at >= ?1 AND reversed_at < ?2 AND discount_fen > 0 THEN 1 ELSE 0 END) AS refunds,
                    sum(CASE WHEN reversed_at >= ?1 AND reversed_at < ?2 THEN discount_fen ELSE 0 END) AS refunded,
                    sum(CASE WHEN at >= ?1 AND at < ?2 THEN points ELSE 0 END) AS issued,
                    sum(CASE WHEN reversed_at >= ?1 AND reversed_at < ?2 THEN points ELSE 0 END) AS taken
                FROM campaign_allocations WHERE sponsor = ?3 GROUP BY campaign_id ORDER BY campaign_id
                """, arguments: [from, to, sponsor]).map { row -> Line in
                let discounts: Int64 = row["discounts"], refunded: Int64 = row["refunded"]
                return Line(campaignId: row["campaign_id"], payments: row["payments"], discountsFen: discounts, refunds: row["refunds"], refundedFen: refunded, netFen: discounts - refunded, pointsIssued: row["issued"], pointsTakenBack: row["taken"])
            }
            // The sponsor account's movement over the same period, by recorded time.
            let movement = try Int64.fetchOne(db, sql: """
                SELECT coalesce(sum(CASE e.side WHEN 0 THEN e.amount ELSE -e.amount END), 0)
                FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
                WHERE a.code = ? AND e.recorded_at >= ? AND e.recorded_at < ?
                """, arguments: [SystemAccounts.sponsor(sponsor), from, to]) ?? 0
            let net = lines.reduce(0) { $0 + $1.netFen }
            let points = try Row.fetchOne(db, sql: """
                SELECT coalesce(sum(CASE WHEN points_status IN ('vested', 'expired') THEN points ELSE 0 END), 0) AS vested,
                       coalesce(sum(CASE WHEN points_status = 'expired' THEN points ELSE 0 END), 0) AS expired
                FROM campaign_allocations WHERE sponsor = ? AND at < ?
                """, arguments: [sponsor, to])
            return Statement(
                sponsor: sponsor, periodStart: start.iso, periodEnd: date.iso, lines: lines, discountsNetFen: net, ledgerSponsorMovementFen: movement,
                pointsIssued: lines.reduce(0) { $0 + $1.pointsIssued }, pointsVested: points?["vested"] ?? 0, pointsExpired: points?["expired"] ?? 0,
                agrees: net == movement)
        }
    }
}
