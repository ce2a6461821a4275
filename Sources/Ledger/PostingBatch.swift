/// One batch of posting requests inside one database transaction.
///
/// Accounts are read once per batch and kept in memory; the journal rows of a linked group
/// are written only when the whole group has passed, and the account totals once at the end,
/// so a refused request leaves nothing behind but its remembered refusal.
///
/// With one writer at a time (SQLite) ids follow the chain head and each row is chained onto
/// the one before it. With many (PostgreSQL, `tx.concurrentWriters`) the people's and
/// merchants' accounts are locked in id order before anything is decided, the system
/// accounts' totals are added to rather than overwritten, ids come from a sequence, and each
/// row carries the hash of its own content until it is sealed into the chain at commit.
struct PostingBatch {
    private let tx: any LedgerWriting
    private let limits: LedgerLimits
    private let now: TimestampMicros
    private let concurrent: Bool
    private var head: ChainHead
    /// Ids for the plans, in order (many writers: drawn from the sequence).
    private var ids: [TransactionID] = []
    /// The next plan's position in `ids` (one writer: its offset after the batch's first id).
    private var idCursor = 0
    /// One writer: the id after the chain head when the batch began.
    private var firstID: TransactionID = 1
    private var nextID: TransactionID {
        concurrent ? ids[idCursor] : firstID + Int64(idCursor)
    }

    private var accounts: [AccountID: Account] = [:]
    /// System accounts as read (many writers), so that only what the batch moved is added.
    private var foldedAsRead: [AccountID: Account] = [:]
    private var dirtyOrder: [AccountID] = []
    private var dirty: Set<AccountID> = []

    // What the current linked group has done so far; dropped when the group fails.
    private var undo: [Account] = []
    private var undoIDs: Set<AccountID> = []
    private var planned: [Planned] = []
    private var groupKeys: [String: IdempotencyRecord] = [:]
    private var groupHolds: [TransactionID: HoldRecord] = [:]
    private var groupResolved: [TransactionID: HoldResolution.Outcome] = [:]
    private var groupReversed: Set<TransactionID> = []
    /// Reused for every hash of the batch.
    private var scratch: [UInt8] = []

    private struct Planned {
        var record: TransactionRecord
        var entries: [EntryRecord]
        var hold: HoldRecord?
        var resolution: HoldResolution?
        var requestHash: [UInt8]
    }

    private enum Evaluation {
        case planned(TransactionID)
        case replayedCommit(TransactionID)
        case replayedRefusal(LedgerRefusal)
        case refused(LedgerRefusal, requestHash: [UInt8]?)
    }

    init(tx: any LedgerWriting, limits: LedgerLimits, now: TimestampMicros) throws {
        self.tx = tx
        self.limits = limits
        concurrent = tx.concurrentWriters
        if concurrent {
            // The chain is sealed at commit, in commit order; the recorded time is the clock's.
            head = .genesis
            self.now = now
        } else {
            let head = try tx.chainHead() ?? .genesis
            self.head = head
            firstID = head.id + 1
            // Recorded time never goes backwards along the journal, even if the clock does.
            self.now = max(now, head.recordedAt)
        }
    }

    mutating func run(_ requests: [PostingRequest]) throws -> [PostingResult] {
        if concurrent {
            // Every account the requests name, locked in one order before anything is decided:
            // a hold's settlement and a reversal name theirs through the hold or the original
            // (read first: they never change), so no account is locked later, out of order,
            // where two batches could wait for each other in a cycle. A hold or transaction of
            // this same batch is named by its own request.
            var named: [AccountID] = []
            for request in requests {
                switch request.action {
                case .transfer(let legs): named += legs.map(\.accountID)
                case .hold(let debit, let credit, _, _, _): named += [debit, credit]
                case .postHold(let holdID, _), .voidHold(let holdID), .expireHold(let holdID):
                    if let hold = try tx.hold(id: holdID) { named += [hold.debitAccountID, hold.creditAccountID] }
                case .reverse(let originalID):
                    named += try tx.entries(transactionID: originalID).map(\.accountID)
                }
            }
            let begun = try tx.beginBatch(accounts: named, idCount: requests.count, keys: requests.map(\.key))
            for account in begun.accounts {
                remember(account)
            }
            ids = begun.ids
        }
        var results: [PostingResult] = []
        results.reserveCapacity(requests.count)
        var start = requests.startIndex
        while start < requests.endIndex {
            var end = start
            while end < requests.endIndex && requests[end].linked {
                end += 1
            }
            if end == requests.endIndex {
                results.append(contentsOf: repeatElement(.refused(.linkedEventChainOpen, replayed: false), count: end - start))
                break
            }
            results.append(contentsOf: try runGroup(requests[start...end]))
            start = end + 1
        }
        for id in dirtyOrder {
            guard let account = accounts[id] else { continue }
            if let before = foldedAsRead[id] {
                try tx.addTotals(account, since: before)
            } else {
                try tx.saveTotals(account)
            }
        }
        try tx.endBatch()
        return results
    }

