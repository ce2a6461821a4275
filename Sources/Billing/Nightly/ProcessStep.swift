import Campaigns
import JobRunner
import Ledger
import Payments
import Wallet
import QDSQL
import Synchronization

/// Staged bills in chunks: match, decide autopay, post the chunk's payments as one ledger
/// batch, record every outcome.
struct ProcessStep: TypedJobStep {
    struct Checkpoint: Codable, Sendable { var lastID: Int64 }

    let config: NightlyBillingConfig
    /// The run's report step: a biller's report is written on its thread ahead as soon as the
    /// chunks have passed the biller's last bill of the day (nil: in the report step only).
    var reports: ReportStep?
    let name = "process"
    let checkpointVersion = 1

    func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(lastID: 0) }

    /// The executions whose process step this process has run a chunk of.
    private static let refreshed = Mutex<Set<Int64>>([])

    /// The reports of the billers whose bills are all processed, written beside the chunks
    /// that follow (the second core is otherwise idle while the writer works).
    func prepare(_ context: JobContext, at checkpoint: Checkpoint) throws -> Never? {
        if let reports, checkpoint.lastID > 0 { try reports.writeAhead(context, processed: checkpoint.lastID) }
        return nil
    }

    func estimatedTotal(_ context: JobContext, db: any SQLConnection) throws -> Int? {
        try BillStore(db).countNew()
    }

    func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
        let date = try context.date("date")
        let now = context.clock.nowMicros()
        let store = BillStore(db)
        // The statistics refreshed at the step's first chunk in this process: when it
        // starts, and when it resumes after a crash or a stop (the night's bills staged since
        // the last refresh whichever it is).
        let firstHere = Self.refreshed.withLock { $0.insert(context.executionID).inserted }
        if checkpoint.lastID == 0 || firstHere { try store.refreshStatistics() }
        var staged = try store.newBills(of: date, after: checkpoint.lastID, limit: context.chunkSizeMax)
        // The chunk's wallets in a few reads, not one a bill.
        var wallets = try WalletStore(db).wallets(ids: staged.compactMap { $0.link?.walletID })
        var accounts: [Account] = []
        // How many bills the chunk read and the last one's id, also when some of them were
        // dropped as paid meanwhile: what says whether the step is done and where it resumes.
        var firstRead: (count: Int, lastID: Int64?)?
        if ledger.concurrentWriters {
            // Other writers at once (PostgreSQL): the chunk's wallets are locked, in one order,
            // before anything about them is decided, and the chunk is read again under the
            // locks: a bill paid by hand meanwhile is no longer new, a wallet frozen meanwhile
            // is seen frozen.
            accounts = try config.wallets.lock(ledger, wallets: Array(wallets.values))
            let changed = try store.changedSince(staged)
            if changed.linksChanged {
                // A link changed meanwhile: the chunk read again whole, its wallets locked
                // again (the chunk may now name others).
                staged = try store.newBills(of: date, after: checkpoint.lastID, limit: context.chunkSizeMax)
                wallets = try WalletStore(db).wallets(ids: staged.compactMap { $0.link?.walletID })
                accounts = try config.wallets.lock(ledger, wallets: Array(wallets.values))
            } else {
                // The same links: the accounts as the locks returned them stand; the bills
                // paid meanwhile are dropped, and the wallets read again (one frozen
                // meanwhile is seen frozen).
                firstRead = (staged.count, staged.last?.rowID)
                if !changed.gone.isEmpty { staged.removeAll { changed.gone.contains($0.rowID) } }
                wallets = try WalletStore(db).wallets(ids: staged.compactMap { $0.link?.walletID })
            }
        }
        var payment = BillPayment(wallets: config.wallets, now: now, campaignAt: date.startMicros, pipeline: PaymentPipeline(db: db, campaigns: config.campaigns, clock: config.wallets.ledger.clock))
        payment.businessDate = date
        try payment.prefetch(store, wallets: Array(wallets.values), billAccountIDs: staged.compactMap { $0.link?.id }, accounts: accounts)
        var toPay: [(bill: BillCandidate, billerName: String, billerAccount: AccountID)] = []
        var writes = BillWrites()
        var counts = ChunkCounts(read: staged.count, done: (firstRead?.count ?? staged.count) < context.chunkSizeMax)
        for new in staged {
            let bill = BillCandidate(rowID: new.rowID, key: PaymentKey(biller: new.biller, billID: new.billID), dueFen: new.dueFen, dueDate: new.dueDate, category: new.category, district: new.district,
                                     billAccountID: new.link?.id, autopay: new.link?.autopay ?? false, autopayLimitFen: new.link?.autopayLimitFen ?? 0,
                                     wallet: new.link.flatMap { wallets[$0.walletID] })
            let decision = try payment.decide(store, ledger, bill, manual: false)
            if decision == .pay {
                toPay.append((bill, new.billerName, new.billerAccountID))
            } else {
                payment.recordNotPaid(into: &writes, bill, decision: decision)
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
                try payment.recordPaid(into: &writes, db, bill, transactionID: transactionID, followers: results[range].dropFirst(), via: .autopay, businessDate: date, billerName: billerName, category: bill.category)
                counts.written += 1
            case .refused(let refusal, _):
                payment.forget(bill)
                payment.recordNotPaid(into: &writes, bill, decision: .pending(PendingReason(refusal)))
                counts.failed += 1
            }
        }
        // The chunk's outcomes in a few multi-row statements.
        try writes.flush(db, wallets: config.wallets, campaigns: payment.pipeline, at: now)
        return (Checkpoint(lastID: (firstRead?.lastID ?? staged.last?.rowID) ?? checkpoint.lastID), counts)
    }
}
