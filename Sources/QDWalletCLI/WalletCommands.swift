import ArgumentParser
import Campaigns
import Ledger
import Payments
import Wallet

/// `qdwallet wallet ...`: opening, real-name verification, password, freezing.
struct WalletCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wallet",
        abstract: "Open wallets, verify real names, set payment passwords, freeze and unfreeze.",
        subcommands: [Open.self, KYC.self, Password.self, Freeze.self, Unfreeze.self, Autopay.self, Check.self])

    struct Autopay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the most autopay may take from the wallet on one business day (default 3000.00).",
            discussion: "Autopay is a password-free payment: bills beyond the daily limit stay payable with OVER_AUTOPAY_DAILY_LIMIT until the resident pays them.")
        @OptionGroup var global: GlobalOptions
        @Option var phone: String
        @Option(name: .customLong("daily-limit"), parsing: .unconditional, help: "Yuan, e.g. 3000.00 (at most 50000.00).") var dailyLimit: String

        struct Result: Encodable { var walletId: Int64; var phone: String; var autopayDailyLimitFen: Int64 }

        func run() throws {
            let fen = try Arguments.amount(dailyLimit)
            let wallet = try AppDatabase.wallet(global).setAutopayDailyLimit(phone: phone, fen: fen)
            let result = Result(walletId: wallet.id, phone: Mask.phone(wallet.phone), autopayDailyLimitFen: fen)
            Output(json: global.json).emit(result) { "wallet \(wallet.id): autopay takes at most \(Money(fen: fen).yuanString) a day" }
        }
    }

    struct Open: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Open a wallet for a mobile number (one per number).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Mainland mobile number, 11 digits starting with 1.") var phone: String
        @Option(help: "The resident's name.") var name: String

        struct Result: Encodable { var walletId: Int64; var phone: String; var kycClass: Int }

        func run() throws {
            let wallet = try AppDatabase.wallet(global).openWallet(phone: phone, name: name)
            let result = Result(walletId: wallet.id, phone: Mask.phone(wallet.phone), kycClass: wallet.kycClass)
            Output(json: global.json).emit(result) { "wallet \(result.walletId) opened for \(result.phone) (class I until verified)" }
        }
    }

    struct KYC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kyc", abstract: "Real-name verification: submit, approve, reject.",
            subcommands: [Submit.self, Approve.self, Reject.self])

        struct Submit: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Submit name and resident ID number for review (needs the data key).")
            @OptionGroup var global: GlobalOptions
            @Option var phone: String
            @Option var name: String
            @Option(name: .customLong("id-number"), help: "18-character resident ID number.") var idNumber: String

            func run() throws {
                let submission = try AppDatabase.wallet(global, needsKey: true).submitKYC(phone: phone, name: name, idNumber: idNumber)
                Output(json: global.json).emit(submission) { "submission \(submission.id) waiting for review (ID \(submission.idNumberMasked))" }
            }
        }

        struct Approve: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Approve the waiting submission with an account class (1, 2 or 3).")
            @OptionGroup var global: GlobalOptions
            @Option var phone: String
            @Option(name: .customLong("class"), help: "Account class: 1, 2 or 3.") var kycClass: Int

            func run() throws {
                let submission = try AppDatabase.wallet(global).approveKYC(phone: phone, kycClass: kycClass)
                Output(json: global.json).emit(submission) { "submission \(submission.id) approved: class \(kycClass)" }
            }
        }

        struct Reject: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Reject the waiting submission with a reason.")
            @OptionGroup var global: GlobalOptions
            @Option var phone: String
            @Option var reason: String

            func run() throws {
                let submission = try AppDatabase.wallet(global).rejectKYC(phone: phone, reason: reason)
                Output(json: global.json).emit(submission) { "submission \(submission.id) rejected" }
            }
        }
    }

    struct Password: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Payment password.", subcommands: [Set.self])

        struct Set: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Set the 6-digit payment password (read from a prompt or stdin, never an argument).",
                discussion: "Replacing a password (a reset) clears the lock; for 24 hours after it the wallet app confirms every payment with both the password and the device's key.")
            @OptionGroup var global: GlobalOptions
            @OptionGroup var password: PasswordOptions
            @Option var phone: String

            struct Result: Encodable { var phone: String; var passwordSet: Bool }

            func run() throws {
                let service = try AppDatabase.wallet(global)
                try service.setPassword(phone: phone, password: try password.read(prompt: "New payment password: "))
                let result = Result(phone: Mask.phone(phone), passwordSet: true)
                Output(json: global.json).emit(result) { "payment password set for \(result.phone)" }
            }
        }
    }

    struct Freeze: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Freeze a wallet: it can receive but not pay or withdraw.")
        @OptionGroup var global: GlobalOptions
        @Option var phone: String
        @Option var reason: String = ""

        func run() throws {
            let wallet = try AppDatabase.wallet(global).setFrozen(phone: phone, frozen: true, reason: reason)
            Output(json: global.json).emit(FrozenResult(wallet)) { "wallet \(wallet.id) frozen" }
        }
    }

    struct Unfreeze: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unfreeze a wallet.")
        @OptionGroup var global: GlobalOptions
        @Option var phone: String
        @Option var reason: String = ""

        func run() throws {
            let wallet = try AppDatabase.wallet(global).setFrozen(phone: phone, frozen: false, reason: reason)
            Output(json: global.json).emit(FrozenResult(wallet)) { "wallet \(wallet.id) unfrozen" }
        }
    }

    struct Check: ParsableCommand, ReadOnlyCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify the counters payments decide on: each wallet's usage (what the class limits read) against the balance payments in its history, and each campaign cap's use against the standing allocations.",
            discussion: "Exits 3 and lists the mismatches when any counter is off.")
        @OptionGroup var global: GlobalOptions

        struct Result: Encodable {
            var ok: Bool
            var mismatches: [WalletService.UsageMismatch]
            var capMismatches: [CampaignStore.CapUseMismatch]
        }

        func run() throws {
            let store = try AppDatabase.openStore(path: global.databasePath, mode: .existingForReading)
            let mismatches = try AppDatabase.wallet(global, mode: .existingForReading).checkUsage()
            let caps = try store.database.read { db in try CampaignStore(db).capUseMismatches(limit: 100) }
            let ok = mismatches.isEmpty && caps.isEmpty
            Output(json: global.json).emit(Result(ok: ok, mismatches: mismatches, capMismatches: caps)) {
                ([ok ? "wallet check: ok" : "wallet check: \(mismatches.count + caps.count) counter(s) off"] + mismatches.map {
                    "  ! wallet \($0.walletId) \($0.period == 0 ? "since opening" : String($0.period)): counted \(Money(fen: $0.countedFen).yuanString), history \(Money(fen: $0.summedFen).yuanString)"
                } + caps.map {
                    "  ! campaign \($0.campaignId) \($0.scope) \($0.scopeId) \($0.period) \($0.periodKey): counted \($0.countedUses) uses \(Money(fen: $0.countedFen).yuanString), allocations \($0.allocatedUses) uses \(Money(fen: $0.allocatedFen).yuanString)"
                }).joined(separator: "\n")
            }
            if !ok {
                throw ExitCode(ExitStatus.breaks.rawValue)
            }
        }
    }

    struct FrozenResult: Encodable {
        var walletId: Int64
        var frozen: Bool
        init(_ wallet: WalletRecord) {
            walletId = wallet.id
            frozen = wallet.frozen
        }
    }
}

