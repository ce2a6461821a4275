import Foundation
import QDTestEngines
import GRDB
import Ledger
import QDSQL
import Testing
@testable import Wallet

@Suite struct WalletOpeningTests {
    @Test func opensOneWalletPerNumber() throws {
        let t = try TestWallet()
        let wallet = try t.service.openWallet(phone: "13800000001", name: " 张三 ")
        #expect(wallet.name == "张三")
        #expect(wallet.kycClass == 1 && !wallet.kycVerified && !wallet.frozen)
        #expect(try t.ledger.account(id: wallet.walletAccountID).asset == .cny)
        #expect(try t.ledger.account(id: wallet.pointsAccountID).asset == .pts)
        #expect(throws: WalletRefusal.walletExists) { try t.service.openWallet(phone: "13800000001", name: "李四") }
        #expect(throws: WalletRefusal.invalidPhone) { try t.service.openWallet(phone: "2380000000", name: "李四") }
        #expect(throws: WalletRefusal.invalidName) { try t.service.openWallet(phone: "13800000002", name: "  ") }
        #expect(throws: WalletRefusal.walletNotFound) { try t.service.balance(phone: "13900000000") }
    }
}

@Suite struct KYCTests {
    @Test func submitApproveReject() throws {
        let t = try TestWallet()
        _ = try t.service.openWallet(phone: "13800000001", name: "张三")
        #expect(throws: WalletRefusal.noKYCSubmission) { try t.service.approveKYC(phone: "13800000001", kycClass: 2) }
        let submitted = try t.service.submitKYC(phone: "13800000001", name: "张三", idNumber: TestWallet.idNumber)
        #expect(submitted.idNumberMasked == "1101**********002X")
        #expect(throws: WalletRefusal.kycPending) { try t.service.submitKYC(phone: "13800000001", name: "张三", idNumber: TestWallet.idNumber) }
        #expect(throws: WalletRefusal.invalidClass) { try t.service.approveKYC(phone: "13800000001", kycClass: 4) }
        let rejected = try t.service.rejectKYC(phone: "13800000001", reason: "photo unreadable")
        #expect(rejected.status == "rejected")
        #expect(try !t.service.wallet(phone: "13800000001").kycVerified)
        _ = try t.service.submitKYC(phone: "13800000001", name: "张三", idNumber: TestWallet.idNumber)
        let approved = try t.service.approveKYC(phone: "13800000001", kycClass: 3)
        #expect(approved.kycClass == 3)
        let wallet = try t.service.wallet(phone: "13800000001")
        #expect(wallet.kycVerified && wallet.kycClass == 3)
    }

    /// SQLite: the file's bytes (PostgreSQL's own files are the server's).
    @Test(.enabled(if: !TestEngine.onPostgres)) func personalDataIsSealedAtRest() throws {
        let t = try TestWallet()
        try t.richWallet("13800000001", fen: 0)
        try (t.store as? SQLiteLedgerStore)?.pool.close()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: t.path)) + ((try? Data(contentsOf: URL(fileURLWithPath: t.path + "-wal"))) ?? Data())
        for secret in [residentID(forPhone: "13800000001"), "6222020200112233446", "2020020011223344"] {
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(secret.prefix(4))... found in the database file")
        }
    }

    @Test func withoutTheKeyVerificationAndCardsRefuseClearly() throws {
        let t = try TestWallet(withKey: false)
        _ = try t.service.openWallet(phone: "13800000001", name: "张三")
        #expect {
            try t.service.submitKYC(phone: "13800000001", name: "张三", idNumber: TestWallet.idNumber)
        } throws: { error in
            (error as? WalletError)?.code == .dataKey && "\(error)".contains("QDWALLET_DATA_KEY")
        }
        // Verified by an operator with the key elsewhere, the wallet still cannot bind a card here.
        try t.execute("UPDATE wallets SET kyc_verified = 1, kyc_class = 2")
        #expect {
            try t.service.bindCard(phone: "13800000001", cardNumber: "6222020200112233446", bank: "ICBC")
        } throws: { error in
            (error as? WalletError)?.code == .dataKey && "\(error)".contains("QDWALLET_DATA_KEY")
        }
        #expect(try t.int("SELECT (SELECT count(*) FROM kyc_submissions) + (SELECT count(*) FROM cards)") == 0)
    }

    @Test func dataKeyFromTheEnvironment() throws {
        let key = DataKey.random()
        #expect(try DataKey.fromEnvironment(["QDWALLET_DATA_KEY": key.base64]).keyID == key.keyID)
        #expect(throws: WalletError.self) { try DataKey.fromEnvironment([:]) }
        #expect(throws: WalletError.self) { try DataKey.fromEnvironment(["QDWALLET_DATA_KEY": "not base64!"]) }
        #expect(throws: WalletError.self) { try DataKey.fromEnvironment(["QDWALLET_DATA_KEY": Data(repeating: 1, count: 16).base64EncodedString()]) }
        let sealed = try key.seal("secret")
        #expect(try key.open(sealed) == "secret")
        #expect(throws: (any Error).self) { try DataKey.random().open(sealed) }
        var tampered = sealed
        tampered[tampered.count - 1] ^= 1
        #expect(throws: (any Error).self) { try key.open(tampered) }
    }
}

