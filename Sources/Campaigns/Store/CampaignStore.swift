import Ledger
import QDSQL

/// What other modules read of the campaign tables (reconciliation), in the caller's
/// transaction or snapshot.
public struct CampaignStore {
    let sql: any SQLConnection

    public init(_ connection: any SQLConnection) { sql = connection }

    /// The sponsors that funded an allocation, in name order.
    public func sponsors() throws -> [String] {
        try sql.all("SELECT DISTINCT sponsor FROM campaign_allocations ORDER BY sponsor") { try $0.text(0) }
    }

    /// The discounts a sponsor funds that no refund reversed.
    public func liveDiscountFen(sponsor: String) throws -> Int64 {
        try sql.int64("SELECT coalesce(sum(discount_fen), 0) FROM campaign_allocations WHERE sponsor = ? AND reversed_at IS NULL", [sponsor]) ?? 0
    }

    /// What the budgets of the sponsor's campaigns record as used.
    public func budgetUsedFen(sponsor: String) throws -> Int64 {
        try sql.int64("SELECT coalesce(sum(spent_fen), 0) FROM campaign_budgets WHERE campaign_id IN (SELECT DISTINCT campaign_id FROM campaign_allocations WHERE sponsor = ?)", [sponsor]) ?? 0
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
        guard let totals = try sql.one("""
            SELECT coalesce(sum(points), 0),
                coalesce(sum(CASE WHEN points_status IN ('vested', 'expired') THEN points ELSE 0 END), 0),
                coalesce(sum(CASE WHEN points_status = 'expired' THEN points ELSE 0 END), 0),
                coalesce(sum(CASE WHEN points_status = 'reversed' THEN points ELSE 0 END), 0)
            FROM campaign_allocations
            """, [], { PointsTotals(issued: try $0.int64(0), vested: try $0.int64(1), expired: try $0.int64(2), reversed: try $0.int64(3)) }) else { return PointsTotals() }
        return totals
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
        try sql.all("""
            SELECT id, points_hold_id, points FROM campaign_allocations
            WHERE points_status = 'pending' AND vest_at < ? AND id > ? ORDER BY vest_at, id LIMIT ?
            """, [cutoff, afterID, limit]) { PendingPoints(id: try $0.int64(0), holdID: try $0.int64(1), points: try $0.int64(2)) }
    }

    public func markVested(allocationID: Int64) throws {
        try sql.execute("UPDATE campaign_allocations SET points_status = 'vested' WHERE id = ?", allocationID)
    }

    /// A lot of vested points and the wallet that holds it.
    public struct VestedPoints: Sendable {
        public var id: Int64
        public var remaining: Int64
        public var walletID: Int64
    }

    /// Vested points that expire before `cutoff`, after allocation `afterID`, soonest-to-expire first.
    public func vestedPoints(expiringBefore cutoff: TimestampMicros, after afterID: Int64, limit: Int) throws -> [VestedPoints] {
        try sql.all("""
            SELECT id, points_remaining, wallet_id FROM campaign_allocations
            WHERE points_status = 'vested' AND expires_at < ? AND id > ? AND wallet_id IS NOT NULL ORDER BY expires_at, id LIMIT ?
            """, [cutoff, afterID, limit]) { VestedPoints(id: try $0.int64(0), remaining: try $0.int64(1), walletID: try $0.int64(2)) }
    }