    private mutating func remember(_ account: Account) {
        accounts[account.id] = account
        if concurrent && account.kind.isFolded {
            foldedAsRead[account.id] = account
        }
    }

    /// Makes sure the next id is newer than `reference` (many writers: a hold or transaction
    /// committed after this batch drew its ids), so that what refers comes after what it
    /// refers to in id order.
    private mutating func drawIDs(after reference: TransactionID) throws {
        guard concurrent, ids[idCursor] <= reference else { return }
        let fresh = try tx.transactionIDs(count: ids.count - idCursor)
        ids.replaceSubrange(idCursor..., with: fresh)
    }

    // MARK: Groups

    private mutating func resetGroup() {
        undo.removeAll(keepingCapacity: true)
        undoIDs.removeAll(keepingCapacity: true)
        planned.removeAll(keepingCapacity: true)
        // Keep the storage: a batch of single requests would otherwise allocate per request.
        if !groupKeys.isEmpty { groupKeys.removeAll(keepingCapacity: true) }
        if !groupHolds.isEmpty { groupHolds.removeAll(keepingCapacity: true) }
        if !groupResolved.isEmpty { groupResolved.removeAll(keepingCapacity: true) }
        if !groupReversed.isEmpty { groupReversed.removeAll(keepingCapacity: true) }
    }

    private mutating func rollBackGroup(firstCursor: Int) {
        for account in undo.reversed() {
            accounts[account.id] = account
        }
        idCursor = firstCursor
    }

    /// The answer for a key seen before: its first result, or a conflict.
    private func replay(_ existing: IdempotencyRecord, requestHash: [UInt8]) -> PostingResult {
        guard existing.requestHash == requestHash else {
            return .refused(.keyReusedWithDifferentRequest, replayed: false)
        }
        if let id = existing.transactionID {
            return .committed(id, replayed: true)
        }
        return .refused(existing.refusal ?? .transactionNotFound, replayed: true)
    }

    /// A request that is not linked to others: planned optimistically, then the key is
    /// claimed with one insert that doubles as the idempotency lookup. A key seen before
    /// (rare) costs the undo of the in-memory plan and one read.
    private mutating func runSingle(_ request: PostingRequest) throws -> PostingResult {
        resetGroup()
        if request.key.isEmpty {
            return .refused(.keyMustNotBeEmpty, replayed: false)
        }
        if request.key.utf8.count > limits.keyBytesMax {
            return .refused(.keyTooLong, replayed: false)
        }
        let hash = request.canonicalHash(scratch: &scratch)
        let firstCursor = idCursor
        var plan: Planned
        do {
            if request.memo.utf8.count > limits.memoBytesMax {
                throw LedgerRefusal.memoTooLong
            }
            plan = try makePlan(request, requestHash: hash)
        } catch let refusal as LedgerRefusal {
            rollBackGroup(firstCursor: firstCursor)
            if let existing = try tx.idempotencyRecord(key: request.key) {
                return replay(existing, requestHash: hash)
            }
            if refusal.isRemembered {
                try tx.insertIdempotency(IdempotencyRecord(key: request.key, requestHash: hash, transactionID: nil, refusal: refusal, recordedAt: now))
            }
            return .refused(refusal, replayed: false)
        }
        let claimed = try tx.insertIdempotencyIfAbsent(IdempotencyRecord(key: request.key, requestHash: hash, transactionID: plan.record.id, refusal: nil, recordedAt: now))
        guard claimed else {
            rollBackGroup(firstCursor: firstCursor)
            guard let existing = try tx.idempotencyRecord(key: request.key) else {
                throw LedgerError(.corrupt, "an idempotency key conflicted but cannot be read back", context: request.key)
            }
            return replay(existing, requestHash: hash)
        }
        idCursor += 1
        try write(&plan)
        markStagedDirty()
        return .committed(plan.record.id, replayed: false)
    }

