import ArgumentParser
import Billing
import Ledger
import Wallet

/// `qdwallet utility link/unlink`
struct UtilityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "utility", abstract: "Link and unlink bill accounts (户号) of billers.",
        subcommands: [Link.self, Unlink.self])

    struct Link: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Link a biller's customer number to a wallet, with autopay on or off.")
        @OptionGroup var global: GlobalOptions
        @Option var phone: String
        @Option var biller: String
        @Option(name: .customLong("customer-no")) var customerNo: String
        @Flag(help: "Pay this account's bills automatically at night.") var autopay = false
        @Option(name: .customLong("autopay-limit"), parsing: .unconditional, help: "Largest bill paid automatically, yuan (default 500.00).") var autopayLimit: String?

        func run() throws {
            let limit = try autopayLimit.map(Arguments.amount)
            let account = try BillingService(wallets: try AppDatabase.wallet(global)).link(phone: phone, biller: biller, customerNo: customerNo, autopay: autopay, autopayLimitFen: limit)
            Output(json: global.json).emit(account) {
                "\(account.biller) \(account.customerNo) linked" + (account.autopay ? ", autopay up to \(Money(fen: account.autopayLimitFen).yuanString)" : ", autopay off")
            }
        }
    }

    struct Unlink: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unlink a bill account from a wallet.")
        @OptionGroup var global: GlobalOptions
        @Option var phone: String
        @Option var biller: String
        @Option(name: .customLong("customer-no")) var customerNo: String

        func run() throws {
            let account = try BillingService(wallets: try AppDatabase.wallet(global)).unlink(phone: phone, biller: biller, customerNo: customerNo)
            Output(json: global.json).emit(account) { "\(account.biller) \(account.customerNo) unlinked" }
        }
    }
}

/// `qdwallet bills`
struct BillsCommand: ParsableCommand, ReadOnlyCommand {
    static let configuration = CommandConfiguration(commandName: "bills", abstract: "The wallet's utility bills.")
    @OptionGroup var global: GlobalOptions
    @Option var phone: String
    @Option(help: "new, payable, paid, unmatched, cancelled, refunded") var status: BillStatus?

    func run() throws {
        let bills = try BillingService(wallets: try AppDatabase.wallet(global, mode: .existingForReading)).bills(phone: phone, status: status)
        Output(json: global.json).emit(["bills": bills]) {
            bills.isEmpty ? "no bills" : bills.map { bill in
                "\(bill.biller):\(bill.billId)  \(bill.period)  \(Money(fen: bill.dueFen).yuanString)  due \(bill.dueDate)  \(bill.status)" + (bill.reason.map { " (\($0))" } ?? "")
            }.joined(separator: "\n")
        }
    }
}

/// `qdwallet pay-bill`
struct PayBillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pay-bill", abstract: "Pay one payable bill by hand, through the same path as autopay.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var jobs: JobsOptions
    @OptionGroup var password: PasswordOptions
    @Option var phone: String
    @Option(help: "BILLER:BILLID, e.g. QD-WATER:W2611-000001") var bill: String

    func run() throws {
        let wallets = try AppDatabase.wallet(global)
        let service = BillingService(wallets: wallets, campaigns: try CampaignSetup.load(jobs, store: wallets.store))
        let receipt = try service.payBill(phone: phone, reference: bill, password: try password.read())
        let result = ReceiptResult(receipt)
        Output(json: global.json).emit(result) { result.text }
    }
}

/// `--status` takes a bill status as it is spelled in `BillStatus`; anything else is refused
/// with the list, never read as "no bills".
extension BillStatus: ExpressibleByArgument {}