@Suite struct KeyRotationTests {
    @Test func rotationResealsEverythingOnceAndAtomically() throws {
        let t = try TestWallet()
        try t.richWallet("13800000001", fen: 0)
        let newKey = DataKey.random()
        let rotation = try t.service.rotateDataKey(from: t.key, to: newKey)
        #expect(rotation.kycSubmissions == 1 && rotation.cards == 1 && rotation.passwords == 1 && rotation.alreadyUnderNewKey == 0)
        let sealed = try #require(try t.store.database.read { try $0.dataValue("SELECT id_number_sealed FROM kyc_submissions") })
        #expect(try newKey.open([UInt8](sealed)) == residentID(forPhone: "13800000001"))
        #expect(throws: (any Error).self) { try t.key.open([UInt8](sealed)) }
        // Run again (an interrupted rotation resumed): nothing left to do.
        let again = try t.service.rotateDataKey(from: t.key, to: newKey)
        #expect(again.kycSubmissions == 0 && again.cards == 0 && again.passwords == 0 && again.alreadyUnderNewKey == 3)
        // The new key still finds the card for duplicate binding, and checks the password.
        let rotated = WalletService(store: t.store, ledger: t.ledger, hasher: PasswordHasher(iterations: 1_000), dataKey: newKey)
        #expect(try rotated.checkPasswordForPayment(phone: "13800000001", password: "123456"))
        #expect(try rotated.checkPasswordForPayment(phone: "13800000001", password: "123457") == false)
        #expect(throws: WalletRefusal.cardAlreadyBound) { try rotated.bindCard(phone: "13800000001", cardNumber: "6222020200112233446", bank: "ICBC") }
        #expect(throws: WalletError.self) { try t.service.rotateDataKey(from: newKey, to: newKey) }
    }
}

@Suite struct PasswordTests {
    @Test func fiveWrongTriesLockForThreeHours() throws {
        let t = try TestWallet()
        try t.richWallet("13800000001", fen: 10_000)
        _ = try t.service.openWallet(phone: "13800000002", name: "李四")
        func pay(_ password: String, _ key: String) throws -> WalletService.Receipt {
            try t.service.transfer(from: "13800000001", to: "13800000002", amountFen: 100, password: password, idempotencyKey: key)
        }
        for attempt in 1...4 {
            #expect(throws: WalletRefusal.wrongPassword) { try pay("000000", "k\(attempt)") }
        }
        #expect(try t.outbox().filter { $0.kind == "security_alert" }.count == 2) // at 3 and 4
        #expect(throws: WalletRefusal.passwordLocked) { try pay("000000", "k5") }
        #expect(throws: WalletRefusal.passwordLocked) { try pay("123456", "k6") }
        #expect(try t.outbox().last?.payload.contains("payments_locked") == true)
        #expect(try t.outbox().allSatisfy { !$0.payload.contains("13800000001") })
        t.clock.advance(micros: 3 * 3_600 * 1_000_000 - 1)
        #expect(throws: WalletRefusal.passwordLocked) { try pay("123456", "k7") }
        t.clock.advance(micros: 1)
        #expect(try pay("123456", "k8").amountFen == 100)
        #expect(try t.service.balance(phone: "13800000002").balanceFen == 100)
    }

    @Test func aRightPasswordResetsTheCount() throws {
        let t = try TestWallet()
        try t.richWallet("13800000001", fen: 10_000)
        _ = try t.service.openWallet(phone: "13800000002", name: "李四")
        for round in 0..<3 {
            for attempt in 0..<4 {
                #expect(throws: WalletRefusal.wrongPassword) {
                    try t.service.transfer(from: "13800000001", to: "13800000002", amountFen: 1, password: "654321", idempotencyKey: "w\(round)-\(attempt)")
                }
            }
            _ = try t.service.transfer(from: "13800000001", to: "13800000002", amountFen: 1, password: "123456", idempotencyKey: "ok\(round)")
        }
        #expect(try t.service.balance(phone: "13800000002").balanceFen == 3)
    }

    @Test func paymentsNeedAPassword() throws {
        let t = try TestWallet()
        _ = try t.service.openWallet(phone: "13800000001", name: "张三")
        _ = try t.service.openWallet(phone: "13800000002", name: "李四")
        #expect(throws: WalletRefusal.passwordNotSet) {
            try t.service.transfer(from: "13800000001", to: "13800000002", amountFen: 1, password: "123456", idempotencyKey: "k")
        }
        #expect(throws: WalletRefusal.invalidPassword) { try t.service.setPassword(phone: "13800000001", password: "12345") }
    }

    @Test func storedPasswordIsASaltedHash() throws {
        let t = try TestWallet()
        _ = try t.service.openWallet(phone: "13800000001", name: "张三")
        _ = try t.service.openWallet(phone: "13800000002", name: "李四")
        try t.service.setPassword(phone: "13800000001", password: "123456")
        try t.service.setPassword(phone: "13800000002", password: "123456")
        let hashes = try t.store.database.read { try $0.all("SELECT password_hash FROM wallets ORDER BY id") { try $0.data(0) } }
        #expect(hashes[0] != hashes[1])
        // With the data key: SHA-256 of salt and password (64 hex characters) sealed with
        // AES-GCM under it: version, key id, nonce, ciphertext, tag.
        #expect(hashes[0].count == 1 + 8 + 12 + 64 + 16)
        #expect(Array(hashes[0][1..<9]) == t.key.keyID)
        #expect(try t.int("SELECT count(*) FROM wallets WHERE password_iterations = 0") == 2)
        // Without it: PBKDF2, as slow as OWASP asks.
        let plain = WalletService(store: t.store, ledger: t.ledger, hasher: PasswordHasher(iterations: 1_000), dataKey: nil)
        try plain.setPassword(phone: "13800000002", password: "123456")
        #expect(try t.store.database.read { try $0.all("SELECT password_hash FROM wallets WHERE phone = '13800000002'") { try $0.data(0) } }.first?.count == 32)
        #expect(PasswordHasher().iterations >= 600_000)
    }

    /// A PBKDF2 hash of a wallet that predates the keyed form is replaced by it the first time
    /// the right password is given with the key at hand; a wrong one changes nothing; the
    /// keyed hash cannot be checked without the key.
    @Test func aPBKDF2PasswordIsKeyedOnItsNextRightUse() throws {
        let t = try TestWallet()
        let plain = WalletService(store: t.store, ledger: t.ledger, hasher: PasswordHasher(iterations: 1_000), dataKey: nil)
        _ = try plain.openWallet(phone: "13800000001", name: "张三")
        try plain.setPassword(phone: "13800000001", password: "135790")
        func iterations() throws -> Int? { try t.int("SELECT password_iterations FROM wallets") }
        #expect(try iterations() == 1_000)
        #expect(try t.service.checkPasswordForPayment(phone: "13800000001", password: "000000") == false)
        #expect(try iterations() == 1_000)
        #expect(try t.service.checkPasswordForPayment(phone: "13800000001", password: "135790"))
        #expect(try iterations() == 0)
        #expect(try t.service.checkPasswordForPayment(phone: "13800000001", password: "135790"))
        #expect(try t.service.checkPasswordForPayment(phone: "13800000001", password: "135791") == false)
        #expect(throws: WalletError.self) { try plain.checkPasswordForPayment(phone: "13800000001", password: "135790") }
        // Another key cannot open it: a wrong key is refused, never taken for a wrong password.
        let other = WalletService(store: t.store, ledger: t.ledger, hasher: PasswordHasher(iterations: 1_000), dataKey: DataKey.random())
        #expect(throws: WalletError.self) { try other.checkPasswordForPayment(phone: "13800000001", password: "135790") }
    }
}