    private mutating func runGroup(_ group: ArraySlice<PostingRequest>) throws -> [PostingResult] {
        if group.count == 1 {
            return [try runSingle(group[group.startIndex])]
        }
        resetGroup()
        let firstCursor = idCursor

        var results: [PostingResult] = []
        results.reserveCapacity(group.count)
        var failure: (offset: Int, refusal: LedgerRefusal, replayed: Bool, key: String, hash: [UInt8]?)?
        for (offset, request) in group.enumerated() {
            switch try evaluate(request) {
            case .planned(let id):
                results.append(.committed(id, replayed: false))
            case .replayedCommit(let id):
                results.append(.committed(id, replayed: true))
            case .replayedRefusal(let refusal):
                failure = (offset, refusal, true, request.key, nil)
            case .refused(let refusal, let hash):
                failure = (offset, refusal, false, request.key, hash)
            }
            if failure != nil { break }
        }

        guard let failure else {
            try commitPlanned()
            return results
        }
        // Undo the group in memory; nothing of it was written.
        rollBackGroup(firstCursor: firstCursor)
        var groupResults: [PostingResult] = []
        groupResults.reserveCapacity(group.count)
        for offset in 0..<group.count {
            if offset == failure.offset {
                groupResults.append(.refused(failure.refusal, replayed: failure.replayed))
            } else if offset < results.count, case .committed(let id, true) = results[offset] {
                groupResults.append(.committed(id, replayed: true))
            } else {
                groupResults.append(.refused(.linkedEventFailed, replayed: false))
            }
        }
        if !failure.replayed, failure.refusal.isRemembered, let hash = failure.hash {
            try tx.insertIdempotency(IdempotencyRecord(key: failure.key, requestHash: hash, transactionID: nil, refusal: failure.refusal, recordedAt: now))
        }
        return groupResults
    }

    private mutating func commitPlanned() throws {
        for var plan in planned {
            try tx.insertIdempotency(IdempotencyRecord(key: plan.record.key, requestHash: plan.requestHash, transactionID: plan.record.id, refusal: nil, recordedAt: now))
            try write(&plan)
        }
        markStagedDirty()
    }

    /// Chains the plan onto the journal and writes its rows (not its idempotency row).
    private mutating func write(_ plan: inout Planned) throws {
        plan.record.prevHash = concurrent ? [] : head.hash
        plan.record.hash = HashChain.hash(of: plan.record, entries: plan.entries, hold: plan.hold, scratch: &scratch)
        try tx.insertTransaction(plan.record)
        if concurrent { tx.journalWritten(plan.record.id, hash: plan.record.hash) }
        for entry in plan.entries {
            try tx.insertEntry(entry)
        }
        if let hold = plan.hold {
            try tx.insertHold(hold)
        }
        if let resolution = plan.resolution {
            try tx.insertHoldResolution(resolution)
        }
        head = ChainHead(id: plan.record.id, hash: plan.record.hash, recordedAt: now)
    }

    private mutating func markStagedDirty() {
        for account in undo where !dirty.contains(account.id) {
            dirty.insert(account.id)
            dirtyOrder.append(account.id)
        }
    }

    // MARK: One request

    private mutating func evaluate(_ request: PostingRequest) throws -> Evaluation {
        if request.key.isEmpty {
            return .refused(.keyMustNotBeEmpty, requestHash: nil)
        }
        if request.key.utf8.count > limits.keyBytesMax {
            return .refused(.keyTooLong, requestHash: nil)
        }
        let hash = request.canonicalHash(scratch: &scratch)
        let existing: IdempotencyRecord?
        if let inGroup = groupKeys[request.key] {
            existing = inGroup
        } else {
            existing = try tx.idempotencyRecord(key: request.key)
        }
        if let existing {
            switch replay(existing, requestHash: hash) {
            case .committed(let id, _): return .replayedCommit(id)
            case .refused(.keyReusedWithDifferentRequest, _): return .refused(.keyReusedWithDifferentRequest, requestHash: nil)
            case .refused(let refusal, _): return .replayedRefusal(refusal)
            }
        }
        do {
            if request.memo.utf8.count > limits.memoBytesMax {
                throw LedgerRefusal.memoTooLong
            }
            let plan = try makePlan(request, requestHash: hash)
            groupKeys[request.key] = IdempotencyRecord(key: request.key, requestHash: hash, transactionID: plan.record.id, refusal: nil, recordedAt: now)
            planned.append(plan)
            idCursor += 1
            return .planned(plan.record.id)
        } catch let refusal as LedgerRefusal {
            return .refused(refusal, requestHash: hash)
        }
    }

