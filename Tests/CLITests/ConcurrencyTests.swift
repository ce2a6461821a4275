import Foundation
import GRDB
import Ledger
import QDSQL
import Testing

/// Many qdwallet processes at once on one database: QR payments, transfers, top-ups and
/// pay-bills racing the nightly run. Afterwards the ledger checks, each bill is paid at most
/// once, the campaign budget and the class I limit were never exceeded.
@Suite(.serialized) struct ConcurrencyTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// On SQLite the writers take turns at the file's lock; on PostgreSQL the processes are
    /// the server's sessions, racing for real.
    @Test(arguments: CLIRunner.engines) func paymentsTransfersTopUpsAndPayBillsRaceTheNightlyRun(engine: String) throws {
        if engine == "postgres" {
            try CLIRunner.withPostgresDatabase { url in try race(database: url) }
        } else {
            try race(database: nil)
        }
    }

    func race(database url: String?) throws {
        var cli = try CLIRunner()
        defer { cli.cleanUp() }
        let jobs = cli.directory.appendingPathComponent("Jobs")
        try FileManager.default.createDirectory(at: jobs.appendingPathComponent("campaigns"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.root + "/Jobs/billers.toml", toPath: jobs.appendingPathComponent("billers.toml").path)
        try FileManager.default.copyItem(atPath: Self.root + "/Jobs/nightly-billing.job.toml", toPath: jobs.appendingPathComponent("nightly-billing.job.toml").path)
        try """
            id = "race"
            version = 1
            sponsor = "RACE"
            [window]
            start = 2020-01-01T00:00:00+08:00
            end = 2099-12-31T23:59:59+08:00
            [budget]
            total_fen = 700
            on_exhaustion = "partial"
            [stacking]
            group = "race"
            [[benefit]]
            kind = "threshold_off"
            tiers = [ { min_fen = 1_000, off_fen = 100 } ]
            """.write(to: jobs.appendingPathComponent("campaigns/race.toml"), atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: cli.directory.appendingPathComponent("SampleFeeds").path, withDestinationPath: Self.root + "/SampleFeeds")
        cli.environment["QDWALLET_DB"] = url ?? cli.databasePath
        cli.environment["QDWALLET_JOBS_DIR"] = jobs.path
        cli.environment["QDWALLET_DATA_KEY"] = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        cli.environment["QDWALLET_LOG_LEVEL"] = "error"

        func must(_ arguments: [String], stdin: String? = nil) throws {
            let result = try cli.run(arguments, stdin: stdin)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
        }
        #expect(try cli.run(["init"]).status == 0) // creates the database and registers the billers
        let phones = (1...4).map { "1380000000\($0)" }
        for (index, phone) in phones.enumerated() {
            try must(["wallet", "open", "--phone", phone, "--name", "张三"])
            try must(["wallet", "kyc", "submit", "--phone", phone, "--name", "张三", "--id-number", residentID(forPhone: phone)])
            // The first resident is class I: at most 1,000.00 of balance payments.
            try must(["wallet", "kyc", "approve", "--phone", phone, "--class", index == 0 ? "1" : "2"])
            try must(["wallet", "password", "set", "--phone", phone, "--password-stdin"], stdin: "123456\n")
            try must(["card", "bind", "--phone", phone, "--card-number", "6222020200112233446", "--bank", "ICBC"])
            try must(["topup", "--phone", phone, "--amount", "2000.00", "--card", "\(index + 1)"])
        }
        try must(["utility", "link", "--phone", phones[0], "--biller", "QD-WATER", "--customer-no", "1100234567", "--autopay", "--autopay-limit", "300.00"])
        try must(["utility", "link", "--phone", phones[0], "--biller", "QD-POWER", "--customer-no", "3700112233"])
        try must(["utility", "link", "--phone", phones[1], "--biller", "QD-GAS", "--customer-no", "88001234"])
        try must(["merchant", "register", "--id", "M1", "--name", "小吃", "--category", "food"])
        let qr = try #require(try cli.run(["merchant", "qr", "--id", "M1"]).stdout.split(separator: "\n").first.map(String.init))

        // Everything at once.
        var processes: [Process] = []
        func start(_ arguments: [String], stdin: String? = nil) throws {
            let process = Process()
            process.executableURL = CLIRunner.executable
            process.arguments = arguments
            process.environment = cli.environment
            // On a server, feeds and reports go to the current folder: the test's own.
            process.currentDirectoryURL = cli.directory
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            let input = Pipe()
            process.standardInput = input
            try process.run()
            if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
            try input.fileHandleForWriting.close()
            processes.append(process)
        }
        try start(["jobs", "run", "nightly-billing", "--date", "2026-11-27"])
        for round in 0..<3 {
            for (index, phone) in phones.enumerated() {
                try start(["pay", "--phone", phone, "--qr", qr, "--amount", "300.00", "--password-stdin", "--idempotency-key", "qr-\(round)-\(index)"], stdin: "123456\n")
                try start(["transfer", "--from", phone, "--to", phones[(index + 1) % phones.count], "--amount", "150.00", "--password-stdin", "--idempotency-key", "t-\(round)-\(index)"], stdin: "123456\n")
                try start(["topup", "--phone", phone, "--amount", "10.00", "--card", "\(index + 1)", "--idempotency-key", "u-\(round)-\(index)"])
            }
            try start(["pay-bill", "--phone", phones[0], "--bill", "QD-POWER:P2611-100001", "--password-stdin"], stdin: "123456\n")
            try start(["pay-bill", "--phone", phones[1], "--bill", "QD-GAS:G2611-55001", "--password-stdin"], stdin: "123456\n")
        }
        for process in processes { process.waitUntilExit() }

        let database: any SQLDatabase = try url.map { try PostgresDatabase(url: $0) } ?? SQLitePool(try DatabasePool(path: cli.databasePath))
        try database.read { db in
            // Each bill at most once in the ledger.
            #expect(try db.int("SELECT count(*) FROM (SELECT idempotency_key FROM ledger_transactions WHERE idempotency_key LIKE 'bill:%' GROUP BY idempotency_key HAVING count(*) > 1) AS repeated") == 0)
            #expect(try db.int("SELECT count(*) FROM bills WHERE status = 'paid' AND transaction_id IS NULL") == 0)
            // The campaign budget to the fen.
            let used = try db.int64("SELECT coalesce(sum(spent_fen), 0) FROM campaign_budgets WHERE campaign_id = 'race'") ?? 0
            let allocated = try db.int64("SELECT coalesce(sum(discount_fen), 0) FROM campaign_allocations WHERE campaign_id = 'race' AND reversed_at IS NULL") ?? 0
            #expect(used <= 700 && used == allocated)
            // Through the ledger: on a server a system account's totals are its row and its sub-rows.
            let sponsor = -(try ledgerReader(in: db).account(code: "sponsor:RACE")?.balance ?? 0)
            #expect(sponsor == used)
            // The class I wallet never paid more than 1,000.00 from its balance.
            let spent = try db.int64("SELECT -coalesce(sum(amount_fen), 0) FROM wallet_movements m JOIN wallets w ON w.id = m.wallet_id WHERE w.phone = ? AND m.balance_payment = 1", [phones[0]]) ?? 0
            #expect(spent <= 100_000)
            #expect(try db.int("SELECT count(*) FROM wallet_movements WHERE kind = 'qr_payment'") ?? 0 > 0)
        }
        #expect(try cli.run(["ledger", "check"]).status == 0)
        let run = try cli.run(["jobs", "history", "--job", "nightly-billing", "--json"])
        let executions = (try run.json()["executions"] as? [[String: Any]]) ?? []
        #expect(executions.first?["status"] as? String == "completed")
    }
}
