import Campaigns
import Foundation
import JobRunner
import Ledger
import Wallet
import QDSQL

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
                let statements = try SponsorStatement.all(db, date: date)
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
        func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            let store = CampaignStore(db)
            let rows = try store.pendingPoints(vestingBefore: try cutoff(context), after: checkpoint.lastID, limit: context.chunkSizeMax)
            let requests = rows.map { row in
                PostingRequest(key: "points-vest:\(row.id)", action: .postHold(holdID: row.holdID, amount: nil), memo: "points vested")
            }
            let results = try Ledger.postInBatches(requests, in: ledger, clock: context.clock)
            var counts = ChunkCounts(read: rows.count, done: rows.count < context.chunkSizeMax)
            for (row, result) in zip(rows, results) {
                if result.transactionID != nil {
                    try store.markVested(allocationID: row.id)
                    counts.written += 1
                } else {
                    counts.failed += 1
                }
            }
            return (Checkpoint(lastID: rows.last?.id ?? checkpoint.lastID), counts)
        }
    }

    struct ExpireStep: TypedJobStep {
        struct Checkpoint: Codable, Sendable { var lastID: Int64 }
        let name = "expire"
        let checkpointVersion = 1
        func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(lastID: 0) }
        func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            guard let liability = try ledger.account(code: SystemAccounts.pointsLiability) else {
                throw LedgerError(.accountNotFound, "the points liability account is missing: run `qdwallet init`")
            }
            // Soonest-to-expire lot first.
            let store = CampaignStore(db)
            let rows = try store.vestedPoints(expiringBefore: try cutoff(context), after: checkpoint.lastID, limit: context.chunkSizeMax)
            let wallets = try WalletStore(db).wallets(ids: rows.map(\.walletID))
            var counts = ChunkCounts(read: rows.count, done: rows.count < context.chunkSizeMax)
            for row in rows {
                guard let wallet = wallets[row.walletID] else { continue }
                if row.remaining > 0 {
                    let result = try Ledger.post([.transfer(key: "points-expire:\(row.id)", from: wallet.pointsAccountID, to: liability.id, amount: row.remaining, asset: .pts, memo: "points expired")], in: ledger, clock: context.clock)[0]
                    guard result.transactionID != nil else { counts.failed += 1; continue }
                }
                try store.markExpired(allocationID: row.id)
                counts.written += 1
            }
            return (Checkpoint(lastID: rows.last?.id ?? checkpoint.lastID), counts)
        }
    }

    struct StatementStep: TypedJobStep {
        struct Checkpoint: Codable, Sendable { var written: Bool }
        let directory: String
        let name = "statements"
        let checkpointVersion = 1
        func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(written: false) }
        func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            let date = try context.date("date")
            let statements = try SponsorStatement.all(db, date: date)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            for statement in statements {
                let base = (directory as NSString).appendingPathComponent("\(statement.sponsor)-\(date.compact)")
                try AtomicFile.write(try encoder.encode(statement), to: base + ".json")
                try AtomicFile.write(statement.csv, to: base + ".csv")
            }
            return (Checkpoint(written: true), ChunkCounts(read: statements.count, written: statements.count, done: true))
        }
    }
}

/// A sponsor's settlement statement for the month up to a business day.
public struct SponsorStatement: Codable, Sendable, Hashable {
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
    public static func all(_ db: any SQLConnection, date: ShanghaiCalendar.Date) throws -> [SponsorStatement] {
        let start = ShanghaiCalendar.Date(year: date.year, month: date.month, day: 1)
        let from = start.startMicros, to = date.adding(days: 1).startMicros
        let store = CampaignStore(db)
        let ledger = ledgerReader(in: db)
        return try store.sponsors().map { sponsor in
            let lines = try store.periodLines(sponsor: sponsor, from: from, to: to).map { line -> Line in
                Line(campaignId: line.campaignID, payments: line.payments, discountsFen: line.discountsFen, refunds: line.refunds, refundedFen: line.refundedFen,
                     netFen: line.discountsFen - line.refundedFen, pointsIssued: line.pointsIssued, pointsTakenBack: line.pointsTakenBack)
            }
            // The sponsor account's movement over the same period, by recorded time (debits less credits).
            let movement = try ledger.account(code: SystemAccounts.sponsor(sponsor)).map { -(try ledger.movement(accountID: $0.id, recordedFrom: from, to: to)) } ?? 0
            let net = lines.reduce(0) { $0 + $1.netFen }
            let points = try store.settledPoints(sponsor: sponsor, allocatedBefore: to)
            return SponsorStatement(
                sponsor: sponsor, periodStart: start.iso, periodEnd: date.iso, lines: lines, discountsNetFen: net, ledgerSponsorMovementFen: movement,
                pointsIssued: lines.reduce(0) { $0 + $1.pointsIssued }, pointsVested: points.vested, pointsExpired: points.expired,
                agrees: net == movement)
        }
    }
}
