import Feeds
import Foundation
import JobRunner
import Ledger
import QDSQL

/// One chunk per biller: the feed is fetched outside the transaction, then staged whole in
/// the chunk's transaction, or rejected whole with its reason.
struct IngestStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable { var next: Int }

    /// What the fetch left for the chunk: the downloaded file (read ahead, or not), or why
    /// there is none.
    enum Fetched: Sendable {
        case file(path: String)
        /// Fetched, hashed and read while the writer was busy with the feed before it: the
        /// chunk stages it from its spool (nil when the spool could not be written: the chunk
        /// reads the file itself). `bytes` over the biller's limit is never spooled.
        case readAhead(path: String, digest: [UInt8], bytes: Int64, spool: FeedSpool?)
        case failed(code: String, error: String)
    }

    let config: NightlyBillingConfig
    let name = "ingest"
    let checkpointVersion = 1
    /// The next biller's feed, fetched and read on a thread of its own meanwhile.
    let lookahead = Self.feedLookahead()

    /// One feed ahead; a feed read ahead that nobody will take has its spool of customers'
    /// bills removed.
    static func feedLookahead() -> Lookahead<Fetched> {
        Lookahead(threadName: "qdwallet-feed-ahead") { fetched in
            if case .readAhead(_, _, _, let spool?) = fetched { spool.remove() }
        }
    }

    func start(_ context: JobContext) throws -> Checkpoint {
        _ = try context.date("date")
        return Checkpoint(next: 0)
    }

    func estimatedTotal(_ context: JobContext, db: any SQLConnection) throws -> Int? { config.billers.count }

    /// The feed of the chunk: read ahead during the chunk before, or fetched now. Then the
    /// next biller's feed is fetched and read on another thread while this chunk is written:
    /// the parse and validation take the second core, not the writer's time.
    func prepare(_ context: JobContext, at position: Checkpoint) throws -> Fetched? {
        guard position.next < config.billers.count else { return nil }
        let fetched = try lookahead.take(Lookahead<Fetched>.Key(execution: context.executionID, index: position.next)) ?? fetch(context, index: position.next)
        let next = position.next + 1
        if next < config.billers.count {
            let step = self
            lookahead.start(Lookahead<Fetched>.Key(execution: context.executionID, index: next)) { try step.readAhead(context, index: next) }
        }
        return fetched
    }

    /// Downloads the feed of the biller at `index` into this execution's file.
    func fetch(_ context: JobContext, index: Int) throws -> Fetched {
        let biller = config.billers[index]
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

    /// The feed of the biller at `index` fetched, hashed and read to its spool (beside the
    /// file). Whatever fails here that the chunk would meet again (a file that cannot be
    /// read) is left for the chunk to meet; a spool that cannot be written leaves the file
    /// for the chunk to read itself.
    func readAhead(_ context: JobContext, index: Int) throws -> Fetched {
        let fetched = try fetch(context, index: index)
        guard case .file(let path) = fetched, !context.stop.requested, let schema = config.readAheadSchema else { return fetched }
        let biller = config.billers[index]
        guard let (digest, bytes) = try? FeedIngest.sha256(path: path) else { return fetched }
        guard bytes <= biller.feedBytesMax else { return .readAhead(path: path, digest: digest, bytes: bytes, spool: nil) }
        do {
            // Its own compiled schema: the chunk's reader may be validating with the other.
            let spool = try FeedSpool.write(reader: FeedReader(schema: schema), path: path, expectedBiller: biller.code,
                                            expectedDate: try context.date("date").iso, to: path + ".spool")
            // A run stopped meanwhile takes no more chunks: nothing left behind.
            guard !context.stop.requested else {
                spool.remove()
                return fetched
            }
            return .readAhead(path: path, digest: digest, bytes: bytes, spool: spool)
        } catch {
            context.logger.warning("feed not read ahead: the chunk reads it itself", metadata: ["biller": "\(biller.code)", "cause": "\(error)"])
            try? FileManager.default.removeItem(atPath: path + ".spool")
            return .readAhead(path: path, digest: digest, bytes: bytes, spool: nil)
        }
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
        let fetched = context.prepared(Fetched.self) ?? .failed(code: "io", error: "the feed was not fetched")
        switch fetched {
        case .failed(let code, let message):
            errorCode = code
            error = message
        case .file(let path), .readAhead(let path, _, _, _):
            var ahead: FeedIngest.ReadAhead?
            if case .readAhead(_, let digest, let bytes, let spool) = fetched {
                ahead = FeedIngest.ReadAhead(digest: digest, bytes: bytes, spool: spool)
            }
            defer { ahead?.spool?.remove() }
            do {
                func ingest() throws -> FeedIngest.Outcome {
                    try db.savepoint {
                        let outcome = try FeedIngest.ingest(db, path: path, biller: biller, date: date, reader: FeedReader(schema: config.feedSchema), executionID: context.executionID,
                                                            now: now, readAhead: ahead)
                        if case .staged(let id, _, _, _) = outcome {
                            // The notices of the bills the move left payable, with the feed.
                            try BillPayment.queueNoticesDecidedAtMove(db, feedKey: BillStore.feedKey(biller: biller.code, feedID: id), wallets: config.wallets, now: now)
                        }
                        return outcome
                    }
                }
                let outcome: FeedIngest.Outcome
                do {
                    outcome = try ingest()
                } catch let fault as FeedSpool.Fault {
                    // The spool, not the feed: undone, and the feed read from its file.
                    context.logger.warning("feed spool unreadable: the chunk reads the feed itself", metadata: ["biller": "\(biller.code)", "cause": "\(fault)"])
                    ahead?.spool?.remove()
                    ahead?.spool = nil
                    outcome = try ingest()
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
