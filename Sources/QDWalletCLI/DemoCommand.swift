import ArgumentParser
import Billing
import Foundation
import JobRunner
import Ledger
import Logging
import QDSchema
import Reports
import Wallet

/// `qdwallet demo`: a fresh sample world in a temporary database, the nightly billing run on
/// SampleFeeds/ for two business days, and what happened.
struct DemoCommand: ParsableCommand, ReadOnlyCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Build a sample world in a temporary database and run the nightly billing on SampleFeeds/.")
    @OptionGroup var jobs: JobsOptions
    @Flag(name: .long, help: "Write one JSON document to stdout instead of text.") var json = false
    @Option(name: .long, help: "The database to create (default: a new temporary folder).") var db: String?

    struct Resident {
        var phone: String
        var name: String
        var kycClass: Int?
        var topUpFen: Int64
        var links: [(biller: String, customerNo: String, autopay: Bool, limitFen: Int64)]
        var frozen = false
    }

    static let residents: [Resident] = [
        Resident(phone: "13800000001", name: "张三", kycClass: 2, topUpFen: 100_000, links: [("QD-WATER", "1100234567", true, 30_000), ("QD-POWER", "3700112233", true, 50_000), ("QD-GAS", "88001234", false, 0)]),
        Resident(phone: "13800000002", name: "李四", kycClass: 2, topUpFen: 20_000, links: [("QD-WATER", "1100234568", true, 3_000)]),
        Resident(phone: "13800000003", name: "王芳", kycClass: 2, topUpFen: 500, links: [("QD-POWER", "3700112234", true, 50_000)]),
        Resident(phone: "13800000004", name: "赵强", kycClass: 2, topUpFen: 30_000, links: [("QD-GAS", "88001235", true, 50_000)], frozen: true),
        Resident(phone: "13800000005", name: "刘洋", kycClass: nil, topUpFen: 0, links: [("QD-WATER", "1100234570", true, 50_000)]),
        Resident(phone: "13800000006", name: "陈静", kycClass: 3, topUpFen: 50_000, links: [("QD-GAS", "88001236", true, 50_000), ("QD-WATER", "1100234571", true, 50_000)]),
    ]

    /// One person, one verified wallet: six residents, six ID numbers.
    static let idNumbers = ["11010519491231002X", "370202199001011237", "370212198512310042", "370203197803150017", "37021119650720002X", "370281199202280033"]

    func run() throws {
        let onServer = db.map(AppDatabase.isPostgres) ?? false
        let folder = onServer ? FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-demo-\(UUID().uuidString.prefix(8))").path
            : db.map { ($0 as NSString).deletingLastPathComponent } ?? FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-demo-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder.isEmpty ? "." : folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = db ?? (folder as NSString).appendingPathComponent("demo.sqlite")
        var global = try GlobalOptions.parse(["--db", path])
        global.json = json
        let key = DataKey.random()
        // The demo writes sample residents, money and nights under its own random key: never
        // into a database that holds anything (one just made by init, with no data key, is fine).
        if !onServer, FileManager.default.fileExists(atPath: path), try !QDWalletSchema.isEmpty(path: path) {
            throw CLIFailure(.refused, code: "database_not_empty", "the demo builds its sample world only in a new or empty database, and \(path) holds data (or has a data key of its own): give --db a new path, or leave --db out for a temporary one")
        }
        let store = try AppDatabase.openStore(path: path, mode: .create)
        if onServer, try !QDWalletSchema.isEmpty(store.database) {
            throw CLIFailure(.refused, code: "database_not_empty", "the demo builds its sample world only in an empty database, and \(global.databaseDisplay) holds data (or has a data key of its own): give --db an empty database")
        }
        let ledger = Ledger(store: store)
        _ = try SystemAccounts.ensure(in: ledger)
        let wallets = WalletService(store: store, ledger: ledger, dataKey: key)
        let billing = BillingService(wallets: wallets)
        guard var config = try BillingSetup.config(global, jobs, wallets: wallets) else {
            throw CLIFailure(.refused, code: "no_billers", "no billers.toml in \(jobs.path): run the demo from the project folder or give --jobs-dir")
        }
        if onServer {
            // A server has no folder of its own: the demo's feeds and reports go to its
            // temporary one, never into the current folder.
            config.workDirectory = (folder as NSString).appendingPathComponent("feeds")
            if global.reportsDirectory == nil && QDEnvironment.process.reportsDirectory == nil {
                config.reportsDirectory = (folder as NSString).appendingPathComponent("reports")
            }
        }
        _ = try store.transaction { db, tx in try Biller.register(config.billers, db: db, ledger: tx, clock: ledger.clock) }

        var lines = ["qdwallet demo: a sample world in \(global.databaseDisplay)", ""]
        for (index, resident) in Self.residents.enumerated() {
            _ = try wallets.openWallet(phone: resident.phone, name: resident.name)
            if let kycClass = resident.kycClass {
                _ = try wallets.submitKYC(phone: resident.phone, name: resident.name, idNumber: Self.idNumbers[index])
                _ = try wallets.approveKYC(phone: resident.phone, kycClass: kycClass)
                let card = try wallets.bindCard(phone: resident.phone, cardNumber: "6222020200112233446", bank: "ICBC")
                if resident.topUpFen > 0 {
                    _ = try wallets.topUp(phone: resident.phone, cardID: card.id, amountFen: resident.topUpFen, idempotencyKey: "demo-topup-\(resident.phone)")
                }
            }
            for link in resident.links {
                _ = try billing.link(phone: resident.phone, biller: link.biller, customerNo: link.customerNo, autopay: link.autopay, autopayLimitFen: link.autopay ? link.limitFen : nil)
            }
            if resident.frozen {
                _ = try wallets.setFrozen(phone: resident.phone, frozen: true, reason: "demo: under review")
            }
            let links = resident.links.map { "\($0.biller) \($0.customerNo)" + ($0.autopay ? " autopay ≤ \(Money(fen: $0.limitFen).yuanString)" : " autopay off") }
            lines.append("  \(Mask.phone(resident.phone)) \(Mask.name(resident.name))  class \(resident.kycClass.map(String.init) ?? "I, unverified")  balance \(Money(fen: resident.topUpFen).yuanString)\(resident.frozen ? "  frozen" : "")  \(links.joined(separator: "; "))")
        }

        let definitions = try JobDefinition.loadAll(directory: jobs.path)
        var logger = Logger(label: "qdwallet.demo")
        logger.logLevel = .warning
        let runner = JobRunner(store: store, clock: ledger.clock, logger: logger, definitions: definitions, implementations: [NightlyBilling.implementation(config)], progress: ProgressReporter(logger: logger, terminal: false))
        let campaignsLine = config.campaigns.map { "\($0.id) v\($0.version)" }.joined(separator: ", ")
        lines.append("")
        lines.append("campaigns: \(campaignsLine.isEmpty ? "none" : campaignsLine)")
        var summaries: [NightlyBilling.Summary] = []
        for date in ["2026-11-27", "2026-11-28"] {
            let report = try runner.run("nightly-billing", overrides: ["date": date])
            guard report.status == "completed", let data = report.summary else {
                throw CLIFailure(.infrastructure, code: "demo_failed", "the nightly run for \(date) ended \(report.status): \(report.message ?? "")")
            }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let summary = try decoder.decode(NightlyBilling.Summary.self, from: data)
            summaries.append(summary)
            lines.append("")
            lines.append("nightly billing for \(date):")
            lines.append("  biller     feed                    bills  paid  paid sum   pending                                 unmatched  rejected  cancelled  refunded  discounts  points")
            for b in summary.billers {
                let pending = b.pendingByReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                lines.append("  " + [
                    b.biller.padding(toLength: 10, withPad: " ", startingAt: 0),
                    (b.feedId ?? "-").padding(toLength: 23, withPad: " ", startingAt: 0),
                    String(b.bills).leftPadded(5), String(b.paid).leftPadded(5), Money(fen: b.paidFen).yuanString.leftPadded(9),
                    "  " + (pending.isEmpty ? "-" : pending).padding(toLength: 38, withPad: " ", startingAt: 0),
                    String(b.unmatched).leftPadded(9), String(b.rejectedRecords).leftPadded(9), String(b.cancelled).leftPadded(10), String(b.refunded).leftPadded(9),
                    Money(fen: b.discountFen).yuanString.leftPadded(10), String(b.points).leftPadded(7),
                ].joined(separator: " "))
            }
        }
        try store.sealPending()
        let reconciliation = try Reconciliation.run(store, date: ShanghaiCalendar.Date(year: 2026, month: 11, day: 28))
        lines.append("")
        lines.append(reconciliation.text)
        let check = try ledger.check()
        let reports = try store.database.read { db in
            try BillStore(db).reportPaths()
        }
        lines.append("")
        lines.append("payment reports (valid against SampleFeeds/schema/payreport.xsd):")
        lines.append(contentsOf: reports.map { "  \($0)" })
        lines.append("")
        lines.append("ledger check: \(check.ok ? "ok" : "\(check.violationCount) violations"), \(check.transactions) transactions")
        lines.append("explore it: qdwallet bills --db \(global.databaseDisplay) --phone 13800000001")
        struct Document: Encodable {
            var database: String
            var days: [NightlyBilling.Summary]
            var reports: [String]
            var ledgerOk: Bool
        }
        Output(json: json).emit(Document(database: path, days: summaries, reports: reports, ledgerOk: check.ok)) { lines.joined(separator: "\n") }
        if !check.ok { throw ExitCode(ExitStatus.breaks.rawValue) }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
