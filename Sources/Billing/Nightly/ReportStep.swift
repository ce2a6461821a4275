import Feeds
import Foundation
import JobRunner
import Ledger
import QDSQL

/// One chunk per biller: the report is written and delivered outside the transaction (it
/// reads committed state only), then recorded in the chunk's transaction.
struct ReportStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable { var next: Int }
    struct Written: Sendable {
        var reportID: String
        var path: String
        var sha256: Data
        var items: Int
        var header: ReportHeader
        var deliveredTo: String?
        var deliveryError: String?
        var version = 1
        /// The same report was delivered before: nothing sent again.
        var unchanged = false
    }

    let config: NightlyBillingConfig
    let name = "reports"
    let checkpointVersion = 1

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(next: 0) }

    func prepare(_ context: JobContext, at position: Checkpoint) throws -> Written? {
        guard position.next < config.billers.count else { return nil }
        let biller = config.billers[position.next]
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
        if let previous {
            // Written again with the previous CreatedAt and ledger head: the same bytes mean the
            // same report.
            let candidate = path + ".candidate"
            (header, digest) = try pool.read { db in
                try PaymentReports.write(db, biller: biller.code, date: date, now: previous.createdAt, path: candidate, schema: config.reportSchema, version: version, ledgerHead: previous.ledgerHead)
            }
            if digest == previous.sha256 {
                unchanged = previous.isDelivered
                try? FileManager.default.removeItem(atPath: candidate)
            } else {
                try? FileManager.default.removeItem(atPath: candidate)
                // A report a biller has received is never replaced: a correction is a new version.
                if previous.isDelivered { version += 1 }
                path = PaymentReports.versioned(basePath, version: version)
                // The anchor covers every payment committed so far (sealed, on a server).
                try store.sealPending()
                (header, digest) = try store.snapshot { db, ledger in
                    try PaymentReports.write(db, biller: biller.code, date: date, now: context.clock.nowMicros(), path: path, schema: config.reportSchema, version: version,
                                             ledgerHead: (try ledger.chainHead() ?? .genesis).anchor)
                }
                if version > previous.version {
                    context.logger.warning("corrected payment report", metadata: ["biller": "\(biller.code)", "date": "\(date.iso)", "version": "\(version)", "replaces": "\(previous.reportID)"])
                }
            }
        } else {
            try store.sealPending()
            (header, digest) = try store.snapshot { db, ledger in
                try PaymentReports.write(db, biller: biller.code, date: date, now: context.clock.nowMicros(), path: path, schema: config.reportSchema,
                                         ledgerHead: (try ledger.chainHead() ?? .genesis).anchor)
            }
        }
        let target = PaymentReports.versioned(Biller.fill(biller.resultURL, date: date, root: config.root, reports: config.reportsDirectory), version: version)
        var written = Written(reportID: header.reportID, path: path, sha256: digest, items: header.itemCount, header: header, version: version)
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
        if unchanged {
            written.deliveredTo = previous?.deliveredTo
            written.unchanged = true
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

    func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        guard checkpoint.next < config.billers.count, let written = context.prepared(Written.self) else { return (checkpoint, ChunkCounts(done: true)) }
        let header = written.header
        if !written.unchanged {
            try BillStore(db).recordReport(
                BillStore.ReportHeaderTotals(biller: header.billerCode, businessDate: header.businessDate, paidCount: header.paidCount, paidSumFen: header.paidSumFen,
                                             refundedCount: header.refundedCount, refundedSumFen: header.refundedSumFen, createdAt: header.createdAt, ledgerHead: header.ledgerHead),
                reportID: written.reportID, path: written.path, sha256: written.sha256, items: written.items, version: written.version,
                deliveredTo: written.deliveredTo, deliveryError: written.deliveryError, at: context.clock.nowMicros())
        }
        let next = Checkpoint(next: checkpoint.next + 1)
        return (next, ChunkCounts(read: written.items, written: 1, failed: written.deliveryError == nil ? 0 : 1, done: next.next >= config.billers.count))
    }
}