    private mutating func makePlan(_ request: PostingRequest, requestHash: [UInt8]) throws -> Planned {
        switch request.action {
        case .postHold(let reference, _), .voidHold(let reference), .expireHold(let reference), .reverse(let reference):
            try drawIDs(after: reference)
        case .transfer, .hold:
            break
        }
        let id = nextID
        var record = TransactionRecord(
            id: id, kind: .transfer, key: request.key, refID: nil, recordedAt: now,
            effectiveAt: request.effectiveAt ?? now, memo: request.memo, prevHash: [], hash: [])
        var entries: [EntryRecord] = []
        var hold: HoldRecord?
        var resolution: HoldResolution?

        switch request.action {
        case .transfer(let legs):
            try validate(legs: legs)
            entries = try apply(legs: legs, transactionID: id, allowFrozenDebit: false, releasing: nil)

        case .hold(let debit, let credit, let asset, let amount, let expiresAt):
            guard amount > 0 else { throw LedgerRefusal.amountMustBePositive }
            guard amount <= limits.amountMax else { throw LedgerRefusal.amountExceedsLimit }
            guard debit != credit else { throw LedgerRefusal.accountsMustBeDifferent }
            if let expiresAt, expiresAt <= now { throw LedgerRefusal.expiryMustBeInFuture }
            let newHold = HoldRecord(id: id, debitAccountID: debit, creditAccountID: credit, asset: asset, amount: amount, expiresAt: expiresAt)
            try reserve(newHold)
            record.kind = .hold
            hold = newHold
            groupHolds[id] = newHold

        case .postHold(let holdID, let amount):
            let pending = try openHold(holdID)
            if let expiresAt = pending.expiresAt, expiresAt <= now { throw LedgerRefusal.holdExpired }
            let amountPosted = amount ?? pending.amount
            guard amountPosted > 0 else { throw LedgerRefusal.amountMustBePositive }
            guard amountPosted <= pending.amount else { throw LedgerRefusal.exceedsHoldAmount }
            let legs = [
                Leg(accountID: pending.debitAccountID, side: .debit, asset: pending.asset, amount: amountPosted),
                Leg(accountID: pending.creditAccountID, side: .credit, asset: pending.asset, amount: amountPosted),
            ]
            entries = try apply(legs: legs, transactionID: id, allowFrozenDebit: true, releasing: pending)
            record.kind = .holdPost
            record.refID = holdID
            resolution = HoldResolution(holdID: holdID, transactionID: id, outcome: .posted, amountPosted: amountPosted)
            groupResolved[holdID] = .posted

        case .voidHold(let holdID), .expireHold(let holdID):
            let pending = try openHold(holdID)
            let expiring: Bool
            if case .expireHold = request.action { expiring = true } else { expiring = false }
            if expiring {
                guard let expiresAt = pending.expiresAt, expiresAt <= now else { throw LedgerRefusal.holdNotExpired }
            }
            try release(pending)
            record.kind = expiring ? .holdExpire : .holdVoid
            record.refID = holdID
            let outcome: HoldResolution.Outcome = expiring ? .expired : .voided
            resolution = HoldResolution(holdID: holdID, transactionID: id, outcome: outcome, amountPosted: 0)
            groupResolved[holdID] = outcome

        case .reverse(let originalID):
            let (original, originalEntries) = try transactionForReversal(originalID)
            guard original.kind == .transfer || original.kind == .holdPost else { throw LedgerRefusal.notReversible }
            if groupReversed.contains(originalID) { throw LedgerRefusal.alreadyReversed }
            if try tx.reversal(of: originalID) != nil { throw LedgerRefusal.alreadyReversed }
            let legs = originalEntries.map { entry in
                Leg(accountID: entry.accountID, side: entry.side == .debit ? .credit : .debit, asset: entry.asset, amount: entry.amount)
            }
            entries = try apply(legs: legs, transactionID: id, allowFrozenDebit: false, releasing: nil)
            record.kind = .reversal
            record.refID = originalID
            groupReversed.insert(originalID)
        }
        return Planned(record: record, entries: entries, hold: hold, resolution: resolution, requestHash: requestHash)
    }

