import Foundation
import GRDB
import QDSQL
import Testing

/// Kills the nightly run with SIGKILL at seeded random moments, restarts it until it
/// completes, then checks that nothing was lost or done twice.
@Suite(.serialized) struct CrashHarnessTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
    }

    /// On PostgreSQL a kill also drops the process's server session mid-transaction: the
    /// server rolls it back and frees its locks.
    @Test(arguments: CLIRunner.engines) func killedAtRandomMomentsTheRunStillPaysEachBillOnce(engine: String) throws {
        if engine == "postgres" {
            try CLIRunner.withPostgresDatabase { url in try harness(database: url) }
        } else {
            try harness(database: nil)
        }
    }

    func harness(database url: String?) throws {
        var cli = try CLIRunner()
        defer { cli.cleanUp() }
        // A jobs folder with small chunks and a short stale limit, so restarts take over quickly.
        let jobs = cli.directory.appendingPathComponent("Jobs")
        try FileManager.default.createDirectory(at: jobs, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.root + "/Jobs/billers.toml", toPath: jobs.appendingPathComponent("billers.toml").path)
        try """
            name = "nightly-billing"
            chunk_size = 25
            identifying = ["date"]
            stale_after_seconds = 5
            [parameters]
            date = "{yesterday}"
            """.write(to: jobs.appendingPathComponent("nightly-billing.job.toml"), atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: cli.directory.appendingPathComponent("SampleFeeds").path, withDestinationPath: Self.root + "/SampleFeeds")
        cli.environment["QDWALLET_DB"] = url ?? cli.databasePath
        cli.environment["QDWALLET_JOBS_DIR"] = jobs.path
        cli.environment["QDWALLET_DATA_KEY"] = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        cli.environment["QDWALLET_LOG_LEVEL"] = "error"

        // Twenty residents with enough money, each with one water account on autopay.
        let wallets = 20
        #expect(try cli.run(["init"]).status == 0) // creates the database and registers the billers
        for i in 0..<wallets {
            let phone = "1390000\(String(format: "%04d", i))"
            #expect(try cli.run(["wallet", "open", "--phone", phone, "--name", "张三"]).status == 0)
            #expect(try cli.run(["wallet", "kyc", "submit", "--phone", phone, "--name", "张三", "--id-number", residentID(forPhone: phone)]).status == 0)
            #expect(try cli.run(["wallet", "kyc", "approve", "--phone", phone, "--class", "3"]).status == 0)
            #expect(try cli.run(["card", "bind", "--phone", phone, "--card-number", "6222020200112233446", "--bank", "ICBC"]).status == 0)
            #expect(try cli.run(["topup", "--phone", phone, "--amount", "5000.00", "--card", "\(i + 1)"]).status == 0)
            #expect(try cli.run(["utility", "link", "--phone", phone, "--biller", "QD-WATER", "--customer-no", String(2_000_000_000 + i), "--autopay", "--autopay-limit", "500.00"]).status == 0)
            #expect(try cli.run(["wallet", "autopay", "--phone", phone, "--daily-limit", "50000.00"]).status == 0)
        }
        // A feed of 4,000 bills: 200 per resident.
        // QDWALLET_CRASH_SEED replays another seed (printed below with the result).
        let seed = UInt64(ProcessInfo.processInfo.environment["QDWALLET_CRASH_SEED"] ?? "").flatMap { $0 == 0 ? nil : $0 } ?? 20261127
        var random = Random(state: seed)
        var body = ""
        var total: Int64 = 0
        var dueByWallet = [Int64](repeating: 0, count: wallets)
        for n in 0..<4_000 {
            let wallet = n % wallets
            let fen = Int64(100 + random.next() % 2_000)
            dueByWallet[wallet] += fen
            total += fen
            body += "<Bill><BillId>K\(n)</BillId><CustomerNo>\(2_000_000_000 + wallet)</CustomerNo><CustomerName>张*</CustomerName><District>市南区</District><Period>2026-11</Period><Usage Unit=\"m3\">1.0</Usage><Amount Ccy=\"CNY\">\(fen / 100).\(String(format: "%02d", fen % 100))</Amount><LateFee Ccy=\"CNY\">0.00</LateFee><IssueDate>2026-11-27</IssueDate><DueDate>2026-12-20</DueDate></Bill>\n"
        }
        // And 300 cancels of bills nobody sent: the cancels step has chunks of its own to kill.
        for n in 0..<300 { body += "<Cancel><BillId>X\(n)</BillId><Reason>test</Reason></Cancel>\n" }
        let feed = cli.directory.appendingPathComponent("water.xml")
        try """
            <?xml version="1.0" encoding="UTF-8"?>
            <BillFeed xmlns="urn:qdwallet:billfeed:1"><Header><FeedId>K-20261127</FeedId><BillerCode>QD-WATER</BillerCode><CreatedAt>2026-11-27T22:00:00+08:00</CreatedAt><BusinessDate>2026-11-27</BusinessDate><NbOfBills>4000</NbOfBills><CtrlSum Ccy="CNY">\(total / 100).\(String(format: "%02d", total % 100))</CtrlSum></Header>
            \(body)</BillFeed>
            """.write(to: feed, atomically: false, encoding: .utf8)

        let arguments = ["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--feed", "QD-WATER=\(feed.absoluteString)", "--feed", "QD-POWER=file:///nonexistent", "--feed", "QD-GAS=file:///nonexistent"]
        // Seeded and reproducible: QDWALLET_CRASH_KILLS runs are killed (16 unless set), then
        // the run is left to finish. A killed run's lock names a process that is gone, so the
        // next run takes over at once.
        let killsPlanned = Int(ProcessInfo.processInfo.environment["QDWALLET_CRASH_KILLS"] ?? "") ?? 16
        // Kills land by progress, not by time: each waits for the run to commit a (seeded)
        // number of chunks of the step it is in, and kills it there; the run is resumed and
        // killed again until every step is done, then left to finish. QDWALLET_CRASH_KILLS
        // bounds the kills.
        let steps = ["ingest", "cancels", "process", "reports"]
        var hit: [String: Int] = [:]
        let watcher: any SQLDatabase = try url.map { try PostgresDatabase(url: $0) } ?? SQLitePool(try DatabasePool(path: cli.databasePath))
        var kills = 0
        var finished = false
        var attempt = 0
        while !finished && attempt < killsPlanned + 8 {
            let process = Process()
            process.executableURL = CLIRunner.executable
            process.arguments = arguments
            process.environment = cli.environment
            // On a server, feeds and reports go to the current folder: the test's own.
            process.currentDirectoryURL = cli.directory
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            let completed = Set(try watcher.read { try $0.texts("SELECT step_name FROM job_step_executions WHERE status = 'completed'") })
            let pending = steps.filter { !completed.contains($0) }
            if attempt < killsPlanned, let target = pending.first {
                // Steps of few chunks are killed after one; the 161 chunks of payments after more.
                let chunksToCommit = switch target {
                case "cancels": 2 + Int(random.next() % 4)
                case "process": 10 + Int(random.next() % 30)
                default: 1
                }
                // Only this run's execution counts, not the one killed before it.
                let before = try watcher.read { try $0.int64("SELECT coalesce(max(id), 0) FROM job_executions") } ?? 0
                try process.run()
                var baseline: Int?
                let deadline = Date().addingTimeInterval(60)
                while process.isRunning && Date() < deadline {
                    let row = try watcher.read { db in
                        try db.one("SELECT status, chunks FROM job_step_executions WHERE step_name = ? AND execution_id > ? ORDER BY execution_id DESC LIMIT 1", [target, before]) { (status: try $0.text(0), chunks: try $0.int(1)) }
                    }
                    if let row {
                        if baseline == nil { baseline = row.chunks }
                        if row.status != "started" || row.chunks >= baseline! + chunksToCommit { break }
                    }
                    usleep(500)
                }
                if process.isRunning {
                    kill(process.processIdentifier, SIGKILL)
                    kills += 1
                    process.waitUntilExit()
                    let inProgress = try watcher.read { db in
                        try db.one("SELECT step_name FROM job_step_executions WHERE execution_id > ? AND status = 'started' ORDER BY id DESC LIMIT 1", [before]) { try $0.text(0) }
                    }
                    hit[inProgress ?? "between steps", default: 0] += 1
                } else {
                    process.waitUntilExit()
                    finished = process.terminationStatus == 4 || process.terminationStatus == 0
                }
            } else {
                try process.run()
                process.waitUntilExit()
                finished = process.terminationStatus == 4 || process.terminationStatus == 0
                if !finished { sleep(5) }
            }
            attempt += 1
        }
        print("crash harness: seed \(seed), \(kills) runs killed, \(attempt) runs in all; kills by step: \(hit.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        // The kills landed inside every step that moves or reports money.
        if killsPlanned >= 8 {
            for step in steps { #expect((hit[step] ?? 0) > 0, "no kill landed inside \(step): \(hit)") }
        }
        #expect(finished)
        try watcher.read { db in
            #expect(try db.int("SELECT count(*) FROM bills WHERE biller = 'QD-WATER' AND feed_id = 'QD-WATER/K-20261127'") == 4_000)
            #expect(try db.int("SELECT count(*) FROM bills WHERE feed_id = 'QD-WATER/K-20261127' AND status <> 'paid'") == 0)
            #expect(try db.int("SELECT count(*) FROM ledger_transactions WHERE idempotency_key LIKE 'bill:#%:QD-WATER:K%'") == 4_000)
            #expect(try db.int("SELECT count(DISTINCT transaction_id) FROM bills WHERE feed_id = 'QD-WATER/K-20261127'") == 4_000)
            for wallet in 0..<wallets {
                let balance = try db.int64("SELECT a.credits_posted - a.debits_posted FROM wallets w JOIN ledger_accounts a ON a.id = w.wallet_account_id WHERE w.phone = ?", ["1390000\(String(format: "%04d", wallet))"])
                #expect(balance == 500_000 - dueByWallet[wallet], "wallet \(wallet)")
            }
        }
        let check = try cli.run(["ledger", "check", "--json"])
        #expect(check.status == 0)
        let reconciliation = try cli.run(["report", "reconciliation", "--date", "2026-11-27", "--json"])
        let billers = (try reconciliation.json()["billers"] as? [[String: Any]]) ?? []
        let water = billers.first { $0["biller"] as? String == "QD-WATER" }
        #expect(water?["ledger_movement_fen"] as? Int == Int(total))
        #expect(water?["report_paid_fen"] as? Int == Int(total))
        #expect(kills >= min(killsPlanned, 4), "only \(kills) runs were killed: the harness did not test much")
    }
}
