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
}