    // MARK: Rules

    private func validate(legs: [Leg]) throws {
        guard !legs.isEmpty else { throw LedgerRefusal.legsMustNotBeEmpty }
        guard legs.count <= limits.legsMax else { throw LedgerRefusal.tooManyLegs }
        var cny: Int64 = 0
        var pts: Int64 = 0
        for leg in legs {
            guard leg.amount > 0 else { throw LedgerRefusal.amountMustBePositive }
            guard leg.amount <= limits.amountMax else { throw LedgerRefusal.amountExceedsLimit }
            let signed = leg.side == .credit ? leg.amount : -leg.amount
            let (sum, overflow) = leg.asset == .cny ? cny.addingReportingOverflow(signed) : pts.addingReportingOverflow(signed)
            guard !overflow else { throw LedgerRefusal.amountsOverflow }
            if leg.asset == .cny { cny = sum } else { pts = sum }
        }
        guard cny == 0, pts == 0 else { throw LedgerRefusal.legsMustBalance }
    }

    private mutating func load(_ id: AccountID) throws -> Account {
        if let account = accounts[id] {
            return account
        }
        guard let account = try tx.accountForPosting(id) else { throw LedgerRefusal.accountNotFound }
        remember(account)
        return account
    }

    /// Keeps the account's state from before the group, then stores the new one.
    private mutating func stage(_ account: Account) {
        if !undoIDs.contains(account.id), let before = accounts[account.id] {
            undoIDs.insert(account.id)
            undo.append(before)
        }
        accounts[account.id] = account
    }

    /// Books legs against the accounts (after releasing a hold, when posting one), enforcing
    /// every account rule on the result; returns the entries with running balances.
    private mutating func apply(legs: [Leg], transactionID: TransactionID, allowFrozenDebit: Bool, releasing hold: HoldRecord?) throws -> [EntryRecord] {
        struct Touched {
            var account: Account
            var debited = false
            var credited = false
            var runningBalance: Int64
            var runningSeq: Int64
        }
        // A handful of accounts: a linear list beats hashing here.
        var touched: [Touched] = []
        touched.reserveCapacity(legs.count)
        func index(of id: AccountID) -> Int? { touched.firstIndex { $0.account.id == id } }

        for leg in legs where index(of: leg.accountID) == nil {
            let account = try load(leg.accountID)
            guard account.asset == leg.asset else { throw LedgerRefusal.assetMismatch }
            touched.append(Touched(account: account, runningBalance: account.balance, runningSeq: account.entrySeq))
        }
        if let hold {
            guard let d = index(of: hold.debitAccountID), let c = index(of: hold.creditAccountID),
                  touched[d].account.debitsPending >= hold.amount, touched[c].account.creditsPending >= hold.amount
            else {
                throw LedgerError(.corrupt, "an open hold is not covered by its accounts' pending totals", context: "hold \(hold.id)")
            }
            touched[d].account.debitsPending -= hold.amount
            touched[c].account.creditsPending -= hold.amount
        }
        var entries: [EntryRecord] = []
        entries.reserveCapacity(legs.count)
        for (legIndex, leg) in legs.enumerated() {
            let i = index(of: leg.accountID)!
            if leg.side == .debit {
                let (total, overflow) = touched[i].account.debitsPosted.addingReportingOverflow(leg.amount)
                guard !overflow, total <= limits.accountTotalMax else { throw LedgerRefusal.balanceOverflow }
                touched[i].account.debitsPosted = total
                touched[i].debited = true
                touched[i].runningBalance -= leg.amount
            } else {
                let (total, overflow) = touched[i].account.creditsPosted.addingReportingOverflow(leg.amount)
                guard !overflow, total <= limits.accountTotalMax else { throw LedgerRefusal.balanceOverflow }
                touched[i].account.creditsPosted = total
                touched[i].credited = true
                touched[i].runningBalance += leg.amount
            }
            touched[i].runningSeq += 1
            // Many writers: a system account's entries carry no running balance or sequence
            // (its totals are added to by writers that do not wait for each other).
            let folded = concurrent && touched[i].account.kind.isFolded
            entries.append(EntryRecord(
                transactionID: transactionID, leg: legIndex, accountID: leg.accountID, asset: leg.asset,
                side: leg.side, amount: leg.amount, balanceAfter: folded ? 0 : touched[i].runningBalance,
                accountSeq: folded ? 0 : touched[i].runningSeq, recordedAt: now))
        }
        for item in touched {
            try check(item.account, debited: item.debited, credited: item.credited, allowFrozenDebit: allowFrozenDebit)
        }
        for item in touched {
            var account = item.account
            account.entrySeq = item.runningSeq
            stage(account)
        }
        return entries
    }

