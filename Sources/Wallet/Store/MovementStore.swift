import Foundation
import GRDB
import Ledger

/// Each wallet's history of movements and the merchants it pays, and the only code that
/// names their tables; every statement runs in the caller's transaction or snapshot.
struct MovementStore {
    let db: Database

    init(_ db: Database) { self.db = db }

    struct NewMovement {
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

    func insert(_ movement: NewMovement) throws {
        try db.cachedStatement(sql: """
                INSERT INTO wallet_movements (wallet_id, kind, counterparty, category, amount_fen, discount_fen, points, balance_payment, transaction_id, reference, created_at, month)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [movement.walletID, movement.kind, movement.counterparty, movement.category, movement.amountFen, movement.discountFen, movement.points,
                                         movement.balancePayment, movement.transactionID, movement.reference, movement.at, ShanghaiCalendar.date(at: movement.at).monthKey])
    }

    private static let columns = "id, kind, counterparty, category, amount_fen, discount_fen, points, transaction_id, reference, created_at, month"

    private static func movement(_ row: Row) -> WalletService.Movement {
        WalletService.Movement(id: row[0], kind: row[1], counterparty: row[2], category: row[3], amountFen: row[4], discountFen: row[5], points: row[6],
                               transactionId: row[7], reference: row[8], createdAt: row[9], month: row[10])
    }

    /// The wallet's movement of a transaction.
    func movement(walletID: Int64, transactionID: Int64) throws -> WalletService.Movement? {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT \(Self.columns) FROM wallet_movements WHERE wallet_id = ? AND transaction_id = ?"), arguments: [walletID, transactionID])
            .map(Self.movement)
    }

    /// What the wallet paid from its balance since `since` (a positive sum).
    func balancePaymentsFen(walletID: Int64, since: TimestampMicros) throws -> Int64 {
        -(try Int64.fetchOne(try db.cachedStatement(sql: "SELECT coalesce(sum(amount_fen), 0) FROM wallet_movements WHERE wallet_id = ? AND balance_payment = 1 AND created_at >= ?"), arguments: [walletID, since]) ?? 0)
    }

    /// How many payments from the balance the wallet made after `after`.
    func balancePayments(walletID: Int64, after: TimestampMicros) throws -> Int {
        try Int.fetchOne(try db.cachedStatement(sql: "SELECT count(*) FROM wallet_movements WHERE wallet_id = ? AND balance_payment = 1 AND amount_fen < 0 AND created_at > ?"), arguments: [walletID, after]) ?? 0
    }

    /// Whether the wallet paid this merchant by QR code before.
    func hasPaidMerchant(walletID: Int64, merchantID: String) throws -> Bool {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT 1 FROM wallet_movements WHERE wallet_id = ? AND kind = 'qr_payment' AND reference = ? LIMIT 1"), arguments: [walletID, merchantID]) != nil
    }

    /// History, newest first, of a month and a kind (a kind also matches its `kind_...` variants).
    func history(walletID: Int64, month: String?, kind: String?, limit: Int) throws -> [WalletService.Movement] {
        var sql = "SELECT \(Self.columns) FROM wallet_movements WHERE wallet_id = ?"
        var arguments: StatementArguments = [walletID]
        if let month { sql += " AND month = ?"; arguments += [month] }
        if let kind { sql += " AND (kind = ? OR kind LIKE ?)"; arguments += [kind, kind + "_%"] }
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        arguments += [limit]
        return try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.movement)
    }

    /// A month's payments from the balance by category, most spent first.
    func spending(walletID: Int64, month: String) throws -> [WalletService.CategorySpending] {
        try Row.fetchAll(try db.cachedStatement(sql: """
            SELECT category, -sum(amount_fen) AS spent, count(*) AS payments FROM wallet_movements
            WHERE wallet_id = ? AND month = ? AND balance_payment = 1
            GROUP BY category ORDER BY spent DESC, category
            """), arguments: [walletID, month]).map { WalletService.CategorySpending(category: $0[0], spentFen: $0[1], payments: $0[2]) }
    }

    // MARK: Merchants

    func merchantExists(_ id: String) throws -> Bool {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT 1 FROM merchants WHERE id = ?"), arguments: [id]) != nil
    }

    func insertMerchant(_ merchant: WalletService.Merchant, at now: TimestampMicros) throws {
        try db.cachedStatement(sql: "INSERT INTO merchants (id, name, category, city, mcc, account_id, created_at, name_ascii, city_local) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .execute(arguments: [merchant.id, merchant.name, merchant.category, merchant.city, merchant.mcc, merchant.accountId, now, merchant.nameASCII, merchant.cityLocal])
    }

    /// A merchant as stored; `nameASCII` nil for one registered before QR names were kept.
    func merchant(id: String) throws -> (merchant: WalletService.Merchant, nameASCII: String?)? {
        try Row.fetchOne(try db.cachedStatement(sql: "SELECT id, name, category, city, mcc, account_id, name_ascii, city_local FROM merchants WHERE id = ?"), arguments: [id]).map { row in
            (WalletService.Merchant(id: row[0], name: row[1], category: row[2], city: row[3], mcc: row[4], accountId: row[5], nameASCII: row[6] ?? "", cityLocal: row[7]), row[6])
        }
    }
}

extension WalletStore {
    func setAutopayDailyLimit(walletID: Int64, fen: Int64) throws {
        try db.execute(sql: "UPDATE wallets SET autopay_daily_limit_fen = ? WHERE id = ?", arguments: [fen, walletID])
    }
}