/// `qdwallet card ...`
struct CardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "card", abstract: "Bind, unbind and list bank cards.",
        subcommands: [Bind.self, Unbind.self, List.self])

    struct Bind: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Bind a bank card (needs approved verification and the data key).")
        @OptionGroup var global: GlobalOptions
        @Option var phone: String
        @Option(name: .customLong("card-number")) var cardNumber: String
        @Option var bank: String

        struct Result: Encodable { var cardId: Int64; var bank: String; var masked: String }

        func run() throws {
            let card = try AppDatabase.wallet(global, needsKey: true).bindCard(phone: phone, cardNumber: cardNumber, bank: bank)
            let result = Result(cardId: card.id, bank: card.bank, masked: card.masked)
            Output(json: global.json).emit(result) { "card \(card.id) bound: \(card.bank) \(card.masked)" }
        }
    }

    struct Unbind: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unbind a card (refused while a top-up or withdrawal through it is pending).")
        @OptionGroup var global: GlobalOptions
        @Option var phone: String
        @Option(name: .customLong("card")) var cardID: Int64

        func run() throws {
            let card = try AppDatabase.wallet(global).unbindCard(phone: phone, cardID: cardID)
            Output(json: global.json).emit(card) { "card \(card.id) unbound" }
        }
    }

    struct List: ParsableCommand, ReadOnlyCommand {
        static let configuration = CommandConfiguration(abstract: "List the wallet's bound cards, masked.")
        @OptionGroup var global: GlobalOptions
        @Option var phone: String

        func run() throws {
            let cards = try AppDatabase.wallet(global, mode: .existingForReading).cards(phone: phone)
            Output(json: global.json).emit(["cards": cards]) {
                cards.isEmpty ? "no bound cards" : cards.map { "\($0.id)  \($0.bank)  \($0.masked)" }.joined(separator: "\n")
            }
        }
    }
}

