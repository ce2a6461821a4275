import Campaigns
import Feeds
import Foundation
import JobRunner
import Ledger
import Logging
import Wallet
import QDSQL

/// Everything the nightly billing job needs besides the database.
public struct NightlyBillingConfig: Sendable {
    public var billers: [Biller]
    public var feedSchema: XMLSchema {
        didSet { readAheadSchema = Self.compiledAgain(feedSchema) }
    }
    /// The feed schema compiled a second time with it (the same file, the same moment), for
    /// the thread that reads the next feed ahead while the chunk's reader validates this one:
    /// no compiled schema is used by two threads at once. Nil when it did not compile again
    /// (the file gone meanwhile): then nothing is read ahead.
    private(set) var readAheadSchema: XMLSchema?
    public var reportSchema: XMLSchema {
        didSet { reportAheadSchema = Self.compiledAgain(reportSchema) }
    }
    /// The report schema compiled a second time, for the thread that writes the next biller's
    /// report while this one is written (each report is validated as it is written, on a
    /// thread of its own). Nil when it did not compile again: then no report is written ahead.
    private(set) var reportAheadSchema: XMLSchema?
    /// The folder above Jobs/ ({root} in URL templates).
    public var root: String
    /// Where payment reports are written ({reports}).
    public var reportsDirectory: String
    /// Where feeds are downloaded to.
    public var workDirectory: String
    public var fetcher: FeedFetcher
    public var wallets: WalletService
    /// The campaigns of `Jobs/campaigns/`, evaluated for every payment.
    public var campaigns: [Campaign]
    /// The ledger's bounds; a chunk's payments are posted in as many batches as they need.
    public var ledgerLimits = LedgerLimits()

    public init(billers: [Biller], feedSchema: XMLSchema, reportSchema: XMLSchema, root: String, reportsDirectory: String, workDirectory: String, fetcher: FeedFetcher, wallets: WalletService, campaigns: [Campaign] = []) {
        self.campaigns = campaigns
        self.billers = billers.sorted { $0.code < $1.code }
        self.feedSchema = feedSchema
        self.readAheadSchema = Self.compiledAgain(feedSchema)
        self.reportSchema = reportSchema
        self.reportAheadSchema = Self.compiledAgain(reportSchema)
        self.root = root
        self.reportsDirectory = reportsDirectory
        self.workDirectory = workDirectory
        self.fetcher = fetcher
        self.wallets = wallets
    }

    static func compiledAgain(_ schema: XMLSchema) -> XMLSchema? {
        try? XMLSchema(path: schema.path)
    }

    func feedURL(_ biller: Biller, date: ShanghaiCalendar.Date, context: JobContext) -> String {
        if let override = context.parameters["feed.\(biller.code)"], !override.isEmpty { return override }
        return Biller.fill(biller.feedURL, date: date, root: root, reports: reportsDirectory)
    }
}

/// `nightly-billing`: fetch and stage each biller's feed, apply cancels, match and pay
/// bills in chunks, then write and deliver the payment reports.
public enum NightlyBilling {
    public static func implementation(_ config: NightlyBillingConfig) -> JobImplementation {
        JobImplementation(
            name: "nightly-billing",
            steps: { () -> [any JobStep] in
                let reports = ReportStep(config: config)
                return [IngestStep(config: config), CancelStep(config: config), ProcessStep(config: config, reports: reports), reports]
            }(),
            summary: { db, context in try JSONEncoder.snake.encode(try summary(db, context: context, config: config)) },
            extraParameter: { key in
                // feed.<BILLER> for a configured biller; anything else is a typo.
                let billers = config.billers.map(\.code)
                guard key.hasPrefix("feed.") else { return "it takes date, and feed.<BILLER> (--feed BILLER=URL) for \(billers.joined(separator: ", "))" }
                let code = String(key.dropFirst(5))
                return billers.contains(code) ? nil : "no biller \(code.prefix(32)) in billers.toml (billers: \(billers.joined(separator: ", ")))"
            },
            assess: { db, context in
                let store = BillStore(db)
                let runs = try store.runs(executionID: context.executionID)
                let transport: Set<String> = ["not_found", "unreachable", "timeout", "authentication", "tls", "transport", "io"]
                if runs.contains(where: { $0.status == "rejected" && transport.contains($0.errorCode ?? "") }) { return .fault }
                if runs.contains(where: { $0.status == "rejected" }) { return .breaks }
                return try store.undeliveredReports(on: try context.date("date")) > 0 ? .fault : .clean
            })
    }

    // MARK: Summary

    public struct BillerSummary: Codable, Sendable {
        public var biller: String
        public var feedId: String?
        public var status: String
        public var bills: Int
        public var paid: Int
        public var paidFen: Int64
        public var pending: Int
        public var pendingByReason: [String: Int]
        public var unmatched: Int
        public var rejectedRecords: Int
        public var cancelled: Int
        public var refunded: Int
        public var refundedFen: Int64
        /// Discounts funded by campaign sponsors on this day's autopay payments.
        public var discountFen: Int64
        public var points: Int64
        public var error: String?
        public var report: String?
        /// The version of the day's report now current (2 and up: a correction was delivered).
        public var reportVersion: Int?
    }

    public struct Summary: Codable, Sendable {
        public var date: String
        public var billers: [BillerSummary]
    }

    public static func summary(_ db: any SQLConnection, context: JobContext, config: NightlyBillingConfig) throws -> Summary {
        let date = try context.date("date")
        let store = BillStore(db)
        var runs: [String: BillStore.Run] = [:]
        for run in try store.runs(executionID: context.executionID) { runs[run.biller] = run }
        var lines: [BillerSummary] = []
        for biller in config.billers {
            let run = runs[biller.code]
            let feed = try store.feedDay(biller: biller.code, on: date)
            let totals = try store.dayTotals(biller: biller.code, on: date)
            var line = BillerSummary(biller: biller.code, feedId: try run?.feedID ?? store.feedIDs(biller: biller.code, on: date).first, status: run?.status ?? "skipped",
                                     bills: feed.staged.count + feed.billRecords, paid: 0, paidFen: totals.autopayFen, pending: 0, pendingByReason: [:], unmatched: 0,
                                     rejectedRecords: feed.rejectedRecords, cancelled: totals.cancelledCount, refunded: totals.refundedCount, refundedFen: totals.refundedFen,
                                     discountFen: totals.autopayDiscountFen, points: totals.autopayPoints, error: run?.error, report: nil)
            for group in feed.byStatus {
                switch group.status {
                case .paid: line.paid += group.count
                case .payable, .new:
                    line.pending += group.count
                    line.pendingByReason[group.reason ?? "PROCESSING", default: 0] += group.count
                case .unmatched: line.unmatched += group.count
                case .cancelled, .refunded: break
                }
            }
            if let report = try store.report(biller: biller.code, on: date) {
                line.report = report.deliveredTo ?? report.path
                line.reportVersion = report.version
            }
            lines.append(line)
        }
        return Summary(date: date.iso, billers: lines)
    }
}

extension JSONEncoder {
    static var snake: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