    public func markExpired(allocationID: Int64) throws {
        try sql.execute("UPDATE campaign_allocations SET points_status = 'expired', points_remaining = 0 WHERE id = ?", allocationID)
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
        try sql.all("""
            SELECT campaign_id,
                sum(CASE WHEN at >= ?1 AND at < ?2 AND discount_fen > 0 THEN 1 ELSE 0 END),
                sum(CASE WHEN at >= ?1 AND at < ?2 THEN discount_fen ELSE 0 END),
                sum(CASE WHEN reversed_at >= ?1 AND reversed_at < ?2 AND discount_fen > 0 THEN 1 ELSE 0 END),
                sum(CASE WHEN reversed_at >= ?1 AND reversed_at < ?2 THEN discount_fen ELSE 0 END),
                sum(CASE WHEN at >= ?1 AND at < ?2 THEN points ELSE 0 END),
                sum(CASE WHEN reversed_at >= ?1 AND reversed_at < ?2 THEN points ELSE 0 END)
            FROM campaign_allocations WHERE sponsor = ?3 GROUP BY campaign_id ORDER BY campaign_id
            """, [from, to, sponsor]) {
            PeriodLine(campaignID: try $0.text(0), payments: try $0.int(1), discountsFen: try $0.int64(2), refunds: try $0.int(3), refundedFen: try $0.int64(4),
                       pointsIssued: try $0.int64(5), pointsTakenBack: try $0.int64(6))
        }
    }

    /// Of the points a sponsor's campaigns gave before `to`: vested (expired ones included) and expired.
    public func settledPoints(sponsor: String, allocatedBefore to: TimestampMicros) throws -> (vested: Int64, expired: Int64) {
        try sql.one("""
            SELECT coalesce(sum(CASE WHEN points_status IN ('vested', 'expired') THEN points ELSE 0 END), 0),
                   coalesce(sum(CASE WHEN points_status = 'expired' THEN points ELSE 0 END), 0)
            FROM campaign_allocations WHERE sponsor = ? AND at < ?
            """, [sponsor, to]) { (try $0.int64(0), try $0.int64(1)) } ?? (0, 0)
    }

    // MARK: For operators

    /// What a campaign's budget records as used.
    public func budgetUsedFen(campaignID: String) throws -> Int64 {
        try sql.int64("SELECT spent_fen FROM campaign_budgets WHERE campaign_id = ?", [campaignID]) ?? 0
    }

    /// A campaign's payments that stand (not refunded), and the points they gave.
    public func standingUse(campaignID: String) throws -> (payments: Int, points: Int64) {
        try sql.one("SELECT count(*), coalesce(sum(points), 0) FROM campaign_allocations WHERE campaign_id = ? AND reversed_at IS NULL", [campaignID]) { (try $0.int(0), try $0.int64(1)) } ?? (0, 0)
    }

    /// A campaign's standing uses by month (`YYYY-MM`), in month order.
    public func usesByMonth(campaignID: String) throws -> [(month: String, uses: Int, discountFen: Int64)] {
        try sql.all("SELECT month, count(*), sum(discount_fen) FROM campaign_allocations WHERE campaign_id = ? AND reversed_at IS NULL GROUP BY month ORDER BY month", [campaignID]) {
            (try $0.text(0), try $0.int(1), try $0.int64(2))
        }
    }

    /// What was recorded of the campaigns' evaluation of one payment.
    public struct Explanation: Sendable {
        public var paymentKey: String
        /// The payment's context and each campaign's verdict, as JSON texts.
        public var context: String
        public var explanation: String
    }

    public func explanation(transactionID: Int64) throws -> Explanation? {
        try sql.one("SELECT payment_key, context, explanation FROM campaign_explanations WHERE transaction_id = ?", [transactionID]) {
            Explanation(paymentKey: try $0.text(0), context: try $0.text(1), explanation: try $0.text(2))
        }
    }

    // MARK: The book's bookkeeping (CampaignBook)

    /// What a campaign's budget records as used, in all (`day` nil) or on one day. With
    /// `locking` on PostgreSQL the budget's row is made to exist and locked until the
    /// transaction ends: payments that draw on one limited budget take turns, so no two of
    /// them spend its last fen.
    func budgetSpent(campaignID: String, day: String?, locking: Bool = false) throws -> Int64 {
        if locking && sql.dialect == .postgres {
            if let day {
                try sql.execute("INSERT INTO campaign_budget_days (campaign_id, day, spent_fen) VALUES (?, ?, 0) ON CONFLICT (campaign_id, day) DO NOTHING", campaignID, day)
                return try sql.int64("SELECT spent_fen FROM campaign_budget_days WHERE campaign_id = ? AND day = ? FOR UPDATE", [campaignID, day]) ?? 0
            }
            try sql.execute("INSERT INTO campaign_budgets (campaign_id, spent_fen) VALUES (?, 0) ON CONFLICT (campaign_id) DO NOTHING", campaignID)
            return try sql.int64("SELECT spent_fen FROM campaign_budgets WHERE campaign_id = ? FOR UPDATE", [campaignID]) ?? 0
        }
        if let day {
            return try sql.int64("SELECT spent_fen FROM campaign_budget_days WHERE campaign_id = ? AND day = ?", [campaignID, day]) ?? 0
        }
        return try sql.int64("SELECT spent_fen FROM campaign_budgets WHERE campaign_id = ?", [campaignID]) ?? 0
    }

