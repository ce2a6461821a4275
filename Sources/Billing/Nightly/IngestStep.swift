import Feeds
import Foundation
import JobRunner
import Ledger
import QDSQL

/// One chunk per biller: the feed is fetched outside the transaction, then staged whole in
/// the chunk's transaction, or rejected whole with its reason.
struct IngestStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable { var next: Int }

    /// What the fetch left for the chunk: the downloaded file, or why there is none.
    enum Fetched: Sendable {
        case file(path: String)
        case failed(code: String, error: String)
    }

    let config: NightlyBillingConfig
    let name = "ingest"
    let checkpointVersion = 1

    func start(_ context: JobContext) throws -> Checkpoint {
        _ = try context.date("date")
        return Checkpoint(next: 0)
    }

    func estimatedTotal(_ context: JobContext, db: any SQLConnection) throws -> Int? { config.billers.count }

    func prepare(_ context: JobContext, at position: Checkpoint) throws -> Fetched? {
        guard position.next < config.billers.count else { return nil }
        let biller = config.billers[position.next]
        let date = try context.date("date")
        let url = config.feedURL(biller, date: date, context: context)
        let directory = (config.workDirectory as NSString).appendingPathComponent(biller.code)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // One file per execution: a process that hung and wakes later writes only its own.
        let path = (directory as NSString).appendingPathComponent("\(date.compact)-e\(context.executionID).xml")
        // The configured fetcher (its limits, environment and clock), bounded by this biller's size.
        let fetcher = config.fetcher.with(bytesMax: biller.feedBytesMax, logger: context.logger)
        let result: FetchResult
        do {
            result = try fetcher.fetch(url: url, to: path, sshHostKeySHA256: biller.sshHostKeySHA256)
        } catch where error.code == .stopped {
            throw error
        } catch {
            context.logger.error("feed fetch failed", metadata: ["biller": "\(biller.code)", "error": "\(error)"])
            return .failed(code: error.code.rawValue, error: error.description)
        }
        context.logger.info("feed fetched", metadata: ["biller": "\(biller.code)", "bytes": "\(result.bytes)", "attempts": "\(result.attempts)", "url": "\(FeedFetcher.redact(url))"])
        return .file(path: path)
    }

    func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        guard checkpoint.next < config.billers.count else { return (checkpoint, ChunkCounts(done: true)) }
        let biller = config.billers[checkpoint.next]
        let date = try context.date("date")
        let now = context.clock.nowMicros()
        try BillerConfigRegistration.ensure(config.billers, db: db, ledger: ledger, clock: context.clock)
        var status = "rejected"
        var feedID: String?
        var errorCode: String?
        var error: String?
        var counts = ChunkCounts(read: 1)
        switch context.prepared(Fetched.self) ?? .failed(code: "io", error: "the feed was not fetched") {
        case .failed(let code, let message):
            errorCode = code
            error = message
        case .file(let path):
            do {
                let outcome = try db.savepoint {
                    let outcome = try FeedIngest.ingest(db, path: path, biller: biller, date: date, reader: FeedReader(schema: config.feedSchema), executionID: context.executionID, now: now)
                    if case .staged(let id, _, _, _) = outcome {
                        // The notices of the bills the move left payable, with the feed.
                        try BillPayment.queueNoticesDecidedAtMove(db, feedKey: BillStore.feedKey(biller: biller.code, feedID: id), wallets: config.wallets, now: now)
                    }
                    return outcome
                }
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
            } catch let fault as FeedError {
                errorCode = fault.code.rawValue
                error = fault.description
                counts.failed = 1
            }
        }
        if status == "rejected" {
            context.logger.error("feed rejected", metadata: ["biller": "\(biller.code)", "error": "\(error ?? "")"])
        }
        try BillStore(db).recordRun(executionID: context.executionID, biller: biller.code, date: date, feedID: feedID, status: status, errorCode: errorCode, error: error, at: now)
        let next = Checkpoint(next: checkpoint.next + 1)
        counts.done = next.next >= config.billers.count
        return (next, counts)
    }
}

/// Billers are registered (with their settlement accounts) on first use.
enum BillerConfigRegistration {
    static func ensure(_ billers: [Biller], db: any SQLConnection, ledger: any LedgerWriting, clock: any LedgerClock) throws {
        let store = BillStore(db)
        if try !billers.allSatisfy({ try store.billerExists($0.code) }) {
            try Biller.register(billers, db: db, ledger: ledger, clock: clock)
        }
    }
}
