import Campaigns
import Feeds
import Foundation
import GRDB
import JobRunner
import Ledger
import Logging
import Wallet

/// Everything the nightly billing job needs besides the database.
public struct NightlyBillingConfig: Sendable {
    public var billers: [Biller]
    public var feedSchema: XMLSchema
    public var reportSchema: XMLSchema
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
        self.reportSchema = reportSchema
        self.root = root
        self.reportsDirectory = reportsDirectory
        self.workDirectory = workDirectory
        self.fetcher = fetcher
        self.wallets = wallets
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
            steps: [IngestStep(config: config), CancelStep(config: config), ProcessStep(config: config), ReportStep(config: config)],
            summary: { db, context in try JSONEncoder.snake.encode(try summary(db, context: context, config: config)) },
            extraParameter: { key in
                // feed.<BILLER> for a configured biller; anything else is a typo.
                let billers = config.billers.map(\.code)
                guard key.hasPrefix("feed.") else { return "it takes date, and feed.<BILLER> (--feed BILLER=URL) for \(billers.joined(separator: ", "))" }
                let code = String(key.dropFirst(5))
                return billers.contains(code) ? nil : "no biller \(code.prefix(32)) in billers.toml (billers: \(billers.joined(separator: ", ")))"
            },
            assess: { db, context in
                let statuses = try Row.fetchAll(db, sql: "SELECT status, error_code FROM billing_runs WHERE execution_id = ?", arguments: [context.executionID])
                let transport: Set<String> = ["not_found", "unreachable", "timeout", "authentication", "tls", "transport", "io"]
                if statuses.contains(where: { ($0["status"] as String) == "rejected" && transport.contains($0["error_code"] as String? ?? "") }) { return .fault }
                if statuses.contains(where: { ($0["status"] as String) == "rejected" }) { return .breaks }
                let date = try context.date("date")
                let undelivered = try Int.fetchOne(db, sql: "SELECT count(*) FROM payment_reports WHERE business_date = ? AND delivered_at IS NULL", arguments: [date.iso]) ?? 0
                return undelivered > 0 ? .fault : .clean
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

    public static func summary(_ db: Database, context: JobContext, config: NightlyBillingConfig) throws -> Summary {
        let date = try context.date("date")
        var lines: [BillerSummary] = []
        for biller in config.billers {
            let run = try Row.fetchOne(db, sql: "SELECT * FROM billing_runs WHERE execution_id = ? AND biller = ?", arguments: [context.executionID, biller.code])
            let feedIDs = try String.fetchAll(db, sql: "SELECT feed_id FROM feeds WHERE biller = ? AND business_date = ?", arguments: [biller.code, date.iso])
            let shownFeedID = try String.fetchOne(db, sql: "SELECT \(FeedIngest.shown("feed_id")) FROM feeds WHERE biller = ? AND business_date = ? LIMIT 1", arguments: [biller.code, date.iso])
            var line = BillerSummary(biller: biller.code, feedId: run?["feed_id"] ?? shownFeedID, status: run?["status"] ?? "skipped", bills: 0, paid: 0, paidFen: 0, pending: 0, pendingByReason: [:], unmatched: 0, rejectedRecords: 0, cancelled: 0, refunded: 0, refundedFen: 0, discountFen: 0, points: 0, error: run?["error"], report: nil)
            for feed in feedIDs {
                for row in try Row.fetchAll(db, sql: "SELECT status, reason, count(*) AS n, coalesce(sum(due_fen), 0) AS fen FROM bills WHERE feed_id = ? GROUP BY status, reason", arguments: [feed]) {
                    let n: Int = row["n"]
                    line.bills += n
                    switch row["status"] as String {
                    case "paid": line.paid += n
                    case "payable", "new":
                        line.pending += n
                        line.pendingByReason[row["reason"] ?? "PROCESSING", default: 0] += n
                    case "unmatched": line.unmatched += n
                    default: break
                    }
                }
                line.rejectedRecords += try Int.fetchOne(db, sql: "SELECT count(*) FROM feed_records WHERE feed_id = ? AND outcome IN ('rejected', 'duplicate_in_feed')", arguments: [feed]) ?? 0
                line.bills += try Int.fetchOne(db, sql: "SELECT count(*) FROM feed_records WHERE feed_id = ? AND kind = 'bill'", arguments: [feed]) ?? 0
            }
            let autopay = try Row.fetchOne(db, sql: "SELECT coalesce(sum(paid_fen), 0) AS fen, coalesce(sum(discount_fen), 0) AS discount, coalesce(sum(points), 0) AS points FROM bills WHERE biller = ? AND paid_business_date = ? AND paid_via = 'autopay'", arguments: [biller.code, date.iso])
            line.paidFen = autopay?["fen"] ?? 0
            line.discountFen = autopay?["discount"] ?? 0
            line.points = autopay?["points"] ?? 0
            line.cancelled = try Int.fetchOne(db, sql: "SELECT count(*) FROM bills WHERE biller = ? AND cancelled_business_date = ?", arguments: [biller.code, date.iso]) ?? 0
            let refunds = try Row.fetchOne(db, sql: "SELECT count(*) AS n, coalesce(sum(paid_fen), 0) AS fen FROM bills WHERE biller = ? AND refunded_business_date = ?", arguments: [biller.code, date.iso])
            line.refunded = refunds?["n"] ?? 0
            line.refundedFen = refunds?["fen"] ?? 0
            if let report = try Row.fetchOne(db, sql: "SELECT coalesce(delivered_to, path), version FROM payment_reports WHERE biller = ? AND business_date = ?", arguments: [biller.code, date.iso]) {
                line.report = report[0]
                line.reportVersion = report[1]
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

// MARK: Ingest

/// One chunk per biller: the feed is fetched outside the transaction, then staged whole in
/// the chunk's transaction, or rejected whole with its reason.
struct IngestStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable { var next: Int }
    struct Fetched: Codable { var path: String?; var errorCode: String?; var error: String? }

    let config: NightlyBillingConfig
    let name = "ingest"
    let checkpointVersion = 1

    func start(_ context: JobContext) throws -> Checkpoint {
        _ = try context.date("date")
        return Checkpoint(next: 0)
    }

    func estimatedTotal(_ context: JobContext, db: Database) throws -> Int? { config.billers.count }

    func beforeChunk(_ context: JobContext, checkpoint: Data) throws -> Data? {
        let position = try JSONDecoder().decode(Checkpoint.self, from: checkpoint)
        guard position.next < config.billers.count else { return nil }
        let biller = config.billers[position.next]
        let date = try context.date("date")
        let url = config.feedURL(biller, date: date, context: context)
        let directory = (config.workDirectory as NSString).appendingPathComponent(biller.code)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // One file per execution: a process that hung and wakes later writes only its own.
        let path = (directory as NSString).appendingPathComponent("\(date.compact)-e\(context.executionID).xml")
        let fetcher = config.fetcher.with(bytesMax: biller.feedBytesMax, logger: context.logger)
        let result: FetchResult
        do {
            result = try fetcher.fetch(url: url, to: path, sshHostKeySHA256: biller.sshHostKeySHA256)
        } catch where error.code == .stopped {
            throw error
        } catch {
            context.logger.error("feed fetch failed", metadata: ["biller": "\(biller.code)", "error": "\(error)"])
            return try JSONEncoder().encode(Fetched(path: nil, errorCode: error.code.rawValue, error: error.description))
        }
        context.logger.info("feed fetched", metadata: ["biller": "\(biller.code)", "bytes": "\(result.bytes)", "attempts": "\(result.attempts)", "url": "\(FeedFetcher.redact(url))"])
        return try JSONEncoder().encode(Fetched(path: path, errorCode: nil, error: nil))
    }

    func chunk(_ context: JobContext, db: Database, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        guard checkpoint.next < config.billers.count else { return (checkpoint, ChunkCounts(done: true)) }
        let biller = config.billers[checkpoint.next]
        let date = try context.date("date")
        let now = context.clock.nowMicros()
        try BillerConfigRegistration.ensure(config.billers, db: db, ledger: ledger, clock: context.clock)
        let fetched = try context.prepared.map { try JSONDecoder().decode(Fetched.self, from: $0) } ?? Fetched(path: nil, errorCode: "io", error: "the feed was not fetched")
        var status = "rejected"
        var feedID: String?
        var errorCode = fetched.errorCode
        var error = fetched.error
        var counts = ChunkCounts(read: 1)
        if let path = fetched.path {
            do {
                var staged: FeedIngest.Outcome?
                try db.inSavepoint {
                    staged = try FeedIngest.ingest(db, path: path, biller: biller, date: date, reader: FeedReader(schema: config.feedSchema), executionID: context.executionID, now: now)
                    return .commit
                }
                guard let outcome = staged else { throw FeedError(.io, "the feed was not staged") }
                switch outcome {
                case .staged(let id, let bills, _, let faults):
                    status = "processed"
                    feedID = id
                    counts.written = bills
                    counts.skipped = faults
                case .replay(let id):
                    status = "skipped"
                    feedID = id
                }
                errorCode = nil
                error = nil
            } catch let fault as FeedError {
                errorCode = fault.code.rawValue
                error = fault.description
                counts.failed = 1
            }
        }
        if status == "rejected" {
            context.logger.error("feed rejected", metadata: ["biller": "\(biller.code)", "error": "\(error ?? "")"])
        }
        try db.execute(sql: """
            INSERT INTO billing_runs (execution_id, biller, business_date, feed_id, status, error_code, error, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (execution_id, biller) DO UPDATE SET feed_id = excluded.feed_id, status = excluded.status, error_code = excluded.error_code, error = excluded.error, at = excluded.at
            """, arguments: [context.executionID, biller.code, date.iso, feedID, status, errorCode, error, now])
        let next = Checkpoint(next: checkpoint.next + 1)
        counts.done = next.next >= config.billers.count
        return (next, counts)
    }
}

/// Billers are registered (with their settlement accounts) on first use.
enum BillerConfigRegistration {
    static func ensure(_ billers: [Biller], db: Database, ledger: any LedgerWriting, clock: any LedgerClock) throws {
        let known = try Int.fetchOne(db, sql: "SELECT count(*) FROM billers WHERE code IN (\(billers.map { _ in "?" }.joined(separator: ",")))", arguments: StatementArguments(billers.map(\.code))) ?? 0
        if known < billers.count {
            try Biller.register(billers, db: db, ledger: ledger, clock: clock)
        }
    }
}

// MARK: Cancels

/// Cancels of the staged feeds: an unpaid bill is no longer payable; a paid one is refunded
/// in full by a reversal of its payment.
struct CancelStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable { var lastID: Int64 }

    let config: NightlyBillingConfig
    let name = "cancels"
    let checkpointVersion = 1

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(lastID: 0) }

    func chunk(_ context: JobContext, db: Database, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        let now = context.clock.nowMicros()
        let rows = try Row.fetchAll(db, sql: """
            SELECT c.id, c.feed_id, c.seq, c.biller, c.bill_id, c.business_date, b.id AS row_id, b.status, b.transaction_id, b.wallet_id, b.paid_fen, b.discount_fen,
                r.name AS biller_name, r.category, w.points_account_id
            FROM feed_cancels c LEFT JOIN bills b ON b.biller = c.biller AND b.bill_id = c.bill_id
            JOIN billers r ON r.code = c.biller
            LEFT JOIN wallets w ON w.id = b.wallet_id
            WHERE c.outcome IS NULL AND c.id > ? AND c.business_date = ? ORDER BY c.id LIMIT ?
            """, arguments: [checkpoint.lastID, try context.date("date").iso, context.chunkSizeMax])
        var counts = ChunkCounts(read: rows.count, done: rows.count < context.chunkSizeMax)
        for row in rows {
            let cancelID: Int64 = row["id"]
            let day = ShanghaiCalendar.Date(iso: row["business_date"]) ?? ShanghaiCalendar.date(at: now)
            var outcome: String
            switch row["status"] as String? {
            case nil:
                outcome = "unknown_bill"
                try db.execute(sql: "INSERT INTO feed_records (feed_id, seq, kind, bill_id, outcome, reason) VALUES (?, ?, 'cancel', ?, 'rejected', 'UNKNOWN_BILL')",
                               arguments: [row["feed_id"] as String, row["seq"] as Int, row["bill_id"] as String])
                counts.skipped += 1
            case "new", "payable", "unmatched":
                try db.execute(sql: "UPDATE bills SET status = 'cancelled', reason = NULL, cancelled_business_date = ?, updated_at = ? WHERE id = ?", arguments: [day.iso, now, row["row_id"] as Int64])
                outcome = "cancelled"
                counts.written += 1
            case "paid":
                let original: Int64 = row["transaction_id"]
                let request = PostingRequest(key: "refund:\(row["biller"] as String):\(row["bill_id"] as String)", action: .reverse(transactionID: original), memo: "bill cancelled: refund", effectiveAt: day.startMicros)
                switch try Ledger.post([request], in: ledger, clock: context.clock)[0] {
                case .committed(let refundID, _):
                    // The wallet gets back what it paid; sponsors get back their discounts
                    // (the reversal's legs), and the campaigns release what they allocated.
                    let paid: Int64 = (row["paid_fen"] as Int64) - (row["discount_fen"] as Int64)
                    try CampaignBook(db: db, campaigns: []).reverse(paymentKey: "bill:\(row["biller"] as String):\(row["bill_id"] as String)", reversalTransactionID: refundID, pointsAccount: row["points_account_id"], tx: ledger, clock: context.clock, at: now)
                    try db.execute(sql: """
                        UPDATE bills SET status = 'refunded', refund_transaction_id = ?, refunded_at = ?, refunded_business_date = ?, cancelled_business_date = ?, updated_at = ? WHERE id = ?
                        """, arguments: [refundID, now, day.iso, day.iso, now, row["row_id"] as Int64])
                    try config.wallets.recordMovement(db, walletID: row["wallet_id"], kind: "bill_refund", counterparty: row["biller_name"], category: row["category"], amountFen: paid, balancePayment: true, transactionID: refundID, reference: "\(row["biller"] as String):\(row["bill_id"] as String)")
                    outcome = "refunded"
                    counts.written += 1
                case .refused(let refusal, _):
                    outcome = "refund_refused"
                    try db.execute(sql: "INSERT INTO feed_records (feed_id, seq, kind, bill_id, outcome, reason) VALUES (?, ?, 'cancel', ?, 'rejected', ?)",
                                   arguments: [row["feed_id"] as String, row["seq"] as Int, row["bill_id"] as String, "REFUND_" + refusal.rawValue.uppercased()])
                    counts.failed += 1
                }
            default:
                outcome = "ignored"
                counts.skipped += 1
            }
            try db.execute(sql: "UPDATE feed_cancels SET outcome = ? WHERE id = ?", arguments: [outcome, cancelID])
        }
        return (Checkpoint(lastID: rows.last?["id"] ?? checkpoint.lastID), counts)
    }
}

// MARK: Processing

/// Staged bills in chunks: match, decide autopay, post the chunk's payments as one ledger
/// batch, record every outcome.
struct ProcessStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable { var lastID: Int64 }

    let config: NightlyBillingConfig
    let name = "process"
    let checkpointVersion = 1

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(lastID: 0) }