    /// The content hash a campaign version was first loaded with.
    func versionHash(campaignID: String, version: Int) throws -> String? {
        try sql.one("SELECT content_hash FROM campaign_versions WHERE campaign_id = ? AND version = ?", [campaignID, version]) { try $0.text(0) }
    }

    func insertVersion(campaignID: String, version: Int, contentHash: String, definition: String, at now: TimestampMicros) throws {
        try sql.execute("INSERT INTO campaign_versions (campaign_id, version, content_hash, definition, loaded_at) VALUES (?, ?, ?, ?, ?)", campaignID, version, contentHash, definition, now)
    }

    /// The standing uses of a campaign by one wallet or bill account, in one period of a cap
    /// (`period` nil: the whole campaign): one counter row.
    func capUse(campaignID: String, scope: Campaign.CapScope, scopeValue: Int64, period: (column: PeriodColumn, key: String)?) throws -> (count: Int, fen: Int64) {
        try sql.one("SELECT uses, discount_fen FROM campaign_cap_use WHERE campaign_id = ? AND scope = ? AND scope_id = ? AND period = ? AND period_key = ?",
                    [campaignID, scope.rawValue, scopeValue, period?.column.rawValue ?? "campaign", period?.key ?? "*"]) { (try $0.int(0), try $0.int64(1)) } ?? (0, 0)
    }

    /// `capUse` for many wallets or bill accounts of one cap and period key, in a few reads;
    /// scopes without a counter are absent.
    func capUses(campaignID: String, scope: Campaign.CapScope, scopeIDs: [Int64], period: String, periodKey: String) throws -> [Int64: (count: Int, fen: Int64)] {
        var found: [Int64: (count: Int, fen: Int64)] = [:]
        if sql.dialect == .postgres {
            // Every id in one statement (an array), each looked up through the key on its own
            // (the LIMIT keeps the lookup a subquery, run once an id): as `scope_id =
            // ANY(array)`, planned on the statistics of a table the night fills as it goes,
            // the ids became a filter over the (campaign, scope) range of the key, every
            // wallet's counters of every period scanned once a chunk.
            let ids = PostgresText.integerList(Array(Set(scopeIDs)).sorted(), braces: true)
            try sql.query("""
                SELECT k.id, c.uses, c.discount_fen FROM unnest(?::bigint[]) AS k(id)
                JOIN LATERAL (SELECT uses, discount_fen FROM campaign_cap_use
                    WHERE campaign_id = ? AND scope = ? AND scope_id = k.id AND period = ? AND period_key = ? LIMIT 1) c ON true
                """, [.text(ids), .text(campaignID), .text(scope.rawValue), .text(period), .text(periodKey)]) { row in
                found[try row.int64(0)] = (try row.int(1), try row.int64(2))
                return true
            }
            return found
        }
        try sql.forEachRow("SELECT scope_id, uses, discount_fen FROM campaign_cap_use WHERE campaign_id = ? AND scope = ? AND period = ? AND period_key = ? AND scope_id IN ({ids})",
                           ids: scopeIDs, before: [campaignID, scope.rawValue, period, periodKey]) { row in
            found[try row.int64(0)] = (try row.int(1), try row.int64(2))
        }
        return found
    }