    private func check(_ account: Account, debited: Bool, credited: Bool, allowFrozenDebit: Bool) throws {
        let rules = account.rules
        if rules.closed && (debited || credited) { throw LedgerRefusal.accountClosed }
        if rules.frozen && debited && !allowFrozenDebit { throw LedgerRefusal.accountFrozen }
        if rules.debitsMustNotExceedCredits && debited {
            let (debits, o1) = account.debitsPosted.addingReportingOverflow(account.debitsPending)
            let (credits, o2) = account.creditsPosted.addingReportingOverflow(rules.overdraftLimit)
            if o1 || (!o2 && debits > credits) { throw LedgerRefusal.exceedsCredits }
        }
        if rules.creditsMustNotExceedDebits && credited {
            let (credits, overflow) = account.creditsPosted.addingReportingOverflow(account.creditsPending)
            if overflow || credits > account.debitsPosted { throw LedgerRefusal.exceedsDebits }
        }
    }

    /// Phase one of a two-phase transfer: pending totals grow, rules are checked.
    private mutating func reserve(_ hold: HoldRecord) throws {
        var debit = try load(hold.debitAccountID)
        var credit = try load(hold.creditAccountID)
        guard debit.asset == hold.asset, credit.asset == hold.asset else { throw LedgerRefusal.assetMismatch }
        let (debitsPending, o1) = debit.debitsPending.addingReportingOverflow(hold.amount)
        let (creditsPending, o2) = credit.creditsPending.addingReportingOverflow(hold.amount)
        guard !o1, !o2, debitsPending <= limits.accountTotalMax, creditsPending <= limits.accountTotalMax else { throw LedgerRefusal.balanceOverflow }
        debit.debitsPending = debitsPending
        credit.creditsPending = creditsPending
        try check(debit, debited: true, credited: false, allowFrozenDebit: false)
        try check(credit, debited: false, credited: true, allowFrozenDebit: false)
        stage(debit)
        stage(credit)
    }

    /// Voids or expires a hold: the reserved amount is free again; no rule can refuse that.
    private mutating func release(_ hold: HoldRecord) throws {
        var debit = try load(hold.debitAccountID)
        guard debit.debitsPending >= hold.amount else {
            throw LedgerError(.corrupt, "an open hold is not covered by its debit account's pending total", context: "hold \(hold.id)")
        }
        debit.debitsPending -= hold.amount
        stage(debit)
        var credit = try load(hold.creditAccountID)
        guard credit.creditsPending >= hold.amount else {
            throw LedgerError(.corrupt, "an open hold is not covered by its credit account's pending total", context: "hold \(hold.id)")
        }
        credit.creditsPending -= hold.amount
        stage(credit)
    }

    private func openHold(_ holdID: TransactionID) throws -> HoldRecord {
        guard let hold = try groupHolds[holdID] ?? tx.hold(id: holdID) else { throw LedgerRefusal.holdNotFound }
        let outcome = try groupResolved[holdID] ?? tx.holdResolution(holdID: holdID)?.outcome
        switch outcome {
        case .posted: throw LedgerRefusal.holdAlreadyPosted
        case .voided, .expired: throw LedgerRefusal.holdAlreadyVoided
        case nil: return hold
        }
    }

    private func transactionForReversal(_ id: TransactionID) throws -> (TransactionRecord, [EntryRecord]) {
        if let plan = planned.first(where: { $0.record.id == id }) {
            return (plan.record, plan.entries)
        }
        guard let record = try tx.transaction(id: id) else { throw LedgerRefusal.transactionNotFound }
        return (record, try tx.entries(transactionID: id))
    }
}