/// The JSON of every money-moving command: `transaction_id`, `amount_fen`, `discount_fen`, `points`.
struct ReceiptResult: Encodable {
    var transactionId: Int64
    var amountFen: Int64
    var discountFen: Int64
    var points: Int64
    var kind: String
    var counterparty: String
    var replayed: Bool

    init(_ receipt: WalletService.Receipt) {
        transactionId = receipt.transactionId
        amountFen = receipt.amountFen
        discountFen = receipt.discountFen
        points = receipt.points
        kind = receipt.kind
        counterparty = receipt.counterparty
        replayed = receipt.replayed
    }

    var text: String {
        var line = "\(kind) \(Money(fen: amountFen).yuanString) \(counterparty) (transaction \(transactionId))"
        if discountFen > 0 { line += ", discount \(Money(fen: discountFen).yuanString)" }
        if points > 0 { line += ", \(points) points" }
        if replayed { line += " [already done earlier with this idempotency key]" }
        return line
    }
}

/// `qdwallet topup`
struct TopUpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "topup", abstract: "Top the wallet up from a bound card.")
    @OptionGroup var global: GlobalOptions
    @Option var phone: String
    @Option(parsing: .unconditional, help: "Yuan, e.g. 100.00.") var amount: String
    @Option(name: .customLong("card")) var cardID: Int64
    @Option(name: .customLong("idempotency-key"), help: "Retrying with the same key never moves money twice.") var idempotencyKey: String?

    func run() throws {
        let receipt = try AppDatabase.wallet(global).topUp(phone: phone, cardID: cardID, amountFen: try Arguments.amount(amount), idempotencyKey: Arguments.idempotencyKey(idempotencyKey))
        let result = ReceiptResult(receipt)
        Output(json: global.json).emit(result) { result.text }
    }
}