    /// A (scope, period) pair of cap counters: the allocation's column that holds the scope's
    /// id, the one that holds the period's key (none for the whole campaign, keyed "*"), and
    /// the pair's bit in `campaign_cap_counting.pairs`.
    struct CounterPair {
        var scope: String
        var scopeColumn: String
        var period: String
        var periodColumn: String?
        var bit: Int64

        /// The period's key in SQL over `campaign_allocations` (aliased `prefix`).
        func periodKeySQL(_ prefix: String = "") -> String { periodColumn.map { prefix + $0 } ?? "'*'" }

        func scopeID(of allocation: NewAllocation) -> Int64? { scope == "wallet" ? allocation.walletID : allocation.billAccountID }

        func periodKey(of allocation: NewAllocation) -> String {
            switch period {
            case "day": allocation.day
            case "week": allocation.week
            case "month": allocation.month
            default: "*"
            }
        }
    }

    /// Every pair, the one list the fill, the check and the payments' counters go by.
    static let counterPairs: [CounterPair] = [("wallet", "wallet_id", 0), ("bill_account", "bill_account_id", 4)].flatMap { scope, column, shift in
        [("day", "day", 1), ("week", "week", 2), ("month", "month", 4), ("campaign", nil, 8)].map { (period: String, periodColumn: String?, bit: Int64) in
            CounterPair(scope: scope, scopeColumn: column, period: period, periodColumn: periodColumn, bit: bit << shift)
        }
    }

    /// The bit of a (scope, period) pair in `campaign_cap_counting.pairs` (every pair's for
    /// one not in the list: counting too much is safe, too little is not).
    static func pairBit(scope: String, period: String) -> Int64 {
        counterPairs.first { $0.scope == scope && $0.period == period }?.bit ?? everyPair
    }

    /// Every pair: what a campaign never registered counts.
    static let everyPair: Int64 = 255

    /// The pairs whose counters a campaign's allocations add to. On PostgreSQL the campaign's
    /// row is locked shared until the transaction ends: a registration that starts counting
    /// another pair waits for this transaction's allocations and counts them itself, and one
    /// that committed first is seen here (a locking read sees the row's latest version).
    func countedPairs(campaignID: String) throws -> Int64 {
        try sql.int64("SELECT pairs FROM campaign_cap_counting WHERE campaign_id = ?" + (sql.dialect == .postgres ? " FOR SHARE" : ""), [campaignID]) ?? Self.everyPair
    }

    /// Makes a campaign's counters keep `wanted` pairs too: each pair not kept before is
    /// filled from the standing allocations, under the campaign's row locked exclusively on
    /// PostgreSQL (payments that add to counters hold it shared), so it counts every
    /// allocation once whatever the payments running meanwhile. Pairs are never dropped.
    func startCounting(campaignID: String, pairs wanted: Int64) throws {
        if let counted = try sql.int64("SELECT pairs FROM campaign_cap_counting WHERE campaign_id = ?", [campaignID]), counted & wanted == wanted { return }
        try sql.execute("INSERT INTO campaign_cap_counting (campaign_id, pairs) VALUES (?, 0) ON CONFLICT (campaign_id) DO NOTHING", campaignID)
        let counted = try sql.int64("SELECT pairs FROM campaign_cap_counting WHERE campaign_id = ?" + (sql.dialect == .postgres ? " FOR UPDATE" : ""), [campaignID]) ?? 0
        let now = counted | wanted
        guard now != counted else { return }
        for pair in Self.counterPairs where counted & pair.bit == 0 {
            // Rows of a pair not kept are stale (a book that counted every pair before the
            // campaign was registered): the pair starts from its allocations alone.
            try sql.execute("DELETE FROM campaign_cap_use WHERE campaign_id = ? AND scope = ? AND period = ?", campaignID, pair.scope, pair.period)
            guard now & pair.bit != 0 else { continue }
            try sql.execute("""
                INSERT INTO campaign_cap_use (campaign_id, scope, scope_id, period, period_key, uses, discount_fen)
                SELECT campaign_id, '\(pair.scope)', \(pair.scopeColumn), '\(pair.period)', \(pair.periodKeySQL()), count(*), sum(discount_fen) FROM campaign_allocations
                WHERE campaign_id = ? AND reversed_at IS NULL AND \(pair.scopeColumn) IS NOT NULL GROUP BY campaign_id, \(pair.scopeColumn)\(pair.periodColumn.map { ", " + $0 } ?? "")
                """, campaignID)
        }
        try sql.execute("UPDATE campaign_cap_counting SET pairs = ? WHERE campaign_id = ?", now, campaignID)
    }

