import Foundation
import Ledger
import QDSQL

/// Bank cards and the top-ups and withdrawals made through them, and the only code that
/// names their tables; every statement runs in the caller's transaction or snapshot.
struct CardStore {
    let sql: any SQLConnection

    init(_ connection: any SQLConnection) { sql = connection }

    /// Whether the wallet has a bound card with this number (by its fingerprint).
    func isBound(walletID: Int64, fingerprint: Data) throws -> Bool {
        try sql.oneRow("SELECT 1 FROM cards WHERE wallet_id = ? AND number_fingerprint = ? AND status = 'bound'", [walletID, fingerprint]) != nil
    }

    func bind(walletID: Int64, bank: String, numberSealed: Data, fingerprint: Data, masked: String, at now: TimestampMicros) throws -> Int64 {
        guard let id = try sql.int64("INSERT INTO cards (wallet_id, bank, number_sealed, number_fingerprint, masked, status, bound_at) VALUES (?, ?, ?, ?, ?, 'bound', ?) RETURNING id",
                                     [walletID, bank, numberSealed, fingerprint, masked, now]) else { throw WalletError(.corrupt, "a new card has no id") }
        return id
    }

    func hasPendingOperation(cardID: Int64) throws -> Bool {
        try sql.oneRow("SELECT 1 FROM card_operations WHERE card_id = ? AND status = 'pending'", [cardID]) != nil
    }

    func unbind(cardID: Int64, at now: TimestampMicros) throws {
        try sql.run("UPDATE cards SET status = 'unbound', unbound_at = ? WHERE id = ?", [now, cardID])
    }

    /// The wallet's bound cards, in id order.
    func boundCards(walletID: Int64) throws -> [WalletService.Card] {
        try sql.allRows("SELECT id, bank, masked, status FROM cards WHERE wallet_id = ? AND status = 'bound' ORDER BY id", [walletID])
            .map { WalletService.Card(id: try $0[0], bank: try $0[1], masked: try $0[2], status: try $0[3]) }
    }

    func boundCard(id: Int64, walletID: Int64) throws -> WalletService.Card? {
        try sql.oneRow("SELECT id, bank, masked, status FROM cards WHERE id = ? AND wallet_id = ? AND status = 'bound'", [id, walletID])
            .map { WalletService.Card(id: try $0[0], bank: try $0[1], masked: try $0[2], status: try $0[3]) }
    }

    /// A card's bank and masked number, bound or not.
    func label(cardID: Int64) throws -> (bank: String, masked: String)? {
        try sql.oneRow("SELECT bank, masked FROM cards WHERE id = ?", [cardID]).map { (try $0[0], try $0[1]) }
    }

    /// Every card's sealed number, for a data key rotation.
    func sealedNumbers() throws -> [(id: Int64, sealed: Data)] {
        try sql.allRows("SELECT id, number_sealed FROM cards").map { (try $0[0], try $0[1]) }
    }

    func reseal(cardID: Int64, numberSealed: Data, fingerprint: Data) throws {
        try sql.run("UPDATE cards SET number_sealed = ?, number_fingerprint = ? WHERE id = ?", [numberSealed, fingerprint, cardID])
    }

    // MARK: Operations

    func recordTopUp(cardID: Int64, walletID: Int64, amountFen: Int64, transactionID: TransactionID, at now: TimestampMicros) throws {
        try sql.run(
            "INSERT INTO card_operations (card_id, wallet_id, kind, amount_fen, status, transaction_id, settled_transaction_id, created_at, settled_at) VALUES (?, ?, 'topup', ?, 'completed', ?, ?, ?, ?)", [cardID, walletID, amountFen, transactionID, transactionID, now, now])
    }

    func recordWithdrawal(cardID: Int64, walletID: Int64, amountFen: Int64, holdID: TransactionID, at now: TimestampMicros) throws {
        try sql.run(
            "INSERT INTO card_operations (card_id, wallet_id, kind, amount_fen, status, transaction_id, created_at) VALUES (?, ?, 'withdrawal', ?, 'pending', ?, ?)", [cardID, walletID, amountFen, holdID, now])
    }

    /// The operation a ledger transaction (a withdrawal's hold) belongs to: its id and status.
    func operation(transactionID: TransactionID) throws -> (id: Int64, status: String)? {
        try sql.oneRow("SELECT id, status FROM card_operations WHERE transaction_id = ?", [transactionID]).map { (try $0[0], try $0[1]) }
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
        try sql.oneRow("SELECT card_id, wallet_id, transaction_id, amount_fen, status, settled_transaction_id FROM card_operations WHERE id = ? AND kind = 'withdrawal'", [id])
            .map { Withdrawal(cardID: try $0[0], walletID: try $0[1], holdID: try $0[2], amountFen: try $0[3], status: try $0[4], settledTransactionID: try $0[5]) }
    }

    func settle(operationID: Int64, status: String, transactionID: TransactionID, at now: TimestampMicros) throws {
        try sql.run("UPDATE card_operations SET status = ?, settled_transaction_id = ?, settled_at = ? WHERE id = ?", [status, transactionID, now, operationID])
    }
}