/// `qdwallet withdraw`, `withdraw confirm`, `withdraw fail`
struct WithdrawCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "withdraw", abstract: "Withdraw to a bound card: a hold until the bank confirms or fails it.",
        subcommands: [Confirm.self, Fail.self])
    @OptionGroup var global: GlobalOptions
    @Option var phone: String?
    @Option(parsing: .unconditional, help: "Yuan, e.g. 45.20.") var amount: String?
    @Option(name: .customLong("card")) var cardID: Int64?
    @Option(name: .customLong("idempotency-key")) var idempotencyKey: String?

    func run() throws {
        guard let phone, let amount, let cardID else {
            throw CLIFailure(.usage, code: "usage", "withdraw needs --phone, --amount and --card (or the subcommand confirm or fail)")
        }
        let withdrawal = try AppDatabase.wallet(global).withdraw(phone: phone, cardID: cardID, amountFen: try Arguments.amount(amount), idempotencyKey: Arguments.idempotencyKey(idempotencyKey))
        Output(json: global.json).emit(withdrawal) { "withdrawal \(withdrawal.withdrawalId) \(withdrawal.status): \(Money(fen: withdrawal.amountFen).yuanString) held" }
    }

    struct Confirm: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The bank paid the withdrawal out.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("withdrawal")) var withdrawalID: Int64

        func run() throws {
            let withdrawal = try AppDatabase.wallet(global).confirmWithdrawal(id: withdrawalID)
            Output(json: global.json).emit(withdrawal) { "withdrawal \(withdrawal.withdrawalId) \(withdrawal.status)" }
        }
    }

    struct Fail: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The bank failed the withdrawal: the money is returned.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("withdrawal")) var withdrawalID: Int64

        func run() throws {
            let withdrawal = try AppDatabase.wallet(global).failWithdrawal(id: withdrawalID)
            Output(json: global.json).emit(withdrawal) { "withdrawal \(withdrawal.withdrawalId) \(withdrawal.status): money returned" }
        }
    }
}

/// `qdwallet merchant ...`
struct MerchantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merchant", abstract: "Register merchants and print their QR payloads.",
        subcommands: [Register.self, QR.self])

    struct Register: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a merchant with its settlement account.")
        @OptionGroup var global: GlobalOptions
        @Option var id: String
        @Option var name: String
        @Option var category: String
        @Option(help: "The city in printable ASCII, as QR tag 60 carries it (default QINGDAO).") var city: String?
        @Option(name: .customLong("city-local"), help: "The city in Chinese, for the QR language template (default 青岛 when --city is not given).") var cityLocal: String?
        @Option(name: .customLong("name-ascii"), help: "The name in printable ASCII for QR tag 59, at most 25 characters (default: derived from --name, else the id).") var nameASCII: String?
        @Option(help: "Merchant category code, 4 digits.") var mcc: String = "5999"

        func run() throws {
            let merchant = try AppDatabase.wallet(global).registerMerchant(
                id: id, name: name, category: category, city: city ?? "QINGDAO", mcc: mcc, nameASCII: nameASCII,
                cityLocal: cityLocal ?? (city == nil ? "青岛" : nil))
            Output(json: global.json).emit(merchant) { "merchant \(merchant.id) registered (account \(merchant.accountId))" }
        }
    }

    struct QR: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "qr", abstract: "Print the merchant's EMVCo QR payload, static or with a fixed amount.")
        @OptionGroup var global: GlobalOptions
        @Option var id: String
        @Option(parsing: .unconditional, help: "Yuan, e.g. 45.20.") var amount: String?

        func run() throws {
            let fen = try amount.map(Arguments.amount)
            let payload = try AppDatabase.wallet(global).merchantQR(id: id, amountFen: fen)
            Output(json: global.json).emit(["payload": payload]) { payload }
        }
    }
}

/// `qdwallet pay`
struct PayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pay", abstract: "Pay a merchant by its QR payload (campaigns of Jobs/campaigns/ apply).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var jobs: JobsOptions
    @OptionGroup var password: PasswordOptions
    @Option var phone: String
    @Option var qr: String
    @Option(parsing: .unconditional, help: "Yuan; required for a static code, must match a fixed one.") var amount: String?
    @Option(name: .customLong("idempotency-key")) var idempotencyKey: String?

    func run() throws {
        let fen = try amount.map(Arguments.amount)
        let plain = try AppDatabase.wallet(global)
        let service = WalletService(store: plain.store, ledger: plain.ledger, policy: plain.policy, dataKey: plain.dataKey, planner: CampaignPlanner(campaigns: try CampaignSetup.load(jobs, store: plain.store), clock: plain.ledger.clock))
        let receipt = try service.payQR(phone: phone, payload: qr, amountFen: fen, password: try password.read(), idempotencyKey: Arguments.idempotencyKey(idempotencyKey))
        let result = ReceiptResult(receipt)
        Output(json: global.json).emit(result) { result.text }
    }
}

