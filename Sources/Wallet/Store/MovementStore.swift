import Foundation
import Ledger
import QDSQL

/// Each wallet's history of movements and the merchants it pays, and the only code that
/// names their tables; every statement runs in the caller's transaction or snapshot.
public struct MovementStore {
    let sql: any SQLConnection

    public init(_ connection: any SQLConnection) { sql = connection }

    /// A movement to write (`WalletService.recordMovements`).
    public struct NewMovement: Sendable {
        var walletID: Int64
        var kind: String
        var counterparty: String
        var category: String
        var amountFen: Int64
        var discountFen: Int64
        var points: Int64
        var balancePayment: Bool
        var transactionID: Int64
        var reference: String?
        var at: TimestampMicros
    }

    /// Writes movements; a balance payment (or its refund) also moves the wallet's usage
    /// counters, its whole life's and its calendar year's, so that a class limit is one
    /// indexed read however long the wallet's history. Many movements go in a few
    /// multi-row statements, their counters summed by wallet and period first.
    func insert(_ movements: [NewMovement]) throws {
        guard !movements.isEmpty else { return }
        var usage: [UsageKey: Int64] = [:]
        var order: [UsageKey] = []
        let rows: [[SQLValue]] = movements.map { movement in
            let date = ShanghaiCalendar.date(at: movement.at)
            if movement.balancePayment && movement.amountFen != 0 {
                for period in [Self.lifetime, date.year] {
                    let key = UsageKey(walletID: movement.walletID, period: period)
                    if usage[key] == nil { order.append(key) }
                    usage[key, default: 0] -= movement.amountFen
                }
            }
            return [.integer(movement.walletID), movement.kind.sqlValue, .text(movement.counterparty), .text(movement.category), .integer(movement.amountFen),
                    .integer(movement.discountFen), .integer(movement.points), movement.balancePayment.sqlValue, .integer(movement.transactionID),
                    movement.reference.sqlValue, .integer(movement.at), .text(date.monthKey)]
        }
        try sql.sendRows("INSERT INTO wallet_movements (wallet_id, kind, counterparty, category, amount_fen, discount_fen, points, balance_payment, transaction_id, reference, created_at, month) VALUES",
                        row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values: rows)
        try sql.sendRows("INSERT INTO wallet_usage (wallet_id, period, balance_payments_fen) VALUES", row: "(?, ?, ?)",
                        "ON CONFLICT (wallet_id, period) DO UPDATE SET balance_payments_fen = wallet_usage.balance_payments_fen + excluded.balance_payments_fen",
                        values: order.map { [.integer($0.walletID), $0.period.sqlValue, .integer(usage[$0]!)] })
    }

    private struct UsageKey: Hashable {
        var walletID: Int64
        var period: Int
    }

    /// The usage period of a wallet's whole life (the others are calendar years).
    static let lifetime = 0

    private static let columns = "id, kind, counterparty, category, amount_fen, discount_fen, points, transaction_id, reference, created_at, month"

    private static func movement(_ row: SQLRow) throws -> WalletService.Movement {
        WalletService.Movement(id: try row[0], kind: try row[1], counterparty: try row[2], category: try row[3], amountFen: try row[4], discountFen: try row[5], points: try row[6],
                               transactionId: try row[7], reference: try row[8], createdAt: try row[9], month: try row[10])
    }

    /// The wallet's movement of a transaction.
    func movement(walletID: Int64, transactionID: Int64) throws -> WalletService.Movement? {
        try sql.one("SELECT \(Self.columns) FROM wallet_movements WHERE wallet_id = ? AND transaction_id = ?", [walletID, transactionID], Self.movement)
    }

    /// What the wallet paid from its balance in a usage period (a positive sum, refunds
    /// netted): `lifetime`, or a calendar year.
    func balancePaymentsFen(walletID: Int64, period: Int) throws -> Int64 {
        try sendBalancePaymentsFen(walletID: walletID, period: period).get()
    }

    /// `balancePaymentsFen`, sent ahead (`SQLConnection.sendQuery`).
    func sendBalancePaymentsFen(walletID: Int64, period: Int) throws -> SQLPending<Int64> {
        try sql.sendOne("SELECT balance_payments_fen FROM wallet_usage WHERE wallet_id = ? AND period = ?", [walletID, period]) { try $0.int64(0) }.map { $0 ?? 0 }
    }

    /// The usage counters of many wallets in a few reads: wallet, then period, then fen.
    func balancePaymentsFen(walletIDs: [Int64]) throws -> [Int64: [Int: Int64]] {
        var found: [Int64: [Int: Int64]] = [:]
        try sql.forEachRow("SELECT wallet_id, period, balance_payments_fen FROM wallet_usage WHERE wallet_id IN ({ids})", ids: walletIDs) { row in
            found[try row.int64(0), default: [:]][try row.int(1)] = try row.int64(2)
        }
        return found
    }

    /// How many payments from the balance each wallet made after `after`, counted up to
    /// `upTo`, for many wallets in a few statements (0 for a wallet that made none).
    func balancePayments(walletIDs: [Int64], after: TimestampMicros, upTo: Int) throws -> [Int64: Int] {
        var found: [Int64: Int] = [:]
        try sql.forEachRow("""
            SELECT w.column1, (SELECT count(*) FROM (\(Self.recentPaymentsSQL(wallet: "w.column1"))) AS recent)
            FROM (VALUES {ids}) AS w
            """, ids: walletIDs, mark: "(CAST(? AS BIGINT))", before: [after, upTo], group: 64) { row in
            found[try row.int64(0)] = try row.int(1)
        }
        return found
    }

