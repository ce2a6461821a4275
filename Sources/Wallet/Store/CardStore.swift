import Foundation
import GRDB
import Ledger

/// Bank cards and the top-ups and withdrawals made through them, and the only code that
/// names their tables; every statement runs in the caller's transaction or snapshot.
struct CardStore {
    let db: Database

    init(_ db: Database) { self.db = db }

    /// Whether the wallet has a bound card with this number (by its fingerprint).
    func isBound(walletID: Int64, fingerprint: Data) throws -> Bool {
        try Row.fetchOne(db, sql: "SELECT 1 FROM cards WHERE wallet_id = ? AND number_fingerprint = ? AND status = 'bound'", arguments: [walletID, fingerprint]) != nil
    }

    func bind(walletID: Int64, bank: String, numberSealed: Data, fingerprint: Data, masked: String, at now: TimestampMicros) throws -> Int64 {
        try db.execute(sql: "INSERT INTO cards (wallet_id, bank, number_sealed, number_fingerprint, masked, status, bound_at) VALUES (?, ?, ?, ?, ?, 'bound', ?)",
                       arguments: [walletID, bank, numberSealed, fingerprint, masked, now])
        return db.lastInsertedRowID
    }

    func hasPendingOperation(cardID: Int64) throws -> Bool {
        try Row.fetchOne(db, sql: "SELECT 1 FROM card_operations WHERE card_id = ? AND status = 'pending'", arguments: [cardID]) != nil
    }

    func unbind(cardID: Int64, at now: TimestampMicros) throws {
        try db.execute(sql: "UPDATE cards SET status = 'unbound', unbound_at = ? WHERE id = ?", arguments: [now, cardID])
    }

    /// The wallet's bound cards, in id order.
    func boundCards(walletID: Int64) throws -> [WalletService.Card] {
        try Row.fetchAll(db, sql: "SELECT id, bank, masked, status FROM cards WHERE wallet_id = ? AND status = 'bound' ORDER BY id", arguments: [walletID])
            .map { WalletService.Card(id: $0[0], bank: $0[1], masked: $0[2], status: $0[3]) }
    }

    func boundCard(id: Int64, walletID: Int64) throws -> WalletService.Card? {
        try Row.fetchOne(db, sql: "SELECT id, bank, masked, status FROM cards WHERE id = ? AND wallet_id = ? AND status = 'bound'", arguments: [id, walletID])
            .map { WalletService.Card(id: $0[0], bank: $0[1], masked: $0[2], status: $0[3]) }
    }

    /// A card's bank and masked number, bound or not.
    func label(cardID: Int64) throws -> (bank: String, masked: String)? {
        try Row.fetchOne(db, sql: "SELECT bank, masked FROM cards WHERE id = ?", arguments: [cardID]).map { ($0[0], $0[1]) }
    }

    /// Every card's sealed number, for a data key rotation.
    func sealedNumbers() throws -> [(id: Int64, sealed: Data)] {
        try Row.fetchAll(db, sql: "SELECT id, number_sealed FROM cards").map { ($0[0], $0[1]) }
    }

    func reseal(cardID: Int64, numberSealed: Data, fingerprint: Data) throws {
        try db.execute(sql: "UPDATE cards SET number_sealed = ?, number_fingerprint = ? WHERE id = ?", arguments: [numberSealed, fingerprint, cardID])
    }

    // MARK: Operations

    func recordTopUp(cardID: Int64, walletID: Int64, amountFen: Int64, transactionID: TransactionID, at now: TimestampMicros) throws {
        try db.execute(
            sql: "INSERT INTO card_operations (card_id, wallet_id, kind, amount_fen, status, transaction_id, settled_transaction_id, created_at, settled_at) VALUES (?, ?, 'topup', ?, 'completed', ?, ?, ?, ?)",
            arguments: [cardID, walletID, amountFen, transactionID, transactionID, now, now])
    }

    func recordWithdrawal(cardID: Int64, walletID: Int64, amountFen: Int64, holdID: TransactionID, at now: TimestampMicros) throws {
        try db.execute(
            sql: "INSERT INTO card_operations (card_id, wallet_id, kind, amount_fen, status, transaction_id, created_at) VALUES (?, ?, 'withdrawal', ?, 'pending', ?, ?)",
            arguments: [cardID, walletID, amountFen, holdID, now])
    }

    /// The operation a ledger transaction (a withdrawal's hold) belongs to: its id and status.
    func operation(transactionID: TransactionID) throws -> (id: Int64, status: String)? {
        try Row.fetchOne(db, sql: "SELECT id, status FROM card_operations WHERE transaction_id = ?", arguments: [transactionID]).map { ($0[0], $0[1]) }
    }

    struct Withdrawal {
        var cardID: Int64
        var walletID: Int64
        var holdID: TransactionID
        var amountFen: Int64
        var status: String
        var settledTransactionID: TransactionID?
    }

    func withdrawal(id: Int64) throws -> Withdrawal? {
        try Row.fetchOne(db, sql: "SELECT card_id, wallet_id, transaction_id, amount_fen, status, settled_transaction_id FROM card_operations WHERE id = ? AND kind = 'withdrawal'", arguments: [id])
            .map { Withdrawal(cardID: $0[0], walletID: $0[1], holdID: $0[2], amountFen: $0[3], status: $0[4], settledTransactionID: $0[5]) }
    }

    func settle(operationID: Int64, status: String, transactionID: TransactionID, at now: TimestampMicros) throws {
        try db.execute(sql: "UPDATE card_operations SET status = ?, settled_transaction_id = ?, settled_at = ? WHERE id = ?", arguments: [status, transactionID, now, operationID])
    }
}