/// `qdwallet transfer`
struct TransferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "transfer", abstract: "Transfer to another wallet by mobile number, at once.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var password: PasswordOptions
    @Option var from: String
    @Option var to: String
    @Option(parsing: .unconditional, help: "Yuan, e.g. 45.20.") var amount: String
    @Option(name: .customLong("idempotency-key")) var idempotencyKey: String?

    func run() throws {
        let fen = try Arguments.amount(amount)
        let service = try AppDatabase.wallet(global)
        let receipt = try service.transfer(from: from, to: to, amountFen: fen, password: try password.read(), idempotencyKey: Arguments.idempotencyKey(idempotencyKey))
        let result = ReceiptResult(receipt)
        Output(json: global.json).emit(result) { result.text }
    }
}

/// `qdwallet balance`
struct BalanceCommand: ParsableCommand, ReadOnlyCommand {
    static let configuration = CommandConfiguration(commandName: "balance", abstract: "Posted and available balance, and points.")
    @OptionGroup var global: GlobalOptions
    @Option var phone: String

    func run() throws {
        let balance = try AppDatabase.wallet(global, mode: .existingForReading).balance(phone: phone)
        Output(json: global.json).emit(balance) {
            "balance \(Money(fen: balance.balanceFen).yuanString)  available \(Money(fen: balance.availableFen).yuanString)  points \(balance.points)" + (balance.frozen ? "  [frozen]" : "")
        }
    }
}

/// `qdwallet history`
struct HistoryCommand: ParsableCommand, ReadOnlyCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Movements, newest first, by month and kind; --summary gives spending by category.")
    @OptionGroup var global: GlobalOptions
    @Option var phone: String
    @Option(help: "YYYY-MM") var month: String?
    @Option(help: "topup, withdrawal, qr_payment, transfer, bill, ...") var kind: String?
    @Flag(help: "Spending of --month by category instead of the movements.") var summary = false

    func run() throws {
        let month = try self.month.map(Arguments.month)
        let service = try AppDatabase.wallet(global, mode: .existingForReading)
        if summary {
            guard let month else { throw CLIFailure(.usage, code: "usage", "--summary needs --month") }
            let lines = try service.monthlySummary(phone: phone, month: month)
            Output(json: global.json).emit(["month": AnyEncodable(month), "categories": AnyEncodable(lines)]) {
                lines.isEmpty ? "no spending in \(month)" : lines.map { "\($0.category)  \(Money(fen: $0.spentFen).yuanString)  (\($0.payments))" }.joined(separator: "\n")
            }
            return
        }
        let movements = try service.history(phone: phone, month: month, kind: kind)
        Output(json: global.json).emit(["movements": movements]) {
            movements.isEmpty ? "no movements" : movements.map { m in
                var line = "\(ShanghaiCalendar.date(at: m.createdAt).iso)  \(m.kind)  \(m.counterparty)  \(Money(fen: m.amountFen).yuanString)"
                if m.discountFen > 0 { line += "  discount \(Money(fen: m.discountFen).yuanString)" }
                if m.points != 0 { line += "  points \(m.points)" }
                return line
            }.joined(separator: "\n")
        }
    }
}

/// Wraps any encodable value, for documents that mix types.
struct AnyEncodable: Encodable {
    private let encodeValue: (Encoder) throws -> Void
    init<T: Encodable>(_ value: T) { encodeValue = value.encode }
    func encode(to encoder: Encoder) throws { try encodeValue(encoder) }
}
