import Feeds
import Foundation
import JobRunner
import Ledger
import QDSQL

/// One chunk per biller: the report is written and delivered outside the transaction (it
/// reads committed state only), then recorded in the chunk's transaction.
struct ReportStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable { var next: Int }
    /// A biller's report as written, and where it was delivered, or why it was not.
    struct Written: Sendable {
        var drafted: Drafted
        var deliveredTo: String?
        var deliveryError: String?

        var header: ReportHeader { drafted.header }
        var path: String { drafted.path }
        /// The same report was delivered before: nothing sent again.
        var unchanged: Bool { drafted.unchanged }
        /// Written (or found unchanged) on the thread ahead, while the report before it was.
        var ahead: Bool { drafted.ahead }
    }

    /// A biller's report written, before it is delivered: where, what, which version, and
    /// whether it is the one delivered before.
    struct Drafted: Sendable {
        var basePath: String
        var path: String
        var header: ReportHeader
        var digest: Data
        var version: Int
        var unchanged: Bool
        var previousDeliveredTo: String?
        /// Drafted on the thread ahead.
        var ahead = false
        /// Written ahead: the report is here (`<path>.ahead`), put in its place when its chunk
        /// takes it, so that a report nobody takes never reaches the folder a biller may read.
        var aheadFile: String?
    }

    let config: NightlyBillingConfig
    let name = "reports"
    let checkpointVersion = 1
    /// The next biller's report, written on a thread of its own while this one is.
    let lookahead = Self.reportLookahead()

    /// One report ahead; one that nobody will take is removed.
    static func reportLookahead() -> Lookahead<Drafted> {
        Lookahead(threadName: "qdwallet-report-ahead") { drafted in
            if let file = drafted.aheadFile { try? FileManager.default.removeItem(atPath: file) }
        }
    }

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(next: 0) }

    /// The report of the chunk's biller: written ahead (during the processing, or during the
    /// chunk before), or written now while the next biller's is written on another thread
    /// (both read committed state only; each is validated on a thread of its own as it is
    /// written). Then delivered.
    func prepare(_ context: JobContext, at position: Checkpoint) throws -> Written? {
        guard position.next < config.billers.count else { return nil }
        let biller = config.billers[position.next]
        let date = try context.date("date")
        let ahead = try lookahead.take(Lookahead<Drafted>.Key(execution: context.executionID, index: position.next))
        // The next report not written ahead yet (during the processing, or in this step).
        if let next = (position.next + 1 ..< config.billers.count).first(where: { !lookahead.holds(Lookahead<Drafted>.Key(execution: context.executionID, index: $0)) }) {
            writeAhead(context, index: next)
        }
        let drafted = try ahead ?? draft(context, index: position.next, schema: config.reportSchema)
        if let file = drafted.aheadFile {
            guard rename(file, drafted.path) == 0 else {
                let cause = String(cString: strerror(errno))
                try? FileManager.default.removeItem(atPath: file)
                throw FeedError(.io, "cannot put the payment report written ahead in its place", cause: cause, context: drafted.path)
            }
        } else {
            // One written ahead by a run that failed or was killed before its chunk took it.
            try? FileManager.default.removeItem(atPath: drafted.path + ".ahead")
        }
        let (basePath, path) = (drafted.basePath, drafted.path)
        let pool = config.wallets.store.database
        let target = PaymentReports.versioned(Biller.fill(biller.resultURL, date: date, root: config.root, reports: config.reportsDirectory), version: drafted.version)
        var written = Written(drafted: drafted)
        // A feed refused at feed level: the biller is told so, and why, beside the report.
        if let rejection = try pool.read({ db in try FeedStatusReport.rejection(db, biller: biller.code, date: date) }) {
            let statusPath = FeedStatusReport.path(basePath)
            try FeedStatusReport.write(rejection, biller: biller.code, date: date, now: context.clock.nowMicros(), to: statusPath)
            let statusTarget = FeedStatusReport.path(Biller.fill(biller.resultURL, date: date, root: config.root, reports: config.reportsDirectory))
            if statusTarget != "file://" + statusPath {
                do {
                    try config.fetcher.upload(file: statusPath, to: statusTarget, sshHostKeySHA256: biller.sshHostKeySHA256)
                } catch {
                    written.deliveryError = "the feed status could not be delivered: \(error.description)"
                    context.logger.error("feed status delivery failed", metadata: ["biller": "\(biller.code)", "error": "\(error)"])
                }
            }
        }
        if drafted.unchanged {
            written.deliveredTo = drafted.previousDeliveredTo
        } else if target == "file://" + path {
            written.deliveredTo = target
        } else {
            do {
                try config.fetcher.upload(file: path, to: target, sshHostKeySHA256: biller.sshHostKeySHA256)
                written.deliveredTo = FeedFetcher.redact(target)
            } catch where error.code == .stopped {
                throw error
            } catch {
                written.deliveryError = error.description
                context.logger.error("report delivery failed", metadata: ["biller": "\(biller.code)", "error": "\(error)"])
            }
        }
        return written
    }

    /// Starts writing the report of the biller at `index` on the thread ahead, unless the run
    /// is stopping or a report is being written ahead already (one at a time: the thread ahead
    /// has one compiled schema).
    func writeAhead(_ context: JobContext, index: Int) {
        guard !context.stop.requested, let schema = config.reportAheadSchema, !lookahead.running else { return }
        let step = self
        lookahead.start(Lookahead<Drafted>.Key(execution: context.executionID, index: index)) { try step.draft(context, index: index, schema: schema, ahead: true) }
    }

    /// Before a chunk of the processing (the chunks before it committed, the last of them
    /// read up to bill `processed`): the report of the first biller whose bills of the day
    /// are all processed and whose report is not written ahead yet starts on the thread ahead.
    /// A biller's bills of the day are those of its feeds of the day, the rows up to their
    /// last (`BillStore.lastBillsOfTheDay`); the processing takes bills in row order, so
    /// none of them is new any more, and the chunks after it write nothing its report reads.
    /// A biller without a feed of the day is written in this step, and so, as a rule, is the
    /// last one (no chunk of the processing comes after its last bill).
    func writeAhead(_ context: JobContext, processed: Int64) throws {
        guard !context.stop.requested, config.reportAheadSchema != nil, !lookahead.running else { return }
        let date = try context.date("date")
        let lastBills = try config.wallets.store.database.read { db in try BillStore(db).lastBillsOfTheDay(date) }
        for (index, biller) in config.billers.enumerated() {
            guard let last = lastBills[biller.code], last <= processed,
                  !lookahead.holds(Lookahead<Drafted>.Key(execution: context.executionID, index: index)) else { continue }
            writeAhead(context, index: index)
            return
        }
    }

    /// Writes the report of the biller at `index` (validated against `schema`): version 1, or
    /// the version recorded before, written again with that version's CreatedAt and ledger
    /// head to see whether anything changed; a changed report a biller has received becomes
    /// the next version.
    /// `ahead`: written to `<path>.ahead`, for the chunk that takes it to put in its place.
    func draft(_ context: JobContext, index: Int, schema: XMLSchema, ahead: Bool = false) throws -> Drafted {
        let biller = config.billers[index]
        let date = try context.date("date")
        let directory = (config.reportsDirectory as NSString).appendingPathComponent(biller.code)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let basePath = (directory as NSString).appendingPathComponent("QDW-\(biller.code)-\(date.compact).xml")
        let store = config.wallets.store
        let pool = store.database
        let previous = try pool.read { db in
            try BillStore(db).report(biller: biller.code, on: date)
        }
        var version = previous?.version ?? 1
        var path = PaymentReports.versioned(basePath, version: version)
        var header: ReportHeader
        var digest: Data
        var unchanged = false
        // Whether the report was written (to `.ahead` when ahead); an unchanged one is not.
        var written = false
        if let previous {
            // Written again with the previous CreatedAt and ledger head: the same bytes mean the
            // same report.
            let candidate = path + ".candidate"
            (header, digest) = try pool.read { db in
                try PaymentReports.write(db, biller: biller.code, date: date, now: previous.createdAt, path: candidate, schema: schema, version: version, ledgerHead: previous.ledgerHead)
            }
            if digest == previous.sha256 {
                unchanged = previous.isDelivered
                try? FileManager.default.removeItem(atPath: candidate)
            } else {
                try? FileManager.default.removeItem(atPath: candidate)
                // A report a biller has received is never replaced: a correction is a new version.
                if previous.isDelivered { version += 1 }
                path = PaymentReports.versioned(basePath, version: version)
                let target = ahead ? path + ".ahead" : path
                written = true
                // The anchor covers every payment committed so far (sealed, on a server).
                try store.sealPending()
                (header, digest) = try store.snapshot { db, ledger in
                    try PaymentReports.write(db, biller: biller.code, date: date, now: context.clock.nowMicros(), path: target, schema: schema, version: version,
                                             ledgerHead: (try ledger.chainHead() ?? .genesis).anchor)
                }
                if version > previous.version {
                    context.logger.warning("corrected payment report", metadata: ["biller": "\(biller.code)", "date": "\(date.iso)", "version": "\(version)", "replaces": "\(previous.reportID)"])
                }
            }
        } else {
            let target = ahead ? path + ".ahead" : path
            written = true
            try store.sealPending()
            (header, digest) = try store.snapshot { db, ledger in
                try PaymentReports.write(db, biller: biller.code, date: date, now: context.clock.nowMicros(), path: target, schema: schema,
                                         ledgerHead: (try ledger.chainHead() ?? .genesis).anchor)
            }
        }
        return Drafted(basePath: basePath, path: path, header: header, digest: digest, version: version, unchanged: unchanged, previousDeliveredTo: previous?.deliveredTo,
                       ahead: ahead, aheadFile: ahead && written ? path + ".ahead" : nil)
    }

    func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        guard checkpoint.next < config.billers.count, let written = context.prepared(Written.self) else { return (checkpoint, ChunkCounts(done: true)) }
        let header = written.header
        if !written.unchanged {
            try BillStore(db).recordReport(
                BillStore.ReportHeaderTotals(biller: header.billerCode, businessDate: header.businessDate, paidCount: header.paidCount, paidSumFen: header.paidSumFen,
                                             refundedCount: header.refundedCount, refundedSumFen: header.refundedSumFen, createdAt: header.createdAt, ledgerHead: header.ledgerHead),
                reportID: header.reportID, path: written.path, sha256: written.drafted.digest, items: header.itemCount, version: written.drafted.version,
                deliveredTo: written.deliveredTo, deliveryError: written.deliveryError, at: context.clock.nowMicros())
        }
        let next = Checkpoint(next: checkpoint.next + 1)
        return (next, ChunkCounts(read: header.itemCount, written: 1, failed: written.deliveryError == nil ? 0 : 1, done: next.next >= config.billers.count))
    }
}