    func estimatedTotal(_ context: JobContext, db: Database) throws -> Int? {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM bills WHERE status = 'new'")
    }

    func chunk(_ context: JobContext, db: Database, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        let date = try context.date("date")
        let now = context.clock.nowMicros()
        // Read by position (the columns of the select, in order): no lookup by name per bill.
        let rows = try Row.fetchAll(try db.cachedStatement(sql: """
            SELECT b.id, b.biller, b.bill_id, b.due_fen, b.due_date, b.district, a.id, a.autopay, a.autopay_limit_fen,
                r.name, r.category, r.account_id, \(WalletRecord.positionalColumns)
            FROM bills b
            JOIN billers r ON r.code = b.biller
            LEFT JOIN bill_accounts a ON a.biller = b.biller AND a.customer_no = b.customer_no AND a.status = 'linked'
            LEFT JOIN wallets w ON w.id = a.wallet_id
            WHERE b.status = 'new' AND b.id > ? AND b.business_date = ? ORDER BY b.id LIMIT ?
            """), arguments: [checkpoint.lastID, date.iso, context.chunkSizeMax])
        var payment = BillPayment(wallets: config.wallets, now: now, campaignAt: date.startMicros, book: config.campaigns.isEmpty ? nil : CampaignBook(db: db, campaigns: config.campaigns))
        payment.businessDate = date
        var toPay: [(bill: BillCandidate, billerName: String, billerAccount: AccountID)] = []
        var counts = ChunkCounts(read: rows.count, done: rows.count < context.chunkSizeMax)
        for row in rows {
            let accountID: Int64? = row[6]
            let wallet: WalletRecord? = accountID == nil ? nil : WalletRecord(row: row, at: 12)
            let bill = BillCandidate(rowID: row[0], biller: row[1], billID: row[2], dueFen: row[3], dueDate: row[4], category: row[10], district: row[5], billAccountID: accountID, autopay: row[7] ?? false, autopayLimitFen: row[8] ?? 0, wallet: wallet)
            let decision = try payment.decide(db, ledger, bill, manual: false)
            if decision == .pay {
                toPay.append((bill, row[9], row[11]))
            } else {
                try payment.recordNotPaid(db, bill, decision: decision)
                counts.skipped += 1
            }
        }
        var requests: [PostingRequest] = []
        var groups: [Range<Int>] = []
        for (bill, _, billerAccount) in toPay {
            let group = try payment.requests(bill, billerAccountID: billerAccount, businessDate: date, tx: ledger)
            groups.append(requests.count..<requests.count + group.count)
            requests.append(contentsOf: group)
        }
        // A chunk may hold more requests than one ledger batch (with points, two a bill).
        let results = try Ledger.postInBatches(requests, in: ledger, clock: context.clock, limits: config.ledgerLimits)
        for ((bill, billerName, _), range) in zip(toPay, groups) {
            switch results[range.lowerBound] {
            case .committed(let transactionID, _):
                try payment.recordPaid(db, bill, transactionID: transactionID, pointsHolds: payment.pointsHolds(bill, results: results[range]), via: "autopay", businessDate: date, billerName: billerName, category: bill.category)
                counts.written += 1
            case .refused(let refusal, _):
                let reason = refusal == .accountFrozen ? "ACCOUNT_FROZEN" : "INSUFFICIENT_FUNDS"
                payment.forget(bill)
                try payment.recordNotPaid(db, bill, decision: .pending(reason))
                counts.failed += 1
            }
        }
        return (Checkpoint(lastID: rows.last.map { $0[0] as Int64 } ?? checkpoint.lastID), counts)
    }
}
