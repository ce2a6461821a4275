import GRDB
import Ledger

/// What other modules read of the campaign tables (reconciliation), in the caller's
/// transaction or snapshot.
public struct CampaignStore {
    let db: Database

    public init(_ db: Database) { self.db = db }

    /// The sponsors that funded an allocation, in name order.
    public func sponsors() throws -> [String] {
        try String.fetchAll(db, sql: "SELECT DISTINCT sponsor FROM campaign_allocations ORDER BY sponsor")
    }

    /// The discounts a sponsor funds that no refund reversed.
    public func liveDiscountFen(sponsor: String) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT coalesce(sum(discount_fen), 0) FROM campaign_allocations WHERE sponsor = ? AND reversed_at IS NULL", arguments: [sponsor]) ?? 0
    }

    /// What the budgets of the sponsor's campaigns record as used.
    public func budgetUsedFen(sponsor: String) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT coalesce(sum(spent_fen), 0) FROM campaign_budgets WHERE campaign_id IN (SELECT DISTINCT campaign_id FROM campaign_allocations WHERE sponsor = ?)", arguments: [sponsor]) ?? 0
    }

    /// Points given by every campaign, by what became of them.
    public struct PointsTotals: Sendable, Hashable {
        public var issued: Int64 = 0
        /// Vested, the expired ones included.
        public var vested: Int64 = 0
        public var expired: Int64 = 0
        public var reversed: Int64 = 0
    }

    public func pointsTotals() throws -> PointsTotals {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT coalesce(sum(points), 0),
                coalesce(sum(CASE WHEN points_status IN ('vested', 'expired') THEN points ELSE 0 END), 0),
                coalesce(sum(CASE WHEN points_status = 'expired' THEN points ELSE 0 END), 0),
                coalesce(sum(CASE WHEN points_status = 'reversed' THEN points ELSE 0 END), 0)
            FROM campaign_allocations
            """) else { return PointsTotals() }
        return PointsTotals(issued: row[0], vested: row[1], expired: row[2], reversed: row[3])
    }

    // MARK: Settlement

    /// An allocation's pending points, held until its refund window passes.
    public struct PendingPoints: Sendable {
        public var id: Int64
        public var holdID: TransactionID
        public var points: Int64
    }

    /// Pending points that vest before `cutoff`, after allocation `afterID`, soonest first.
    public func pendingPoints(vestingBefore cutoff: TimestampMicros, after afterID: Int64, limit: Int) throws -> [PendingPoints] {
        try Row.fetchAll(db, sql: """
            SELECT id, points_hold_id, points FROM campaign_allocations
            WHERE points_status = 'pending' AND vest_at < ? AND id > ? ORDER BY vest_at, id LIMIT ?
            """, arguments: [cutoff, afterID, limit]).map { PendingPoints(id: $0[0], holdID: $0[1], points: $0[2]) }
    }

    public func markVested(allocationID: Int64) throws {
        try db.execute(sql: "UPDATE campaign_allocations SET points_status = 'vested' WHERE id = ?", arguments: [allocationID])
    }

    /// A lot of vested points and the wallet that holds it.
    public struct VestedPoints: Sendable {
        public var id: Int64
        public var remaining: Int64
        public var walletID: Int64
    }

    /// Vested points that expire before `cutoff`, after allocation `afterID`, soonest-to-expire first.
    public func vestedPoints(expiringBefore cutoff: TimestampMicros, after afterID: Int64, limit: Int) throws -> [VestedPoints] {
        try Row.fetchAll(db, sql: """
            SELECT id, points_remaining, wallet_id FROM campaign_allocations
            WHERE points_status = 'vested' AND expires_at < ? AND id > ? AND wallet_id IS NOT NULL ORDER BY expires_at, id LIMIT ?
            """, arguments: [cutoff, afterID, limit]).map { VestedPoints(id: $0[0], remaining: $0[1], walletID: $0[2]) }
    }

    public func markExpired(allocationID: Int64) throws {
        try db.execute(sql: "UPDATE campaign_allocations SET points_status = 'expired', points_remaining = 0 WHERE id = ?", arguments: [allocationID])
    }

    /// What one campaign of a sponsor gave and took back in a period.
    public struct PeriodLine: Sendable {
        public var campaignID: String
        public var payments: Int
        public var discountsFen: Int64
        public var refunds: Int
        public var refundedFen: Int64
        public var pointsIssued: Int64
        public var pointsTakenBack: Int64
    }

    /// The sponsor's campaigns in `[from, to)`, in campaign order.
    public func periodLines(sponsor: String, from: TimestampMicros, to: TimestampMicros) throws -> [PeriodLine] {
        try Row.fetchAll(db, sql: """
            SELECT campaign_id,
                sum(CASE WHEN at >= ?1 AND at < ?2 AND discount_fen > 0 THEN 1 ELSE 0 END),
                sum(CASE WHEN at >= ?1 AND at < ?2 THEN discount_fen ELSE 0 END),
                sum(CASE WHEN reversed_at >= ?1 AND reversed_at < ?2 AND discount_fen > 0 THEN 1 ELSE 0 END),
                sum(CASE WHEN reversed_at >= ?1 AND reversed_at < ?2 THEN discount_fen ELSE 0 END),
                sum(CASE WHEN at >= ?1 AND at < ?2 THEN points ELSE 0 END),
                sum(CASE WHEN reversed_at >= ?1 AND reversed_at < ?2 THEN points ELSE 0 END)
            FROM campaign_allocations WHERE sponsor = ?3 GROUP BY campaign_id ORDER BY campaign_id
            """, arguments: [from, to, sponsor]).map {
            PeriodLine(campaignID: $0[0], payments: $0[1], discountsFen: $0[2], refunds: $0[3], refundedFen: $0[4], pointsIssued: $0[5], pointsTakenBack: $0[6])
        }
    }

    /// Of the points a sponsor's campaigns gave before `to`: vested (expired ones included) and expired.
    public func settledPoints(sponsor: String, allocatedBefore to: TimestampMicros) throws -> (vested: Int64, expired: Int64) {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT coalesce(sum(CASE WHEN points_status IN ('vested', 'expired') THEN points ELSE 0 END), 0),
                   coalesce(sum(CASE WHEN points_status = 'expired' THEN points ELSE 0 END), 0)
            FROM campaign_allocations WHERE sponsor = ? AND at < ?
            """, arguments: [sponsor, to]) else { return (0, 0) }
        return (row[0], row[1])
    }

    // MARK: For operators

    /// What a campaign's budget records as used.
    public func budgetUsedFen(campaignID: String) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT spent_fen FROM campaign_budgets WHERE campaign_id = ?", arguments: [campaignID]) ?? 0
    }

    /// A campaign's payments that stand (not refunded), and the points they gave.
    public func standingUse(campaignID: String) throws -> (payments: Int, points: Int64) {
        guard let row = try Row.fetchOne(db, sql: "SELECT count(*), coalesce(sum(points), 0) FROM campaign_allocations WHERE campaign_id = ? AND reversed_at IS NULL", arguments: [campaignID]) else { return (0, 0) }
        return (row[0], row[1])
    }

    /// A campaign's standing uses by month (`YYYY-MM`), in month order.
    public func usesByMonth(campaignID: String) throws -> [(month: String, uses: Int, discountFen: Int64)] {
        try Row.fetchAll(db, sql: "SELECT month, count(*), sum(discount_fen) FROM campaign_allocations WHERE campaign_id = ? AND reversed_at IS NULL GROUP BY month ORDER BY month", arguments: [campaignID])
            .map { ($0[0], $0[1], $0[2]) }
    }

    /// What was recorded of the campaigns' evaluation of one payment.
    public struct Explanation: Sendable {
        public var paymentKey: String
        /// The payment's context and each campaign's verdict, as JSON texts.
        public var context: String
        public var explanation: String
    }

    public func explanation(transactionID: Int64) throws -> Explanation? {
        try Row.fetchOne(db, sql: "SELECT payment_key, context, explanation FROM campaign_explanations WHERE transaction_id = ?", arguments: [transactionID])
            .map { Explanation(paymentKey: $0[0], context: $0[1], explanation: $0[2]) }
    }

    // MARK: The book's bookkeeping (CampaignBook)

    /// What a campaign's budget records as used, in all (`day` nil) or on one day.
    func budgetSpent(campaignID: String, day: String?) throws -> Int64 {
        if let day {
            return try Int64.fetchOne(try db.cachedStatement(sql: "SELECT spent_fen FROM campaign_budget_days WHERE campaign_id = ? AND day = ?"), arguments: [campaignID, day]) ?? 0
        }
        return try Int64.fetchOne(try db.cachedStatement(sql: "SELECT spent_fen FROM campaign_budgets WHERE campaign_id = ?"), arguments: [campaignID]) ?? 0
    }

    /// The content hash a campaign version was first loaded with.
    func versionHash(campaignID: String, version: Int) throws -> String? {
        try String.fetchOne(try db.cachedStatement(sql: "SELECT content_hash FROM campaign_versions WHERE campaign_id = ? AND version = ?"), arguments: [campaignID, version])
    }

    func insertVersion(campaignID: String, version: Int, contentHash: String, definition: String, at now: TimestampMicros) throws {
        try db.cachedStatement(sql: "INSERT INTO campaign_versions (campaign_id, version, content_hash, definition, loaded_at) VALUES (?, ?, ?, ?, ?)")
            .execute(arguments: [campaignID, version, contentHash, definition, now])
    }

    /// The standing uses of a campaign by one wallet or bill account, in one period of a cap
    /// (`period` nil: the whole campaign).
    func capUse(campaignID: String, scope: Campaign.CapScope, scopeValue: Int64, period: (column: PeriodColumn, key: String)?) throws -> (count: Int, fen: Int64) {
        let scopeColumn = scope == .wallet ? "wallet_id" : "bill_account_id"
        var sql = "SELECT count(*), coalesce(sum(discount_fen), 0) FROM campaign_allocations WHERE campaign_id = ? AND \(scopeColumn) = ? AND reversed_at IS NULL"
        var arguments: StatementArguments = [campaignID, scopeValue]
        if let period {
            sql += " AND \(period.column.rawValue) = ?"
            arguments += [period.key]
        }
        guard let row = try Row.fetchOne(try db.cachedStatement(sql: sql), arguments: arguments) else { return (0, 0) }
        return (row[0], row[1])
    }

    /// The period columns allocations are counted by.
    enum PeriodColumn: String {
        case day, week, month
    }

    /// A stored allocation, as refunds and retries read it.
    struct StoredAllocation {
        var id: Int64
        var campaignID: String
        var version: Int
        var sponsor: String
        var discountFen: Int64
        var points: Int64
        var day: String
        var pointsStatus: String?
        var pointsRemaining: Int64
        var pointsHoldID: TransactionID?
    }

    /// A payment's allocations in id order; with `standingOnly`, those not reversed.
    func allocations(paymentKey: String, standingOnly: Bool) throws -> [StoredAllocation] {
        let sql = "SELECT id, campaign_id, version, sponsor, discount_fen, points, day, points_status, points_remaining, points_hold_id FROM campaign_allocations WHERE payment_key = ?"
            + (standingOnly ? " AND reversed_at IS NULL" : "") + " ORDER BY id"
        return try Row.fetchAll(try db.cachedStatement(sql: sql), arguments: [paymentKey]).map {
            StoredAllocation(id: $0[0], campaignID: $0[1], version: $0[2], sponsor: $0[3], discountFen: $0[4], points: $0[5], day: $0[6], pointsStatus: $0[7], pointsRemaining: $0[8], pointsHoldID: $0[9])
        }
    }

    struct NewAllocation {
        var paymentKey: String
        var transactionID: TransactionID
        var campaignID: String
        var version: Int
        var sponsor: String
        var walletID: Int64?
        var billAccountID: Int64?
        var discountFen: Int64
        var points: Int64
        var pointsHoldID: TransactionID?
        var vestAt: TimestampMicros?
        var expiresAt: TimestampMicros?
        var at: TimestampMicros
        var day: String
        var week: String
        var month: String
    }

    /// Writes an allocation (its points pending when it gives any) and adds its discount to
    /// the campaign's budget, in all and for its day.
    func insert(_ allocation: NewAllocation) throws {
        try db.cachedStatement(sql: """
            INSERT INTO campaign_allocations (payment_key, transaction_id, campaign_id, version, sponsor, wallet_id, bill_account_id, discount_fen, points,
                points_hold_id, vest_at, expires_at, points_status, points_remaining, at, day, week, month)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [allocation.paymentKey, allocation.transactionID, allocation.campaignID, allocation.version, allocation.sponsor, allocation.walletID,
                                     allocation.billAccountID, allocation.discountFen, allocation.points, allocation.pointsHoldID, allocation.vestAt, allocation.expiresAt,
                                     allocation.points > 0 ? "pending" : nil, allocation.points, allocation.at, allocation.day, allocation.week, allocation.month])
        if allocation.discountFen > 0 {
            try db.cachedStatement(sql: "INSERT INTO campaign_budgets (campaign_id, spent_fen) VALUES (?, ?) ON CONFLICT (campaign_id) DO UPDATE SET spent_fen = spent_fen + excluded.spent_fen")
                .execute(arguments: [allocation.campaignID, allocation.discountFen])
            try db.cachedStatement(sql: "INSERT INTO campaign_budget_days (campaign_id, day, spent_fen) VALUES (?, ?, ?) ON CONFLICT (campaign_id, day) DO UPDATE SET spent_fen = spent_fen + excluded.spent_fen")
                .execute(arguments: [allocation.campaignID, allocation.day, allocation.discountFen])
        }
    }

    /// Stores (or replaces) what the campaigns said of a payment.
    func saveExplanation(paymentKey: String, transactionID: TransactionID, context: String, explanation: String, at: TimestampMicros) throws {
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO campaign_explanations (payment_key, transaction_id, context, explanation, at) VALUES (?, ?, ?, ?, ?)")
            .execute(arguments: [paymentKey, transactionID, context, explanation, at])
    }

    /// Gives an allocation's discount back to its campaign's budget, in all and for its day.
    func releaseBudget(campaignID: String, day: String, fen: Int64) throws {
        try db.cachedStatement(sql: "UPDATE campaign_budgets SET spent_fen = spent_fen - ? WHERE campaign_id = ?").execute(arguments: [fen, campaignID])
        try db.cachedStatement(sql: "UPDATE campaign_budget_days SET spent_fen = spent_fen - ? WHERE campaign_id = ? AND day = ?").execute(arguments: [fen, campaignID, day])
    }

    func markReversed(allocationID: Int64, reversal: TransactionID, at: TimestampMicros) throws {
        try db.cachedStatement(sql: "UPDATE campaign_allocations SET reversed_at = ?, reversal_transaction_id = ?, points_status = CASE WHEN points > 0 THEN 'reversed' ELSE NULL END, points_remaining = 0 WHERE id = ?")
            .execute(arguments: [at, reversal, allocationID])
    }
}
