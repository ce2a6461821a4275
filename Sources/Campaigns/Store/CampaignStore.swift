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
}