@Suite struct CardAndTopUpTests {
    @Test func bindingNeedsVerification() throws {
        let t = try TestWallet()
        _ = try t.service.openWallet(phone: "13800000001", name: "张三")
        #expect(throws: WalletRefusal.kycRequired) { try t.service.bindCard(phone: "13800000001", cardNumber: "6222020200112233446", bank: "ICBC") }
        _ = try t.service.submitKYC(phone: "13800000001", name: "张三", idNumber: TestWallet.idNumber)
        #expect(throws: WalletRefusal.kycRequired) { try t.service.bindCard(phone: "13800000001", cardNumber: "6222020200112233446", bank: "ICBC") }
        _ = try t.service.approveKYC(phone: "13800000001", kycClass: 2)
        #expect(throws: WalletRefusal.invalidCardNumber) { try t.service.bindCard(phone: "13800000001", cardNumber: "6222020200112233445", bank: "ICBC") }
        let card = try t.service.bindCard(phone: "13800000001", cardNumber: "6222 0202 0011 2233 446", bank: "icbc")
        #expect(card.masked == "6222 **** **** 3446" && card.bank == "ICBC")
        #expect(throws: WalletRefusal.cardAlreadyBound) { try t.service.bindCard(phone: "13800000001", cardNumber: "6222020200112233446", bank: "ICBC") }
    }

    @Test func topUpIsIdempotent() throws {
        let t = try TestWallet()
        let (_, card) = try t.richWallet("13800000001", fen: 0)
        let first = try t.service.topUp(phone: "13800000001", cardID: card, amountFen: 10_000, idempotencyKey: "t1")
        let again = try t.service.topUp(phone: "13800000001", cardID: card, amountFen: 10_000, idempotencyKey: "t1")
        #expect(!first.replayed && again.replayed && again.transactionId == first.transactionId)
        #expect(try t.service.balance(phone: "13800000001").balanceFen == 10_000)
        #expect(throws: WalletRefusal.idempotencyConflict) { try t.service.topUp(phone: "13800000001", cardID: card, amountFen: 20_000, idempotencyKey: "t1") }
        #expect(throws: WalletRefusal.cardNotFound) { try t.service.topUp(phone: "13800000001", cardID: 99, amountFen: 1, idempotencyKey: "t2") }
        #expect(throws: WalletRefusal.invalidAmount) { try t.service.topUp(phone: "13800000001", cardID: card, amountFen: 0, idempotencyKey: "t3") }
        #expect(try t.service.history(phone: "13800000001", month: nil, kind: "topup").count == 1)
        #expect(try t.ledger.check().ok)
    }

    @Test func withdrawalIsAHoldUntilTheBankAnswers() throws {
        let t = try TestWallet()
        let (_, card) = try t.richWallet("13800000001", fen: 10_000)
        let pending = try t.service.withdraw(phone: "13800000001", cardID: card, amountFen: 6_000, idempotencyKey: "w1")
        #expect(pending.status == "pending")
        var balance = try t.service.balance(phone: "13800000001")
        #expect(balance.balanceFen == 10_000 && balance.availableFen == 4_000)
        #expect(throws: WalletRefusal.insufficientFunds) { try t.service.withdraw(phone: "13800000001", cardID: card, amountFen: 4_001, idempotencyKey: "w2") }
        #expect(throws: WalletRefusal.cardHasPendingOperation) { try t.service.unbindCard(phone: "13800000001", cardID: card) }
        let failed = try t.service.failWithdrawal(id: pending.withdrawalId)
        #expect(failed.status == "failed")
        balance = try t.service.balance(phone: "13800000001")
        #expect(balance.balanceFen == 10_000 && balance.availableFen == 10_000)
        #expect(throws: WalletRefusal.withdrawalNotPending) { try t.service.confirmWithdrawal(id: pending.withdrawalId) }
        #expect(try t.service.failWithdrawal(id: pending.withdrawalId).replayed)

        let second = try t.service.withdraw(phone: "13800000001", cardID: card, amountFen: 2_500, idempotencyKey: "w3")
        #expect(try t.service.withdraw(phone: "13800000001", cardID: card, amountFen: 2_500, idempotencyKey: "w3").withdrawalId == second.withdrawalId)
        _ = try t.service.confirmWithdrawal(id: second.withdrawalId)
        balance = try t.service.balance(phone: "13800000001")
        #expect(balance.balanceFen == 7_500 && balance.availableFen == 7_500)
        #expect(try t.service.unbindCard(phone: "13800000001", cardID: card).status == "unbound")
        #expect(throws: WalletRefusal.withdrawalNotFound) { try t.service.confirmWithdrawal(id: 999) }
        #expect(try t.ledger.check().ok)
    }
}