    /// The period columns allocations are counted by.
    enum PeriodColumn: String {
        case day, week, month
    }

    /// Cap counters that differ from the standing allocations they count: (campaign, scope,
    /// id, period, key, counted uses and fen, allocations' uses and fen), at most `limit`.
    /// Allocations count for the pairs their campaign keeps; a counter of a pair not kept
    /// is stale and differs unless it is zero.
    public func capUseMismatches(limit: Int) throws -> [CapUseMismatch] {
        let periods = Self.counterPairs.map { pair in
            """
            SELECT al.campaign_id, '\(pair.scope)' AS scope, al.\(pair.scopeColumn) AS scope_id, '\(pair.period)' AS period, \(pair.periodKeySQL("al.")) AS period_key, count(*) AS uses, sum(al.discount_fen) AS fen
            FROM campaign_allocations al LEFT JOIN campaign_cap_counting c ON c.campaign_id = al.campaign_id
            WHERE al.reversed_at IS NULL AND al.\(pair.scopeColumn) IS NOT NULL AND (coalesce(c.pairs, \(Self.everyPair)) & \(pair.bit)) <> 0
            GROUP BY al.campaign_id, al.\(pair.scopeColumn)\(pair.periodColumn.map { ", al." + $0 } ?? "")
            """
        }
        return try sql.all("""
            SELECT coalesce(u.campaign_id, a.campaign_id), coalesce(u.scope, a.scope), coalesce(u.scope_id, a.scope_id), coalesce(u.period, a.period), coalesce(u.period_key, a.period_key),
                coalesce(u.uses, 0), coalesce(u.discount_fen, 0), coalesce(a.uses, 0), coalesce(a.fen, 0)
            FROM campaign_cap_use u
            FULL OUTER JOIN (\(periods.joined(separator: " UNION ALL "))) a
                ON a.campaign_id = u.campaign_id AND a.scope = u.scope AND a.scope_id = u.scope_id AND a.period = u.period AND a.period_key = u.period_key
            WHERE coalesce(u.uses, 0) <> coalesce(a.uses, 0) OR coalesce(u.discount_fen, 0) <> coalesce(a.fen, 0)
            ORDER BY 1, 2, 3, 4, 5 LIMIT ?
            """, [limit]) {
            CapUseMismatch(campaignId: try $0.text(0), scope: try $0.text(1), scopeId: try $0.int64(2), period: try $0.text(3), periodKey: try $0.text(4),
                           countedUses: try $0.int(5), countedFen: try $0.int64(6), allocatedUses: try $0.int(7), allocatedFen: try $0.int64(8))
        }
    }