    /// A wallet's payments from its balance after a time (bound first), up to a number of
    /// them (bound second), read through the index of those payments alone by wallet and
    /// time (`wallet_movements_payments`): the scan stops at the number, so its cost never
    /// grows with the wallet's history or with what else the window holds.
    static func recentPaymentsSQL(wallet: String) -> String {
        "SELECT 1 FROM wallet_movements WHERE wallet_id = \(wallet) AND balance_payment = 1 AND amount_fen < 0 AND created_at > ? LIMIT ?"
    }

    /// Wallets whose usage counters differ from the sums of their movements: (wallet,
    /// period, counted, summed), at most `limit` of them.
    public func usageMismatches(limit: Int) throws -> [(walletID: Int64, period: Int, counted: Int64, summed: Int64)] {
        try sql.all("""
            SELECT coalesce(u.wallet_id, m.wallet_id), coalesce(u.period, m.period), coalesce(u.balance_payments_fen, 0), coalesce(m.fen, 0)
            FROM wallet_usage u
            FULL OUTER JOIN (
                SELECT wallet_id, \(Self.lifetime) AS period, -sum(amount_fen) AS fen FROM wallet_movements WHERE balance_payment = 1 GROUP BY wallet_id
                UNION ALL
                SELECT wallet_id, CAST(substr(month, 1, 4) AS INTEGER) AS period, -sum(amount_fen) AS fen FROM wallet_movements WHERE balance_payment = 1 GROUP BY wallet_id, substr(month, 1, 4)
            ) m ON m.wallet_id = u.wallet_id AND m.period = u.period
            WHERE coalesce(u.balance_payments_fen, 0) <> coalesce(m.fen, 0)
            ORDER BY 1, 2 LIMIT ?
            """, [limit]) { (try $0.int64(0), try $0.int(1), try $0.int64(2), try $0.int64(3)) }
    }

    /// Whether the wallet paid this merchant by QR code before.
    public func hasPaidMerchant(walletID: Int64, merchantID: String) throws -> Bool {
        try sql.oneRow("SELECT 1 FROM wallet_movements WHERE wallet_id = ? AND kind = 'qr_payment' AND reference = ? LIMIT 1", [walletID, merchantID]) != nil
    }

    /// The times of a month's movements, `[start, end)`, for its key ("2026-11"; a movement's
    /// month is the Shanghai month of its time); nil for any other text, which no movement
    /// has. A month's movements are read as that range of the wallet's index by time.
    static func monthRange(_ month: String) -> (start: TimestampMicros, end: TimestampMicros)? {
        guard month.utf8.count == 7, let first = ShanghaiCalendar.Date(iso: month + "-01") else { return nil }
        return (first.startMicros, first.adding(days: ShanghaiCalendar.daysIn(year: first.year, month: first.month)).startMicros)
    }

    /// History, newest first, of a month and a kind (a kind also matches its `kind_...` variants).
    func history(walletID: Int64, month: String?, kind: String?, limit: Int) throws -> [WalletService.Movement] {
        var query = "SELECT \(Self.columns) FROM wallet_movements WHERE wallet_id = ?"
        var arguments: [any SQLBindable] = [walletID]
        if let month {
            guard let range = Self.monthRange(month) else { return [] }
            query += " AND created_at >= ? AND created_at < ?"
            arguments += [range.start, range.end]
        }
        if let kind { query += " AND (kind = ? OR kind LIKE ?)"; arguments += [kind, kind + "_%"] }
        query += " ORDER BY created_at DESC, id DESC LIMIT ?"
        arguments.append(limit)
        return try sql.all(query, arguments, Self.movement)
    }

    /// A month's payments from the balance by category, most spent first.
    func spending(walletID: Int64, month: String) throws -> [WalletService.CategorySpending] {
        guard let range = Self.monthRange(month) else { return [] }
        return try sql.all("""
            SELECT category, -sum(amount_fen) AS spent, count(*) AS payments FROM wallet_movements
            WHERE wallet_id = ? AND created_at >= ? AND created_at < ? AND balance_payment = 1
            GROUP BY category ORDER BY spent DESC, category
            """, [walletID, range.start, range.end]) { WalletService.CategorySpending(category: try $0[0], spentFen: try $0[1], payments: try $0[2]) }
    }

    // MARK: Merchants

    func merchantExists(_ id: String) throws -> Bool {
        try sql.oneRow("SELECT 1 FROM merchants WHERE id = ?", [id]) != nil
    }

    func insertMerchant(_ merchant: WalletService.Merchant, at now: TimestampMicros) throws {
        try sql.run("INSERT INTO merchants (id, name, category, city, mcc, account_id, created_at, name_ascii, city_local) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [merchant.id, merchant.name, merchant.category, merchant.city, merchant.mcc, merchant.accountId, now, merchant.nameASCII, merchant.cityLocal])
    }

    /// A merchant as stored; `nameASCII` nil for one registered before QR names were kept.
    func merchant(id: String) throws -> (merchant: WalletService.Merchant, nameASCII: String?)? {
        try sendMerchant(id: id).get()
    }

    /// `merchant`, sent ahead (`SQLConnection.sendQuery`).
    func sendMerchant(id: String) throws -> SQLPending<(merchant: WalletService.Merchant, nameASCII: String?)?> {
        try sql.sendOne("SELECT id, name, category, city, mcc, account_id, name_ascii, city_local FROM merchants WHERE id = ?", [id]) { row in
            (WalletService.Merchant(id: try row[0], name: try row[1], category: try row[2], city: try row[3], mcc: try row[4], accountId: try row[5], nameASCII: try row[6] ?? "", cityLocal: try row[7]), try row[6])
        }
    }
}

extension WalletStore {
    func setAutopayDailyLimit(walletID: Int64, fen: Int64) throws {
        try sql.run("UPDATE wallets SET autopay_daily_limit_fen = ? WHERE id = ?", [fen, walletID])
    }
}