@Suite struct PaymentTests {
    func world(policy: WalletPolicy = WalletPolicy()) throws -> (TestWallet, String) {
        let t = try TestWallet(policy: policy)
        try t.richWallet("13800000001", fen: 100_000)
        _ = try t.service.openWallet(phone: "13800000002", name: "李四")
        _ = try t.service.registerMerchant(id: "M0001", name: "台东小吃", category: "food", mcc: "5812")
        return (t, try t.service.merchantQR(id: "M0001", amountFen: nil))
    }

    @Test func qrPaymentPaysTheMerchant() throws {
        let (t, staticQR) = try world()
        let receipt = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 4_520, password: "123456", idempotencyKey: "q1")
        #expect(receipt.amountFen == 4_520 && receipt.counterparty == "台东小吃" && receipt.kind == "qr_payment")
        #expect(try t.service.balance(phone: "13800000001").balanceFen == 100_000 - 4_520)
        #expect(try t.ledger.account(id: t.service.merchant(id: "M0001").accountId).balance == 4_520)
        var replay = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 4_520, password: "123456", idempotencyKey: "q1")
        #expect(replay.replayed)
        replay.replayed = false
        #expect(replay == receipt)
        #expect(try t.service.balance(phone: "13800000001").balanceFen == 100_000 - 4_520)
    }

    @Test func qrRefusals() throws {
        let (t, staticQR) = try world()
        let fixed = try t.service.merchantQR(id: "M0001", amountFen: 1_000)
        #expect(throws: WalletRefusal.qrAmountMissing) { try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: nil, password: "123456", idempotencyKey: "a") }
        #expect(throws: WalletRefusal.qrAmountMismatch) { try t.service.payQR(phone: "13800000001", payload: fixed, amountFen: 999, password: "123456", idempotencyKey: "b") }
        #expect(try t.service.payQR(phone: "13800000001", payload: fixed, amountFen: nil, password: "123456", idempotencyKey: "c").amountFen == 1_000)
        let unknown = try MerchantQR(merchantID: "M9999", merchantName: "Nobody", city: "QINGDAO", mcc: "5812", amountFen: nil).encode()
        #expect { try t.service.payQR(phone: "13800000001", payload: unknown, amountFen: 100, password: "123456", idempotencyKey: "d") } throws: { ($0 as? QRRefusal)?.refusal == .qrUnknownMerchant }
        #expect { try t.service.payQR(phone: "13800000001", payload: String(fixed.dropLast()) + (fixed.hasSuffix("0") ? "1" : "0"), amountFen: nil, password: "123456", idempotencyKey: "e") } throws: { ($0 as? QRRefusal)?.refusal == .qrBadChecksum }
        #expect(throws: WalletRefusal.insufficientFunds) { try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 100_000, password: "123456", idempotencyKey: "f") }
        #expect(try t.service.balance(phone: "13800000001").balanceFen == 99_000)
    }

    @Test func transfers() throws {
        let (t, _) = try world()
        #expect(throws: WalletRefusal.selfTransfer) { try t.service.transfer(from: "13800000001", to: "13800000001", amountFen: 1, password: "123456", idempotencyKey: "x") }
        #expect(throws: WalletRefusal.walletNotFound) { try t.service.transfer(from: "13800000001", to: "13900000009", amountFen: 1, password: "123456", idempotencyKey: "y") }
        let receipt = try t.service.transfer(from: "13800000001", to: "13800000002", amountFen: 2_000, password: "123456", idempotencyKey: "z")
        #expect(receipt.counterparty == "138****0002" && receipt.amountFen == 2_000 && receipt.kind == "transfer_out" && !receipt.replayed)
        var replay = try t.service.transfer(from: "13800000001", to: "13800000002", amountFen: 2_000, password: "123456", idempotencyKey: "z")
        #expect(replay.replayed)
        replay.replayed = false
        #expect(replay == receipt)
        #expect(try t.service.balance(phone: "13800000002").balanceFen == 2_000)
        let incoming = try t.service.history(phone: "13800000002", month: nil, kind: "transfer")
        #expect(incoming.map(\.kind) == ["transfer_in"] && incoming[0].amountFen == 2_000 && incoming[0].counterparty == "138****0001")
    }

    @Test func frozenWalletCannotPayButReceives() throws {
        let (t, staticQR) = try world()
        _ = try t.service.setFrozen(phone: "13800000001", frozen: true, reason: "fraud review")
        #expect(throws: WalletRefusal.walletFrozen) { try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 1, password: "123456", idempotencyKey: "a") }
        #expect(throws: WalletRefusal.walletFrozen) { try t.service.transfer(from: "13800000001", to: "13800000002", amountFen: 1, password: "123456", idempotencyKey: "b") }
        let card = try t.service.cards(phone: "13800000001")[0].id
        #expect(throws: WalletRefusal.walletFrozen) { try t.service.withdraw(phone: "13800000001", cardID: card, amountFen: 1, idempotencyKey: "c") }
        _ = try t.service.topUp(phone: "13800000001", cardID: card, amountFen: 1, idempotencyKey: "d")
        #expect(try t.service.balance(phone: "13800000001").balanceFen == 100_001)
        _ = try t.service.setFrozen(phone: "13800000001", frozen: false, reason: "cleared")
        #expect(try t.service.transfer(from: "13800000001", to: "13800000002", amountFen: 1, password: "123456", idempotencyKey: "b").amountFen == 1)
    }

    @Test func classOneLimitIsExactlyOneThousandYuan() throws {
        let (t, staticQR) = try world()
        try t.richWallet("13800000003", fen: 200_000, kycClass: 1)
        _ = try t.service.payQR(phone: "13800000003", payload: staticQR, amountFen: 60_000, password: "123456", idempotencyKey: "a")
        #expect(throws: WalletRefusal.classLimitExceeded) { try t.service.payQR(phone: "13800000003", payload: staticQR, amountFen: 40_001, password: "123456", idempotencyKey: "b") }
        _ = try t.service.transfer(from: "13800000003", to: "13800000002", amountFen: 40_000, password: "123456", idempotencyKey: "c")
        #expect(throws: WalletRefusal.classLimitExceeded) { try t.service.transfer(from: "13800000003", to: "13800000002", amountFen: 1, password: "123456", idempotencyKey: "d") }
        // A retry of a payment already made is answered, not refused by the limit it used.
        #expect(try t.service.transfer(from: "13800000003", to: "13800000002", amountFen: 40_000, password: "123456", idempotencyKey: "c").replayed)
        // Class I counts since opening: a new year does not help.
        t.clock.set(ShanghaiCalendar.startOfYear(2027))
        #expect(throws: WalletRefusal.classLimitExceeded) { try t.service.transfer(from: "13800000003", to: "13800000002", amountFen: 1, password: "123456", idempotencyKey: "e") }
    }

    @Test func classTwoLimitIsPerCalendarYearInShanghai() throws {
        var policy = WalletPolicy()
        policy.classIIYearFenMax = 50_000
        let (t, staticQR) = try world(policy: policy)
        t.clock.set(ShanghaiCalendar.startOfYear(2027) - 1)
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 50_000, password: "123456", idempotencyKey: "a")
        #expect(throws: WalletRefusal.classLimitExceeded) { try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 1, password: "123456", idempotencyKey: "b") }
        t.clock.advance(micros: 1)
        #expect(try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 50_000, password: "123456", idempotencyKey: "c").amountFen == 50_000)
    }

    /// The class limits read one counter row per wallet and period; `checkUsage` proves the
    /// counters against the balance payments in the history, refunds netted.
    @Test func theClassLimitReadsCountersTheCheckProvesAgainstTheHistory() throws {
        let (t, staticQR) = try world()
        let wallet = try t.service.wallet(phone: "13800000001").id
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 4_520, password: "123456", idempotencyKey: "a")
        _ = try t.service.transfer(from: "13800000001", to: "13800000002", amountFen: 1_000, password: "123456", idempotencyKey: "b")
        // A top-up is not a balance payment: no counter moves.
        _ = try t.service.topUp(phone: "13800000001", cardID: try t.service.cards(phone: "13800000001")[0].id, amountFen: 700, idempotencyKey: "c")
        t.clock.set(ShanghaiCalendar.startOfYear(2027))
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 2_000, password: "123456", idempotencyKey: "d")
        func counted(_ period: Int) throws -> Int? { try t.int("SELECT balance_payments_fen FROM wallet_usage WHERE wallet_id = \(wallet) AND period = \(period)") }
        #expect(try counted(0) == 7_520)
        #expect(try counted(2026) == 5_520)
        #expect(try counted(2027) == 2_000)
        #expect(try t.int("SELECT count(*) FROM wallet_usage") == 3)
        #expect(try t.service.checkUsage().isEmpty)

        // A counter written around the service is found, and so is one missing.
        try t.execute("UPDATE wallet_usage SET balance_payments_fen = balance_payments_fen - 1 WHERE period = 2027")
        #expect(try t.service.checkUsage() == [WalletService.UsageMismatch(walletId: wallet, period: 2027, countedFen: 1_999, summedFen: 2_000)])
        try t.execute("DELETE FROM wallet_usage WHERE period = 0")
        #expect(try t.service.checkUsage() == [WalletService.UsageMismatch(walletId: wallet, period: 0, countedFen: 0, summedFen: 7_520),
                                               WalletService.UsageMismatch(walletId: wallet, period: 2027, countedFen: 1_999, summedFen: 2_000)])
    }

    /// A database from before the counters gets them from its history when it is upgraded:
    /// the migration is undone, then run again over payments already made.
    @Test func theUpgradeFillsTheCountersFromTheHistory() throws {
        let (t, staticQR) = try world()
        try t.richWallet("13800000003", fen: 200_000, kycClass: 1)
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 4_520, password: "123456", idempotencyKey: "a")
        _ = try t.service.transfer(from: "13800000003", to: "13800000002", amountFen: 60_000, password: "123456", idempotencyKey: "b")
        t.clock.set(ShanghaiCalendar.startOfYear(2027))
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 2_000, password: "123456", idempotencyKey: "c")
        try t.execute("DROP INDEX wallet_movements_payments")
        try t.execute("DROP TABLE wallet_usage")
        if let postgres = t.postgres {
            try t.execute("DELETE FROM qdwallet_migrations WHERE name = 'wallet-v7-usage-counters'")
            try postgres.migrate((try LedgerSchema.postgres) + (try WalletSchema.postgres()))
        } else {
            try t.execute("DELETE FROM grdb_migrations WHERE identifier = 'wallet-v7-usage-counters'")
            let pool = try DatabasePool(path: t.path)
            try TestWallet.migrator().migrate(pool)
            try pool.close()
        }
        #expect(try t.int("SELECT count(*) FROM wallet_usage") == 5)
        #expect(try t.int("SELECT sum(balance_payments_fen) FROM wallet_usage WHERE period = 0") == 66_520)
        #expect(try t.int("SELECT sum(balance_payments_fen) FROM wallet_usage WHERE period = 2027") == 2_000)
        #expect(try t.service.checkUsage().isEmpty)
        // And the limit reads them: class I has 40,000.00 fen left since opening.
        #expect(throws: WalletRefusal.classLimitExceeded) { try t.service.transfer(from: "13800000003", to: "13800000002", amountFen: 40_001, password: "123456", idempotencyKey: "d") }
        #expect(try t.service.transfer(from: "13800000003", to: "13800000002", amountFen: 40_000, password: "123456", idempotencyKey: "e").amountFen == 40_000)
    }

    @Test func racingPaymentsCannotBothSlipUnderTheLimit() async throws {
        let (t, staticQR) = try world()
        try t.richWallet("13800000003", fen: 200_000, kycClass: 1)
        // Separate connections, as separate processes would have.
        let services = try (0..<4).map { _ in
            WalletService(store: try t.anotherStore(), ledger: Ledger(store: t.store, clock: t.clock), hasher: PasswordHasher(iterations: 1_000), dataKey: t.key)
        }.map { service in
            WalletService(store: service.store, ledger: Ledger(store: service.store, clock: t.clock), hasher: service.hasher, dataKey: t.key)
        }
        // Each outcome: paid, or the refusal's code: the two that lose must lose to the limit.
        let outcomes = await withTaskGroup(of: String.self) { group in
            for (i, service) in services.enumerated() {
                group.addTask {
                    do {
                        _ = try service.payQR(phone: "13800000003", payload: staticQR, amountFen: 40_000, password: "123456", idempotencyKey: "race-\(i)")
                        return "paid"
                    } catch let refusal as WalletRefusal {
                        return refusal.rawValue
                    } catch {
                        return "\(error)"
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(outcomes.sorted() == ["class_limit_exceeded", "class_limit_exceeded", "paid", "paid"], "\(outcomes)")
        #expect(try t.service.balance(phone: "13800000003").balanceFen == 200_000 - 80_000)
        #expect(try t.ledger.check().ok)
    }

    /// The monitoring counts the wallet's payments from its balance in the window and nothing
    /// else the window holds: money received or topped up does not count, however much of it
    /// there is. The count reads the wallet's payments from its balance by time (their own
    /// index, both engines' plans), from the window's start, and stops one past the
    /// threshold: its cost is the threshold's, not the window's or the history's.
    @Test func onlyPaymentsFromTheBalanceCountTowardsTheMonitoringsThreshold() throws {
        var policy = WalletPolicy()
        policy.paymentsInWindowMax = 3
        let (t, staticQR) = try world(policy: policy)
        try t.richWallet("13800000003", fen: 100_000)
        let mine = Mask.phone("13800000001")
        func alerts() throws -> Int { try t.outbox().filter { $0.payload.contains("many_payments") && $0.payload.contains(mine) }.count }
        // An hour back: three payments, out of the window.
        for i in 0..<3 {
            _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 1, password: "123456", idempotencyKey: "old\(i)")
        }
        t.clock.advance(micros: 60 * 60 * 1_000_000)
        // In the window: eight transfers received and two top-ups, then three payments.
        for i in 0..<8 {
            _ = try t.service.transfer(from: "13800000003", to: "13800000001", amountFen: 100, password: "123456", idempotencyKey: "in\(i)")
        }
        let card = try t.service.cards(phone: "13800000001")[0].id
        for i in 0..<2 {
            _ = try t.service.topUp(phone: "13800000001", cardID: card, amountFen: 500, idempotencyKey: "top\(i)")
        }
        for i in 0..<3 {
            _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 1, password: "123456", idempotencyKey: "now\(i)")
        }
        #expect(try alerts() == 0)
        // The fourth payment of the window is one past the threshold.
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 1, password: "123456", idempotencyKey: "now3")
        #expect(try alerts() == 1)
        let wallet = try t.service.wallet(phone: "13800000001").id
        let counted = try t.store.database.read { try MovementStore($0).balancePayments(walletIDs: [wallet, 999_999], after: TestWallet.start, upTo: 10) }
        #expect(counted == [wallet: 4, 999_999: 0])
        #expect(try t.store.database.read { try MovementStore($0).balancePayments(walletIDs: [wallet], after: TestWallet.start, upTo: 2) } == [wallet: 2])

        // The plan: the index of the wallet's payments from its balance, from the window's start.
        let query = MovementStore.recentPaymentsSQL(wallet: "?")
        let plan: [String] = try t.store.database.write { db in
            if db.dialect == .postgres {
                _ = try db.run("SET LOCAL enable_seqscan = off")
                return try db.all("EXPLAIN " + query, [wallet, TestWallet.start, 4]) { try $0.text(0) }
            }
            return try db.all("EXPLAIN QUERY PLAN " + query, [wallet, TestWallet.start, 4]) { try $0.text(3) }
        }
        if t.postgres != nil {
            #expect(plan.contains { $0.contains("Index") && $0.contains("Scan using wallet_movements_payments") }, "\(plan)")
            #expect(plan.contains { $0.contains("Index Cond") && $0.contains("created_at >") }, "\(plan)")
        } else {
            #expect(plan == ["SEARCH wallet_movements USING INDEX wallet_movements_payments (wallet_id=? AND created_at>?)"], "\(plan)")
        }
    }

    @Test func monitoringWritesAlertsInTheSameTransaction() throws {
        var policy = WalletPolicy()
        policy.largePaymentAlertFen = 10_000
        policy.paymentsInWindowMax = 3
        let (t, staticQR) = try world(policy: policy)
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 10_000, password: "123456", idempotencyKey: "a")
        #expect(try t.outbox().isEmpty)
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 10_001, password: "123456", idempotencyKey: "b")
        #expect(try t.outbox().map(\.payload).filter { $0.contains("large_payment") }.count == 1)
        for i in 0..<2 {
            _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 1, password: "123456", idempotencyKey: "c\(i)")
        }
        #expect(try t.outbox().map(\.payload).filter { $0.contains("many_payments") }.count == 1)
        // The fifth and sixth in the window do not alert again: once for the window's length.
        for i in 0..<2 {
            _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 1, password: "123456", idempotencyKey: "c\(i + 2)")
        }
        #expect(try t.outbox().map(\.payload).filter { $0.contains("many_payments") }.count == 1)
        t.clock.advance(micros: 10 * 60 * 1_000_000)
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 1, password: "123456", idempotencyKey: "d")
        #expect(try t.outbox().map(\.payload).filter { $0.contains("many_payments") }.count == 1)
        // A new burst ten minutes later alerts once more.
        for i in 0..<3 {
            _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 1, password: "123456", idempotencyKey: "d\(i)")
        }
        #expect(try t.outbox().map(\.payload).filter { $0.contains("many_payments") }.count == 2)
        #expect(try t.outbox().allSatisfy { $0.kind == "security_alert" && !$0.payload.contains("13800000001") })
        // A large payment the balance cannot cover is refused, and its alert goes with it: the
        // alert is written in the payment's transaction, which rolls back.
        let alerts = try t.outbox().count
        #expect(throws: WalletRefusal.insufficientFunds) { try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 95_000, password: "123456", idempotencyKey: "e") }
        #expect(try t.outbox().count == alerts)
    }

    @Test func historyAndMonthlySummary() throws {
        let (t, staticQR) = try world()
        _ = try t.service.registerMerchant(id: "M0002", name: "利群超市", category: "groceries", mcc: "5411")
        let grocer = try t.service.merchantQR(id: "M0002", amountFen: nil)
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 1_500, password: "123456", idempotencyKey: "a")
        _ = try t.service.payQR(phone: "13800000001", payload: grocer, amountFen: 8_800, password: "123456", idempotencyKey: "b")
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 500, password: "123456", idempotencyKey: "c")
        // The last microsecond of November in Shanghai (15:59:59.999999 UTC on 30 November)
        // and the first of December: a month is its Shanghai month's times, start included.
        t.clock.set(ShanghaiCalendar.startOfMonth(year: 2026, month: 12) - 1)
        _ = try t.service.payQR(phone: "13800000001", payload: staticQR, amountFen: 700, password: "123456", idempotencyKey: "late")
        t.clock.set(ShanghaiCalendar.startOfMonth(year: 2026, month: 12))
        _ = try t.service.transfer(from: "13800000001", to: "13800000002", amountFen: 300, password: "123456", idempotencyKey: "d")
        let november = try t.service.history(phone: "13800000001", month: "2026-11", kind: nil)
        #expect(november.map(\.kind) == ["qr_payment", "qr_payment", "qr_payment", "qr_payment", "topup"])
        #expect(november.map(\.amountFen) == [-700, -500, -8_800, -1_500, 100_000])
        #expect(try t.service.history(phone: "13800000001", month: "2026-12", kind: nil).map(\.kind) == ["transfer_out"])
        #expect(try t.service.history(phone: "13800000001", month: "2026-10", kind: nil).isEmpty)
        #expect(try t.service.history(phone: "13800000001", month: nil, kind: "qr_payment").count == 4)
        #expect(try t.service.history(phone: "13800000001", month: "2026-11", kind: "qr_payment").count == 4)
        let summary = try t.service.monthlySummary(phone: "13800000001", month: "2026-11")
        #expect(summary == [
            .init(category: "groceries", spentFen: 8_800, payments: 1),
            .init(category: "food", spentFen: 2_700, payments: 3),
        ])
        #expect(try t.service.monthlySummary(phone: "13800000001", month: "2026-12") == [.init(category: "transfer", spentFen: 300, payments: 1)])
        // What is not a month names none: no row read, none shown.
        for text in ["2026-13", "2026-00", "2026-1", "2026/11", "２026-11", "", "2026-11-01"] {
            #expect(try t.service.history(phone: "13800000001", month: text, kind: nil).isEmpty, "\(text)")
            #expect(try t.service.monthlySummary(phone: "13800000001", month: text).isEmpty, "\(text)")
        }
    }

    /// The month of a movement is the Shanghai month of its time (UTC+8, no summer time):
    /// the range a month key reads is its first microsecond to the next month's, December
    /// into the next year, February by the Gregorian leap rule.
    @Test func aMonthKeyIsItsShanghaiMonthsTimes() throws {
        let hour: Int64 = 3_600_000_000
        for (key, days) in [("2026-11", 30), ("2026-12", 31), ("2024-02", 29), ("2100-02", 28), ("2000-02", 29)] {
            let range = try #require(MovementStore.monthRange(key))
            #expect(range.end - range.start == Int64(days) * 24 * hour, "\(key)")
            #expect(ShanghaiCalendar.date(at: range.start).monthKey == key && ShanghaiCalendar.date(at: range.end - 1).monthKey == key, "\(key)")
            #expect(ShanghaiCalendar.date(at: range.start - 1).monthKey != key && ShanghaiCalendar.date(at: range.end).monthKey != key, "\(key)")
        }
        // 2026-12-01T00:00:00+08:00 is 2026-11-30T16:00:00Z: 1,796,054,400 s after the epoch.
        #expect(MovementStore.monthRange("2026-12")?.start == 1_796_054_400_000_000)
        #expect(MovementStore.monthRange("2026-12")?.end == ShanghaiCalendar.startOfMonth(year: 2027, month: 1))
    }
}