    public struct CapUseMismatch: Sendable, Hashable, Codable {
        public var campaignId: String
        public var scope: String
        public var scopeId: Int64
        public var period: String
        public var periodKey: String
        public var countedUses: Int
        public var countedFen: Int64
        public var allocatedUses: Int
        public var allocatedFen: Int64
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
        let query = "SELECT id, campaign_id, version, sponsor, discount_fen, points, day, points_status, points_remaining, points_hold_id FROM campaign_allocations WHERE payment_key = ?"
            + (standingOnly ? " AND reversed_at IS NULL" : "") + " ORDER BY id"
        return try sql.all(query, [paymentKey]) {
            StoredAllocation(id: try $0.int64(0), campaignID: try $0.text(1), version: try $0.int(2), sponsor: try $0.text(3), discountFen: try $0.int64(4), points: try $0.int64(5),
                             day: try $0.text(6), pointsStatus: try $0.optionalText(7), pointsRemaining: try $0.int64(8), pointsHoldID: try $0.optionalInt64(9))
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

    /// Writes allocations (their points pending when they give any), adds them to their cap
    /// counters (the pairs of scope and period their campaigns keep) and their discounts to
    /// their campaigns' budgets, in all and for their days: a few multi-row statements,
    /// the counters and budgets summed by key first (an upsert may touch a row once).
    func insert(_ allocations: [NewAllocation]) throws {
        guard !allocations.isEmpty else { return }
        try sql.sendRows("""
            INSERT INTO campaign_allocations (payment_key, transaction_id, campaign_id, version, sponsor, wallet_id, bill_account_id, discount_fen, points,
                points_hold_id, vest_at, expires_at, points_status, points_remaining, at, day, week, month) VALUES
            """, row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values: allocations.map { allocation in
                [.text(allocation.paymentKey), .integer(allocation.transactionID), .text(allocation.campaignID), allocation.version.sqlValue, .text(allocation.sponsor),
                 allocation.walletID.sqlValue, allocation.billAccountID.sqlValue, .integer(allocation.discountFen), .integer(allocation.points),
                 allocation.pointsHoldID.sqlValue, allocation.vestAt.sqlValue, allocation.expiresAt.sqlValue, allocation.points > 0 ? .text("pending") : .null,
                 .integer(allocation.points), .integer(allocation.at), .text(allocation.day), .text(allocation.week), .text(allocation.month)]
            })
        var caps = Sums<CapKey>()
        var budgets = Sums<String>()
        var days = Sums<DayKey>()
        var counted: [String: Int64] = [:]
        for campaignID in Set(allocations.map(\.campaignID)).sorted() { counted[campaignID] = try countedPairs(campaignID: campaignID) }
        for allocation in allocations {
            for pair in Self.counterPairs where counted[allocation.campaignID, default: Self.everyPair] & pair.bit != 0 {
                guard let id = pair.scopeID(of: allocation) else { continue }
                caps.add(CapKey(campaignID: allocation.campaignID, scope: pair.scope, scopeID: id, period: pair.period, key: pair.periodKey(of: allocation)), uses: 1, fen: allocation.discountFen)
            }
            if allocation.discountFen > 0 {
                budgets.add(allocation.campaignID, uses: 0, fen: allocation.discountFen)
                days.add(DayKey(campaignID: allocation.campaignID, day: allocation.day), uses: 0, fen: allocation.discountFen)
            }
        }
        try sql.sendRows("INSERT INTO campaign_cap_use (campaign_id, scope, scope_id, period, period_key, uses, discount_fen) VALUES", row: "(?, ?, ?, ?, ?, ?, ?)", """
            ON CONFLICT (campaign_id, scope, scope_id, period, period_key) DO UPDATE SET uses = campaign_cap_use.uses + excluded.uses, discount_fen = campaign_cap_use.discount_fen + excluded.discount_fen
            """, values: caps.order.map { key in [key.campaignID.sqlValue, key.scope.sqlValue, key.scopeID.sqlValue, key.period.sqlValue, key.key.sqlValue, caps.sums[key]!.uses.sqlValue, caps.sums[key]!.fen.sqlValue] })
        try sql.sendRows("INSERT INTO campaign_budgets (campaign_id, spent_fen) VALUES", row: "(?, ?)",
                        "ON CONFLICT (campaign_id) DO UPDATE SET spent_fen = campaign_budgets.spent_fen + excluded.spent_fen",
                        rows: budgets.order.map { [$0, budgets.sums[$0]!.fen] })
        try sql.sendRows("INSERT INTO campaign_budget_days (campaign_id, day, spent_fen) VALUES", row: "(?, ?, ?)",
                        "ON CONFLICT (campaign_id, day) DO UPDATE SET spent_fen = campaign_budget_days.spent_fen + excluded.spent_fen",
                        rows: days.order.map { [$0.campaignID, $0.day, days.sums[$0]!.fen] })
    }

    private struct CapKey: Hashable {
        var campaignID: String
        var scope: String
        var scopeID: Int64
        var period: String
        var key: String
    }

    private struct DayKey: Hashable {
        var campaignID: String
        var day: String
    }

    /// Uses and fen summed by key, keys in the order first seen.
    private struct Sums<Key: Hashable> {
        var sums: [Key: (uses: Int, fen: Int64)] = [:]
        var order: [Key] = []
        mutating func add(_ key: Key, uses: Int, fen: Int64) {
            if sums[key] == nil { order.append(key); sums[key] = (0, 0) }
            sums[key]!.uses += uses
            sums[key]!.fen += fen
        }
    }

    /// What the campaigns said of a payment, for `campaign explain`.
    struct NewExplanation {
        var paymentKey: String
        var transactionID: TransactionID
        var context: String
        var explanation: String
        var at: TimestampMicros
    }

    /// Stores (or replaces) what the campaigns said of payments, keyed by each payment's
    /// transaction; of two for one transaction in the list, the later stands.
    func saveExplanations(_ explanations: [NewExplanation]) throws {
        var last: [TransactionID: Int] = [:]
        for (index, explanation) in explanations.enumerated() { last[explanation.transactionID] = index }
        try sql.sendRows("INSERT INTO campaign_explanations (payment_key, transaction_id, context, explanation, at) VALUES", row: "(?, ?, ?, ?, ?)", """
            ON CONFLICT (transaction_id) DO UPDATE SET payment_key = excluded.payment_key, context = excluded.context, explanation = excluded.explanation, at = excluded.at
            """, values: explanations.enumerated().filter { last[$0.element.transactionID] == $0.offset }.map {
                [.text($0.element.paymentKey), $0.element.transactionID.sqlValue, .text($0.element.context), .text($0.element.explanation), .integer($0.element.at)]
            })
    }

    /// Gives an allocation's discount back to its campaign's budget, in all and for its day.
    func releaseBudget(campaignID: String, day: String, fen: Int64) throws {
        try sql.execute("UPDATE campaign_budgets SET spent_fen = spent_fen - ? WHERE campaign_id = ?", fen, campaignID)
        try sql.execute("UPDATE campaign_budget_days SET spent_fen = spent_fen - ? WHERE campaign_id = ? AND day = ?", fen, campaignID, day)
    }

    /// Marks a standing allocation reversed and takes it off its cap counters.
    func markReversed(allocationID: Int64, reversal: TransactionID, at: TimestampMicros) throws {
        if sql.dialect == .postgres {
            // As a payment does (countedPairs): a registration filling a new pair waits.
            _ = try sql.int64("SELECT pairs FROM campaign_cap_counting WHERE campaign_id = (SELECT campaign_id FROM campaign_allocations WHERE id = ?) FOR SHARE", [allocationID])
        }
        try sql.execute("""
            UPDATE campaign_cap_use SET uses = campaign_cap_use.uses - 1, discount_fen = campaign_cap_use.discount_fen - a.discount_fen
            FROM campaign_allocations a
            WHERE a.id = ? AND a.reversed_at IS NULL AND campaign_cap_use.campaign_id = a.campaign_id
                AND ((campaign_cap_use.scope = 'wallet' AND campaign_cap_use.scope_id = a.wallet_id) OR (campaign_cap_use.scope = 'bill_account' AND campaign_cap_use.scope_id = a.bill_account_id))
                AND ((campaign_cap_use.period = 'day' AND campaign_cap_use.period_key = a.day) OR (campaign_cap_use.period = 'week' AND campaign_cap_use.period_key = a.week)
                    OR (campaign_cap_use.period = 'month' AND campaign_cap_use.period_key = a.month) OR (campaign_cap_use.period = 'campaign' AND campaign_cap_use.period_key = '*'))
            """, allocationID)
        try sql.execute("UPDATE campaign_allocations SET reversed_at = ?, reversal_transaction_id = ?, points_status = CASE WHEN points > 0 THEN 'reversed' ELSE NULL END, points_remaining = 0 WHERE id = ?",
                        at, reversal, allocationID)
    }
}
