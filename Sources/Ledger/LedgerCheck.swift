/// One thing `Ledger.check()` found wrong.
public struct LedgerViolation: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A stable name for the kind of violation ("hash_chain_broken", ...).
    public var code: String
    public var message: String
    public var accountID: AccountID?
    public var transactionID: TransactionID?

    public init(code: String, message: String, accountID: AccountID? = nil, transactionID: TransactionID? = nil) {
        self.code = code
        self.message = message
        self.accountID = accountID
        self.transactionID = transactionID
    }

    public var description: String {
        var where_ = ""
        if let transactionID { where_ += " transaction=\(transactionID)" }
        if let accountID { where_ += " account=\(accountID)" }
        return "\(code):\(where_) \(message)"
    }
}

/// Posted totals of one asset over all accounts.
public struct TrialBalanceLine: Sendable, Hashable, Codable {
    public var asset: Asset
    public var debitsPosted: Int64
    public var creditsPosted: Int64
    public var debitsPending: Int64
    public var creditsPending: Int64
    public var accounts: Int
}

/// What `Ledger.check()` verified and found.
public struct LedgerCheckReport: Sendable, Codable {
    public var ok: Bool { violationCount == 0 }
    /// The first `violationsListedMax` violations.
    public var violations: [LedgerViolation]
    public var violationCount: Int
    public var accounts: Int
    public var transactions: Int
    public var entries: Int
    public var trialBalance: [TrialBalanceLine]
    /// The chain head checked (`SEQ:HASH`): an anchor a later check can be asked to find.
    public var head: String = ChainHead.genesis.anchor
    /// Committed transactions still waiting for their seal when the snapshot was taken (with
    /// many writers: written after the check sealed the queue).
    public var unsealed: Int64 = 0
}

/// A check that ended because it was asked to stop (`Ledger.check(_:stopWhen:)`): it
/// verified nothing, and says nothing of the ledger.
public struct CheckStopped: Error, Sendable, CustomStringConvertible {
    public var rowsRead: Int
    public init(rowsRead: Int) { self.rowsRead = rowsRead }
    public var description: String { "the ledger check was asked to stop after \(rowsRead) rows; it verified nothing" }
}

extension Ledger {
    /// How many violations a report lists (all are counted).
    public static let violationsListedMax = 1_000
    /// How many rows the check reads between two looks at whether it must stop (a power of 2).
    static let checkPace = 4_096

    /// Verifies the whole ledger from its journal: every asset sums to zero, each account's
    /// totals equal its entries, running balances and sequences are continuous, no account
    /// rule is violated, holds add up to the pending totals, and the hash chain is intact.
    public func check() throws -> LedgerCheckReport {
        try store.sealPending()
        return try store.read { tx in try Self.check(tx) }
    }

    /// `check()`, and a proof that the journal still holds an anchor taken earlier (from a
    /// payment report or a reconciliation): the transaction `SEQ` exists with hash `HASH`,
    /// and the chain through it verifies. A lost tail (a restored backup, a lost WAL) that
    /// the chain alone cannot show is found this way.
    public func check(expectingHead anchor: String) throws -> LedgerCheckReport {
        try store.sealPending()
        return try store.read { tx in
            var report = try Self.check(tx)
            guard let expected = ChainHead.parse(anchor: anchor) else {
                throw LedgerError(.invalidAccount, "an anchor is SEQ:HASH, the sequence number and 64 hex digits, as payment reports print it", context: String(anchor.prefix(80)))
            }
            if expected.id == 0 { return report }
            let stored = try tx.anchoredHash(at: expected.id)
            if stored == nil {
                report.violations.append(LedgerViolation(code: "expected_head_missing", message: "the journal has no transaction \(expected.id): the ledger lost transactions that were anchored (reported to a biller or reconciled)", transactionID: expected.id))
                report.violationCount += 1
            } else if stored != expected.hash {
                report.violations.append(LedgerViolation(code: "expected_head_differs", message: "transaction \(expected.id) does not have the anchored hash: the journal was rewritten after the anchor was taken", transactionID: expected.id))
                report.violationCount += 1
            }
            return report
        }
    }