/// The database knows its data key: another well-formed key is refused before anything is
/// sealed, and tells the operator how to find the right one.
@Suite struct DatabaseKeyTests {
    func sealedCount(_ t: TestWallet) throws -> Int {
        try t.int("SELECT (SELECT count(*) FROM kyc_submissions) + (SELECT count(*) FROM cards)") ?? 0
    }

    @Test func anotherKeyIsRefusedBeforeAnythingIsSealed() throws {
        let t = try TestWallet()
        try t.richWallet("13800000001", fen: 0)
        #expect(try t.service.recordedDataKeyID() == t.key.keyIDHex)
        let stranger = WalletService(store: t.store, ledger: t.ledger, hasher: PasswordHasher(iterations: 1_000), dataKey: DataKey.random())
        let before = try sealedCount(t)
        // The same card bound again under another key: the duplicate check is keyed, so
        // without this refusal it would pass.
        #expect {
            try stranger.bindCard(phone: "13800000001", cardNumber: "6222020200112233446", bank: "ICBC")
        } throws: { error in
            let message = "\(error)"
            return (error as? WalletError)?.code == .dataKey && message.contains(t.key.keyIDHex) && message.contains("qdwallet keys id")
        }
        _ = try t.service.openWallet(phone: "13800000002", name: "李四")
        #expect(throws: WalletError.self) { try stranger.submitKYC(phone: "13800000002", name: "李四", idNumber: residentID(forPhone: "13800000002")) }
        #expect(try sealedCount(t) == before)
        // Rotation still works with the right key, and afterwards only the new key is accepted.
        let newKey = DataKey.random()
        _ = try t.service.rotateDataKey(from: t.key, to: newKey)
        #expect(try t.service.recordedDataKeyID() == newKey.keyIDHex)
        #expect(throws: WalletError.self) { try t.service.submitKYC(phone: "13800000002", name: "李四", idNumber: residentID(forPhone: "13800000002")) }
        let rotated = WalletService(store: t.store, ledger: t.ledger, hasher: PasswordHasher(iterations: 1_000), dataKey: newKey)
        _ = try rotated.submitKYC(phone: "13800000002", name: "李四", idNumber: residentID(forPhone: "13800000002"))
        // A rotation started with a key that is not the database's is refused too.
        #expect(throws: WalletError.self) { try stranger.rotateDataKey(from: stranger.dataKey!, to: DataKey.random()) }
    }

    /// A database from before keys were recorded: its sealed values name their key.
    @Test func aDatabaseWithoutARecordedKeyIsJudgedByItsSealedValues() throws {
        let t = try TestWallet()
        try t.richWallet("13800000001", fen: 0)
        try t.execute("DELETE FROM wallet_data_key")
        let stranger = WalletService(store: t.store, ledger: t.ledger, hasher: PasswordHasher(iterations: 1_000), dataKey: DataKey.random())
        _ = try t.service.openWallet(phone: "13800000002", name: "李四")
        #expect(throws: WalletError.self) { try stranger.submitKYC(phone: "13800000002", name: "李四", idNumber: residentID(forPhone: "13800000002")) }
        #expect(try t.service.recordedDataKeyID() == nil)
        _ = try t.service.submitKYC(phone: "13800000002", name: "李四", idNumber: residentID(forPhone: "13800000002"))
        #expect(try t.service.recordedDataKeyID() == t.key.keyIDHex)
    }

    /// One person, one verified wallet (PBOC's rule that a customer's payment accounts are
    /// managed together): a second wallet with the same ID number would double the class
    /// limits.
    @Test func oneIDNumberIsVerifiedOnOneWallet() throws {
        let t = try TestWallet()
        let id = residentID(forPhone: "13800000001")
        _ = try t.service.openWallet(phone: "13800000001", name: "张三")
        _ = try t.service.openWallet(phone: "13800000002", name: "张三")
        _ = try t.service.submitKYC(phone: "13800000001", name: "张三", idNumber: id)
        // Waiting for review already holds the number.
        #expect(throws: WalletRefusal.idNumberInUse) { try t.service.submitKYC(phone: "13800000002", name: "张三", idNumber: id.lowercased()) }
        _ = try t.service.approveKYC(phone: "13800000001", kycClass: 2)
        #expect(throws: WalletRefusal.idNumberInUse) { try t.service.submitKYC(phone: "13800000002", name: "张三", idNumber: id) }
        #expect(try t.int("SELECT count(*) FROM kyc_submissions") == 1)
        // A rejected submission frees the number for another wallet.
        _ = try t.service.openWallet(phone: "13800000003", name: "李四")
        let other = residentID(forPhone: "13800000003")
        _ = try t.service.submitKYC(phone: "13800000003", name: "李四", idNumber: other)
        _ = try t.service.rejectKYC(phone: "13800000003", reason: "photo unreadable")
        _ = try t.service.submitKYC(phone: "13800000002", name: "李四", idNumber: other)
    }
}

/// Idempotency keys are scoped by the caller's wallet, as Stripe scopes them by account.
@Suite struct ScopedKeyTests {
    @Test func twoWalletsMayChooseTheSameKey() throws {
        let t = try TestWallet()
        let (_, card1) = try t.richWallet("13800000001", fen: 10_000)
        let (_, card2) = try t.richWallet("13800000002", fen: 10_000)
        let first = try t.service.topUp(phone: "13800000001", cardID: card1, amountFen: 500, idempotencyKey: "k1")
        let second = try t.service.topUp(phone: "13800000002", cardID: card2, amountFen: 700, idempotencyKey: "k1")
        #expect(!second.replayed && second.transactionId != first.transactionId)
        _ = try t.service.transfer(from: "13800000001", to: "13800000002", amountFen: 100, password: "123456", idempotencyKey: "same")
        let other = try t.service.transfer(from: "13800000002", to: "13800000001", amountFen: 300, password: "123456", idempotencyKey: "same")
        #expect(!other.replayed)
        // A retry by the same wallet is still a replay.
        #expect(try t.service.topUp(phone: "13800000001", cardID: card1, amountFen: 500, idempotencyKey: "k1").replayed)
        #expect(try t.service.balance(phone: "13800000001").balanceFen == 10_000 + 500 - 100 + 300)
        #expect(try t.service.balance(phone: "13800000002").balanceFen == 10_000 + 700 + 100 - 300)
        #expect(try t.ledger.check().ok)
    }

    /// A request stored under the old, unscoped key is replayed by its retry, not paid again.
    @Test func aRequestFromBeforeScopingIsReplayed() throws {
        let t = try TestWallet()
        let (wallet, card) = try t.richWallet("13800000001", fen: 0)
        let bank = try t.ledger.account(code: SystemAccounts.bankClearing).id
        let legacy = try t.ledger.post(PostingRequest.transfer(key: "topup:old-1", from: bank, to: wallet.walletAccountID, amount: 800, memo: "topup card \(card)"))
        let legacyID = try #require(legacy.transactionID)
        _ = try t.store.transaction { db, _ in
            try t.service.recordMovement(db, walletID: wallet.id, kind: "topup", counterparty: "ICBC", category: "topup", amountFen: 800, balancePayment: false, transactionID: legacyID, reference: nil)
        }
        let retried = try t.service.topUp(phone: "13800000001", cardID: card, amountFen: 800, idempotencyKey: "old-1")
        #expect(retried.replayed && retried.transactionId == legacy.transactionID)
        #expect(try t.service.balance(phone: "13800000001").balanceFen == 800)
    }
}