    /// `check()` inside a caller's transaction or snapshot. `stopWhen` is asked every few
    /// thousand rows read: when it answers true the check ends at once with `CheckStopped`
    /// (a run asked to stop does not read the rest of a journal that grows with the months).
    public static func check(_ tx: any LedgerReading, stopWhen: () -> Bool = { false }) throws -> LedgerCheckReport {
        var violations: [LedgerViolation] = []
        var violationCount = 0
        func report(_ violation: LedgerViolation) {
            violationCount += 1
            if violations.count < violationsListedMax { violations.append(violation) }
        }
        var rowsRead = 0
        func pace() throws {
            rowsRead &+= 1
            if rowsRead & (checkPace - 1) == 0, stopWhen() { throw CheckStopped(rowsRead: rowsRead) }
        }

        // The journal in id order: the chain, each transaction's balance and kind, each hold's
        // resolution. Nothing is kept that grows with the journal: a transaction reversed
        // twice is found after it, through the reversals in the order of what they name, and
        // the accounts in a pass of their own, in their own order, each with what the holds
        // no resolution names leave pending on it, summed by the engine. Which holds those are
        // rests on the resolution rows, so this pass proves the rows and the journal agree:
        // every transaction that resolves a hold has the one row naming it and its hold, and
        // every row names such a transaction (one row a hold: the table's key).
        let concurrent = tx.concurrentWriters
        var previous = ChainHead.genesis
        var chainReported = false
        var scratch: [UInt8] = []
        var transactionCount = 0
        var entryCount = 0

        try tx.forEachTransaction { record, entries, hold, links in
            try pace()
            transactionCount += 1
            entryCount += entries.count
            let id = record.id
            if concurrent {
                // Ids come from a sequence (a rolled-back transaction leaves a gap); the chain
                // is the seals', checked below. Here: each row still matches its own hash.
                if HashChain.hash(of: record, entries: entries, hold: hold, scratch: &scratch) != record.hash {
                    report(LedgerViolation(code: "hash_chain_broken", message: "the transaction's content does not match its hash: it was altered after it was written", transactionID: id))
                }
                if id <= previous.id {
                    report(LedgerViolation(code: "journal_out_of_order", message: "transaction id \(id) follows \(previous.id)", transactionID: id))
                }
            } else if id != previous.id + 1 {
                report(LedgerViolation(code: "journal_gap", message: "transaction ids jump from \(previous.id) to \(id)", transactionID: id))
            }
            if !concurrent && !chainReported {
                if record.prevHash != previous.hash {
                    chainReported = true
                    report(LedgerViolation(code: "hash_chain_broken", message: "the stored previous hash does not match transaction \(previous.id)", transactionID: id))
                } else if HashChain.hash(of: record, entries: entries, hold: hold, scratch: &scratch) != record.hash {
                    chainReported = true
                    report(LedgerViolation(code: "hash_chain_broken", message: "the transaction's content does not match its hash: it was altered after it was written", transactionID: id))
                }
            }
            previous = ChainHead(id: id, hash: record.hash, recordedAt: record.recordedAt)

            var cny: Int128 = 0
            var pts: Int128 = 0
            for entry in entries {
                let delta = Int128(entry.side == .credit ? entry.amount : -entry.amount)
                if entry.asset == .cny { cny += delta } else { pts += delta }
            }
            if cny != 0 || pts != 0 {
                report(LedgerViolation(code: "unbalanced_transaction", message: "debits and credits differ (CNY \(cny), PTS \(pts))", transactionID: id))
            }

            switch record.kind {
            case .transfer, .reversal, .holdPost:
                if entries.count < 2 {
                    report(LedgerViolation(code: "missing_entries", message: "a \(record.kind.rawValue) has \(entries.count) entries", transactionID: id))
                }
            case .hold, .holdVoid, .holdExpire:
                if !entries.isEmpty {
                    report(LedgerViolation(code: "unexpected_entries", message: "a \(record.kind.rawValue) moves no posted balance but has entries", transactionID: id))
                }
            }
            let link = links.last
            if hold != nil && record.kind != .hold {
                report(LedgerViolation(code: "unexpected_hold", message: "a \(record.kind.rawValue) has a hold row", transactionID: id))
            }
            if let link, !record.kind.resolvesAHold {
                report(LedgerViolation(code: "hold_resolution_orphaned", message: "a resolution of hold \(link.holdID) names a \(record.kind.rawValue), which resolves no hold", transactionID: id))
            }
            switch record.kind {
            case .hold:
                if hold == nil {
                    report(LedgerViolation(code: "missing_hold", message: "a hold transaction has no hold row", transactionID: id))
                }
            case .holdPost, .holdVoid, .holdExpire:
                // The hold it names is an earlier hold that this transaction alone resolved:
                // its resolution row (one a hold) names both. A second resolution of the same
                // hold has no row of its own.
                if let ref = record.refID, ref < id, let link, link.holdID == ref, link.namesAHold {
                    break
                }
                let why = if let ref = record.refID, let link {
                    link.holdID != ref ? "names hold \(ref), its resolution row hold \(link.holdID)" : "names a transaction that is not an earlier hold"
                } else if record.refID == nil {
                    "names no hold"
                } else {
                    "has no resolution row: the hold was resolved by another transaction, or the row was removed"
                }
                report(LedgerViolation(code: "hold_not_open", message: "resolves a hold that is not open: it \(why)", transactionID: id))
            case .reversal:
                if !(record.refID.map { $0 < id } ?? false) {
                    report(LedgerViolation(code: "reversal_without_original", message: "a reversal names no earlier transaction", transactionID: id))
                }
            case .transfer:
                break
            }
        } orphan: { row in
            switch row {
            case .entry(let entry):
                entryCount += 1
                report(LedgerViolation(code: "orphan_entry", message: "an entry names transaction \(entry.transactionID), which is not in the journal", accountID: entry.accountID, transactionID: entry.transactionID))
            case .hold(let hold):
                report(LedgerViolation(code: "orphan_hold", message: "a hold row names transaction \(hold.id), which is not in the journal", accountID: hold.debitAccountID, transactionID: hold.id))
            case .resolution(let link):
                report(LedgerViolation(code: "hold_resolution_orphaned", message: "a resolution of hold \(link.holdID) names a transaction the journal does not hold", transactionID: link.transactionID))
            }
        }

        // Each reversal after the first of the transaction it names (the journal's unique
        // index refuses one, so only a journal written around the ledger has it).
        try tx.forEachRepeatedReversal { original, reversal in
            report(LedgerViolation(code: "reversed_twice", message: "transaction \(original) is reversed more than once", transactionID: reversal))
        }

        // The accounts in id order, each with its entries in the order of its own sequence:
        // continuous from 1, each running balance the one before it moved by the entry, the
        // totals the entries' and the pending the open holds'. With many writers a system
        // account's entries carry neither sequence nor balance (0): its totals are checked,
        // not its order.
        struct Running { var debits: Int128 = 0; var credits: Int128 = 0; var balance: Int64 = 0; var seq: Int64 = 0; var count: Int64 = 0 }
        var current: Account?
        var numbered = false
        var r = Running()
        var accountCount = 0
        var lines: [Asset: TrialBalanceLine] = [:]
        var sums: [Asset: (balance: Int128, pendingDebits: Int128, pendingCredits: Int128)] = [:]
        var currentHeld = HeldAmounts.none
        func close(_ account: Account, _ r: Running, _ held: HeldAmounts) {
            if Int128(account.debitsPosted) != r.debits || Int128(account.creditsPosted) != r.credits {
                report(LedgerViolation(code: "account_totals_mismatch", message: "stored debits/credits \(account.debitsPosted)/\(account.creditsPosted), entries give \(r.debits)/\(r.credits)", accountID: account.id))
            }
            if account.entrySeq != r.count {
                report(LedgerViolation(code: "entry_sequence_mismatch", message: "stored entry sequence \(account.entrySeq), the account has \(r.count) entries", accountID: account.id))
            }
            if Int128(account.debitsPending) != held.debits || Int128(account.creditsPending) != held.credits {
                report(LedgerViolation(code: "pending_totals_mismatch", message: "stored pending \(account.debitsPending)/\(account.creditsPending), open holds give \(held.debits)/\(held.credits)", accountID: account.id))
            }
            let rules = account.rules
            if rules.debitsMustNotExceedCredits,
               Int128(account.debitsPosted) + Int128(account.debitsPending) > Int128(account.creditsPosted) + Int128(rules.overdraftLimit) {
                report(LedgerViolation(code: "rule_violated", message: "debits exceed credits plus the overdraft limit", accountID: account.id))
            }
            if rules.creditsMustNotExceedDebits,
               Int128(account.creditsPosted) + Int128(account.creditsPending) > Int128(account.debitsPosted) {
                report(LedgerViolation(code: "rule_violated", message: "credits exceed debits", accountID: account.id))
            }
            var line = lines[account.asset] ?? TrialBalanceLine(asset: account.asset, debitsPosted: 0, creditsPosted: 0, debitsPending: 0, creditsPending: 0, accounts: 0)
            line.debitsPosted &+= account.debitsPosted
            line.creditsPosted &+= account.creditsPosted
            line.debitsPending &+= account.debitsPending
            line.creditsPending &+= account.creditsPending
            line.accounts += 1
            lines[account.asset] = line
            var sum = sums[account.asset] ?? (0, 0, 0)
            sum.balance += Int128(account.creditsPosted) - Int128(account.debitsPosted)
            sum.pendingDebits += Int128(account.debitsPending)
            sum.pendingCredits += Int128(account.creditsPending)
            sums[account.asset] = sum
        }
        try tx.forEachAccount({ account, held in
            if let done = current { close(done, r, currentHeld) }
            accountCount += 1
            current = account
            currentHeld = held
            numbered = !(concurrent && account.kind.isFolded)
            r = Running()
        }, entry: { entry in
            try pace()
            guard let account = current, account.id == entry.accountID else {
                report(LedgerViolation(code: "unknown_account", message: "an entry names an account that does not exist", accountID: entry.accountID, transactionID: entry.transactionID))
                return
            }
            if account.asset != entry.asset {
                report(LedgerViolation(code: "asset_mismatch", message: "an entry's asset differs from its account's", accountID: entry.accountID, transactionID: entry.transactionID))
            }
            if entry.side == .debit { r.debits += Int128(entry.amount) } else { r.credits += Int128(entry.amount) }
            r.count += 1
            guard numbered else {
                if entry.accountSeq != 0 || entry.balanceAfter != 0 {
                    report(LedgerViolation(code: "entry_sequence_broken", message: "an entry of a system account carries sequence \(entry.accountSeq) and balance \(entry.balanceAfter); with many writers both are 0", accountID: entry.accountID, transactionID: entry.transactionID))
                }
                return
            }
            if entry.accountSeq != r.seq + 1 {
                report(LedgerViolation(code: "entry_sequence_broken", message: "entry sequence \(entry.accountSeq) follows \(r.seq)", accountID: entry.accountID, transactionID: entry.transactionID))
            }
            let expected = r.balance &+ (entry.side == .credit ? entry.amount : -entry.amount)
            if entry.balanceAfter != expected {
                report(LedgerViolation(code: "running_balance_mismatch", message: "balance after entry is \(entry.balanceAfter), the entries before it give \(expected)", accountID: entry.accountID, transactionID: entry.transactionID))
            }
            r.seq = entry.accountSeq
            r.balance = entry.balanceAfter
        }, heldByNoAccount: { id in
            // An open hold that names no account (its other account's pending is checked).
            report(LedgerViolation(code: "unknown_account", message: "an open hold names an account that does not exist", accountID: id))
        })
        if let done = current { close(done, r, currentHeld) }

        // Many writers: the seals chain every transaction, once, in the order they were sealed.
        var unsealed: Int64 = 0
        if concurrent {
            var sealHead = ChainHead.genesis
            var sealed = 0
            var sealReported = false
            try tx.forEachSeal { seal in
                try pace()
                sealed += 1
                guard !sealReported else { return }
                if seal.pos != sealHead.id + 1 {
                    sealReported = true
                    report(LedgerViolation(code: "hash_chain_broken", message: "seal positions jump from \(sealHead.id) to \(seal.pos)", transactionID: seal.transactionID))
                } else if let content = seal.contentHash {
                    if HashChain.seal(previous: sealHead.hash, pos: seal.pos, transactionID: seal.transactionID, contentHash: content, scratch: &scratch) != seal.hash {
                        sealReported = true
                        report(LedgerViolation(code: "hash_chain_broken", message: "seal \(seal.pos) does not chain its transaction onto the seal before it: the journal or the chain was rewritten", transactionID: seal.transactionID))
                    }
                } else {
                    sealReported = true
                    report(LedgerViolation(code: "sealed_transaction_missing", message: "seal \(seal.pos) names a transaction the journal no longer holds", transactionID: seal.transactionID))
                }
                sealHead = ChainHead(id: seal.pos, hash: seal.hash, recordedAt: 0)
            }
            previous = sealHead
            unsealed = try tx.unsealedCount()
            for id in try tx.neitherSealedNorQueued() {
                report(LedgerViolation(code: "unsealed_transaction", message: "a journal row is neither sealed nor waiting for its seal: it was written around the ledger", transactionID: id))
            }
            if Int64(sealed) + unsealed != Int64(transactionCount) {
                report(LedgerViolation(code: "seal_count_mismatch", message: "\(sealed) seals and \(unsealed) rows waiting for one, but \(transactionCount) transactions"))
            }
        }

        for asset in Asset.allCases {
            guard let sum = sums[asset] else { continue }
            if sum.balance != 0 {
                report(LedgerViolation(code: "asset_does_not_sum_to_zero", message: "\(asset.rawValue) balances sum to \(sum.balance) \(asset.unitName)"))
            }
            if sum.pendingDebits != sum.pendingCredits {
                report(LedgerViolation(code: "pending_does_not_balance", message: "\(asset.rawValue) pending debits \(sum.pendingDebits) differ from pending credits \(sum.pendingCredits)"))
            }
        }
        return LedgerCheckReport(
            violations: violations, violationCount: violationCount, accounts: accountCount,
            transactions: transactionCount, entries: entryCount,
            trialBalance: Asset.allCases.compactMap { lines[$0] }, head: previous.anchor, unsealed: unsealed)
    }
}
