import Foundation
import Testing

@Suite struct BillingCLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// A runner whose jobs folder is a copy of Jobs/ without the campaigns, so that the
    /// amounts do not depend on today's date (campaigns have windows).
    func runner(initialise: Bool = true) throws -> CLIRunner {
        var cli = try CLIRunner()
        let jobs = cli.directory.appendingPathComponent("Jobs")
        try FileManager.default.createDirectory(at: jobs, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: Self.root + "/Jobs") where name.hasSuffix(".toml") {
            try FileManager.default.copyItem(atPath: Self.root + "/Jobs/" + name, toPath: jobs.appendingPathComponent(name).path)
        }
        try FileManager.default.createSymbolicLink(atPath: cli.directory.appendingPathComponent("SampleFeeds").path, withDestinationPath: Self.root + "/SampleFeeds")
        cli.environment["QDWALLET_DB"] = try cli.database()
        cli.environment["QDWALLET_JOBS_DIR"] = jobs.path
        cli.environment["QDWALLET_DATA_KEY"] = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        if initialise {
            let initialised = try cli.run(["init"])
            #expect(initialised.status == 0, "\(initialised.stderr)")
        }
        return cli
    }

    @discardableResult
    func ok(_ cli: CLIRunner, _ arguments: [String], stdin: String? = nil) throws -> [String: Any] {
        let result = try cli.run(arguments + ["--json"], stdin: stdin)
        #expect(result.status == 0, "\(arguments): \(result.stdout) \(result.stderr)")
        return try result.json()
    }

    /// `jobs run` builds the job it runs from that job's configuration alone: a mistake in
    /// another's (a `notify.toml` that does not parse, a definition whose schedule is not a
    /// cron line, feed schemas that cannot be found) stops neither the night's billing nor
    /// the ledger's check; the job whose configuration it is still refuses to run and names
    /// the file.
    @Test func aJobRunsWhateverIsWrongInAnotherJobsConfiguration() throws {
        var cli = try runner()
        defer { cli.cleanUp() }
        try "sink = \"carrier-pigeon\"\n".write(to: cli.directory.appendingPathComponent("Jobs/notify.toml"), atomically: false, encoding: .utf8)
        let settlement = cli.directory.appendingPathComponent("Jobs/campaign-settlement.job.toml")
        let definition = try String(contentsOf: settlement, encoding: .utf8)
        try definition.replacingOccurrences(of: "schedule    = \"0 5 * * *\"", with: "schedule    = \"0 5 * *\"").write(to: settlement, atomically: false, encoding: .utf8)
        let settle = try cli.run(["jobs", "run", "campaign-settlement", "--date", "2026-11-27"])
        #expect(settle.status != 0)
        #expect(settle.stderr.contains("campaign-settlement.job.toml"), "\(settle.stderr)")
        let notify = try cli.run(["jobs", "run", "notify"])
        #expect(notify.status != 0)
        #expect(notify.stderr.contains("notify.toml"), "\(notify.stderr)")
        let night = try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--json"])
        #expect(night.status == 0, "\(night.stderr)")
        #expect(try night.json()["status"] as? String == "completed")
        let billers = try #require((try night.json()["summary"] as? [String: Any])?["billers"] as? [[String: Any]])
        #expect(billers.compactMap { $0["status"] as? String } == ["processed", "processed", "processed"])

        cli.environment["QDWALLET_SCHEMA_DIR"] = cli.directory.appendingPathComponent("no-schemas").path
        let check = try cli.run(["jobs", "run", "ledger-check", "--date", "2026-11-27", "--json"])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(try check.json()["status"] as? String == "completed")
        let again = try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--force"])
        #expect(again.status != 0)
        #expect(again.stderr.contains("no-schemas/billfeed.xsd"), "\(again.stderr)")
    }

    @Test func nightlyRunPayBillAndExitCodes() throws {
        let cli = try runner(initialise: false)
        defer { cli.cleanUp() }
        // init registers the billers of Jobs/billers.toml: a new operator can link at once.
        let initialised = try ok(cli, ["init"])
        let registered = try #require(initialised["billers"] as? [[String: Any]])
        #expect(registered.compactMap { $0["code"] as? String } == ["QD-GAS", "QD-POWER", "QD-WATER"])
        #expect(registered.allSatisfy { $0["status"] as? String == "added" && ($0["account_id"] as? Int ?? 0) > 0 })
        try ok(cli, ["wallet", "open", "--phone", "13800000001", "--name", "张三"])
        try ok(cli, ["wallet", "kyc", "submit", "--phone", "13800000001", "--name", "张三", "--id-number", "11010519491231002X"])
        try ok(cli, ["wallet", "kyc", "approve", "--phone", "13800000001", "--class", "2"])
        try ok(cli, ["wallet", "password", "set", "--phone", "13800000001", "--password-stdin"], stdin: "123456\n")
        let card = try ok(cli, ["card", "bind", "--phone", "13800000001", "--card-number", "6222020200112233446", "--bank", "ICBC"])
        try ok(cli, ["topup", "--phone", "13800000001", "--amount", "200.00", "--card", "\(card["card_id"] as? Int ?? 0)"])
        let unknown = try cli.run(["utility", "link", "--phone", "13800000001", "--biller", "QD-WATR", "--customer-no", "1100234567", "--autopay", "--json"])
        #expect(unknown.status == 1)
        #expect(unknown.stdout.contains("unknown_biller"))

        let empty = try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-20", "--json"])
        #expect(empty.status == 4, "no feeds for that day: \(empty.stderr)")
        try ok(cli, ["utility", "link", "--phone", "13800000001", "--biller", "QD-WATER", "--customer-no", "1100234567", "--autopay", "--autopay-limit", "300.00"])
        try ok(cli, ["utility", "link", "--phone", "13800000001", "--biller", "QD-GAS", "--customer-no", "88001234"])

        let run = try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let summary = try #require(try run.json()["summary"] as? [String: Any])
        // cli.md: a top-level `billers` list (kept under `summary` too).
        let billers = try #require(try run.json()["billers"] as? [[String: Any]])
        #expect(billers.compactMap { $0["biller"] as? String } == ["QD-GAS", "QD-POWER", "QD-WATER"])
        #expect((summary["billers"] as? [[String: Any]])?.count == 3)
        let water = try #require(billers.first { $0["biller"] as? String == "QD-WATER" })
        for key in ["biller", "feed_id", "status", "bills", "paid", "paid_fen", "pending", "unmatched", "rejected_records", "cancelled", "refunded"] {
            #expect(water[key] != nil, "missing \(key)")
        }
        #expect(water["paid"] as? Int == 1 && water["paid_fen"] as? Int == 4_520 && water["status"] as? String == "processed")

        let payable = try #require(try ok(cli, ["bills", "--phone", "13800000001", "--status", "payable"])["bills"] as? [[String: Any]])
        #expect(payable.compactMap { $0["bill_id"] as? String } == ["G2611-55001"])
        let wrong = try cli.run(["pay-bill", "--phone", "13800000001", "--bill", "QD-GAS:G2611-55001", "--password-stdin", "--json"], stdin: "000000\n")
        #expect(wrong.status == 1)
        let paid = try ok(cli, ["pay-bill", "--phone", "13800000001", "--bill", "QD-GAS:G2611-55001", "--password-stdin"], stdin: "123456\n")
        #expect(paid["amount_fen"] as? Int == 5_600 && paid["transaction_id"] as? Int != nil && paid["discount_fen"] as? Int == 0 && paid["points"] as? Int == 0)
        let again = try ok(cli, ["pay-bill", "--phone", "13800000001", "--bill", "QD-GAS:G2611-55001", "--password-stdin"], stdin: "123456\n")
        #expect(again["transaction_id"] as? Int == paid["transaction_id"] as? Int && again["replayed"] as? Bool == true)
        #expect(try cli.run(["pay-bill", "--phone", "13800000001", "--bill", "QD-GAS:NOPE", "--password-stdin"], stdin: "123456\n").status == 1)
        #expect(try cli.run(["pay-bill", "--phone", "13800000001", "--bill", "garbage", "--password-stdin"], stdin: "123456\n").status == 1)
        #expect(try ok(cli, ["balance", "--phone", "13800000001"])["balance_fen"] as? Int == 20_000 - 4_520 - 5_600)

        let clean = try cli.run(["report", "reconciliation", "--date", "2026-11-27", "--json"])
        #expect(clean.status == 0, "\(clean.stdout)")
        #expect((try clean.json()["breaks"] as? [Any])?.isEmpty == true)
        let html = cli.directory.appendingPathComponent("recon.html").path
        #expect(try cli.run(["report", "reconciliation", "--date", "2026-11-27", "--format", "html", "--out", html]).status == 0)
        #expect(try String(contentsOfFile: html, encoding: .utf8).contains("<svg"))
        #expect(try cli.run(["report", "reconciliation", "--date", "2026-11-27", "--format", "pdf"]).status == 2)
        let reportFile = cli.directory.appendingPathComponent("reports/QD-WATER/QDW-QD-WATER-20261127.xml").path
        try "tampered".write(toFile: reportFile, atomically: false, encoding: .utf8)
        let breaks = try cli.run(["report", "reconciliation", "--date", "2026-11-27", "--format", "csv"])
        #expect(breaks.status == 3)
        #expect(breaks.stdout.contains("break,2026-11-27,,report_altered"))
        // A feed of the right biller and day, with a new FeedId, whose totals are off: refused
        // for its totals and nothing else.
        let wrongTotals = cli.directory.appendingPathComponent("wrong-totals.xml")
        try String(contentsOfFile: "\(Self.root)/SampleFeeds/bad/wrong-totals.xml", encoding: .utf8)
            .replacingOccurrences(of: "<FeedId>QD-WATER-20261127-01</FeedId>", with: "<FeedId>QD-WATER-20261127-99</FeedId>")
            .write(to: wrongTotals, atomically: false, encoding: .utf8)
        let broken = try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--force", "--feed", "QD-WATER=\(wrongTotals.absoluteString)", "--json"])
        #expect(broken.status == 3)
        let brokenWater = (try broken.json()["billers"] as? [[String: Any]])?.first { $0["biller"] as? String == "QD-WATER" }
        #expect(brokenWater?["status"] as? String == "rejected")
        #expect((brokenWater?["error"] as? String)?.contains("says") == true, "\(brokenWater ?? [:])")
        #expect(try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-28", "--feed", "QD-WATER"]).status == 2)
        #expect(try ok(cli, ["ledger", "check"])["ok"] as? Bool == true)
    }

    @Test func theDemoRunsAndItsLedgerChecks() throws {
        let cli = try runner()
        defer { cli.cleanUp() }
        let result = try cli.run(["demo", "--db", cli.directory.appendingPathComponent("demo.sqlite").path, "--jobs-dir", Self.root + "/Jobs"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("nightly billing for 2026-11-27:"))
        #expect(result.stdout.contains("ledger check: ok"))
        for secret in ["11010519491231002X", "370202199001011237", "370212198512310042", "370203197803150017", "37021119650720002X", "370281199202280033", "6222020200112233446"] {
            #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret))
        }
        let json = try cli.run(["demo", "--db", cli.directory.appendingPathComponent("demo2.sqlite").path, "--jobs-dir", Self.root + "/Jobs", "--json"])
        #expect(try json.json()["ledger_ok"] as? Bool == true)
        // Everything the demo wrote (databases, WAL files, reports) holds no ID or card number in clear.
        let secrets = ["11010519491231002X", "370202199001011237", "370212198512310042", "370203197803150017", "37021119650720002X", "370281199202280033", "6222020200112233446"].map { Data($0.utf8) }
        let files = FileManager.default.enumerator(atPath: cli.directory.path)?.compactMap { $0 as? String } ?? []
        var scanned = 0
        for name in files {
            guard let data = FileManager.default.contents(atPath: cli.directory.appendingPathComponent(name).path) else { continue }
            scanned += 1
            for secret in secrets {
                #expect(data.range(of: secret) == nil, "\(name) holds personal data in clear")
            }
        }
        #expect(scanned >= 8)
    }

    /// Everything the commands and jobs print, logs at the most verbose level included, holds
    /// no ID number, card number, password, key or credential, even when fetches and
    /// deliveries fail and log their errors.
    @Test func logsAtTheMostVerboseLevelHoldNoSecrets() throws {
        var cli = try runner()
        defer { cli.cleanUp() }
        let secrets = [
            "11010519491231002X", "6222020200112233446", "739154", // ID number, card number, payment password
            "netrc-Pa55word", "url-Pa55word", "webhook-S3cret", // credentials
            cli.environment["QDWALLET_DATA_KEY"]!,
        ]
        cli.environment["QDWALLET_LOG_LEVEL"] = "trace"
        let netrc = cli.directory.appendingPathComponent("netrc")
        try "machine 127.0.0.1 login feeds password netrc-Pa55word\n".write(to: netrc, atomically: false, encoding: .utf8)
        cli.environment["QDWALLET_NETRC"] = netrc.path
        cli.environment["QDWALLET_WEBHOOK_SECRET"] = "webhook-S3cret"
        // Deliveries to a closed loopback port: every message fails and is logged.
        try """
            sink = "webhook"
            webhook_url = "http://127.0.0.1:9/hook"
            attempts = 1
            backoff_initial_seconds = 1
            backoff_max_seconds = 1
            quiet_from = "00:00"
            quiet_to = "00:00"
            """.write(to: cli.directory.appendingPathComponent("Jobs/notify.toml"), atomically: false, encoding: .utf8)
        var everything = ""
        func run(_ arguments: [String], stdin: String? = nil) throws {
            let result = try cli.run(arguments, stdin: stdin)
            everything += result.stdout + result.stderr
        }
        try run(["wallet", "open", "--phone", "13800000001", "--name", "张三"])
        try run(["wallet", "kyc", "submit", "--phone", "13800000001", "--name", "张三", "--id-number", "11010519491231002X"])
        try run(["wallet", "kyc", "submit", "--phone", "13800000001", "--name", "张三", "--id-number", "11010519491231002X"])
        try run(["wallet", "kyc", "approve", "--phone", "13800000001", "--class", "2"])
        try run(["wallet", "password", "set", "--phone", "13800000001", "--password-stdin"], stdin: "739154\n")
        try run(["card", "bind", "--phone", "13800000001", "--card-number", "6222020200112233446", "--bank", "ICBC"])
        try run(["card", "bind", "--phone", "13800000001", "--card-number", "6222020200112233446", "--bank", "ICBC"])
        try run(["topup", "--phone", "13800000001", "--amount", "200.00", "--card", "1"])
        try run(["jobs", "run", "nightly-billing", "--date", "2026-11-20"])
        try run(["utility", "link", "--phone", "13800000001", "--biller", "QD-GAS", "--customer-no", "88001234"])
        // One feed over a URL with a password in it, one over a refused port with netrc credentials.
        try run(["jobs", "run", "nightly-billing", "--date", "2026-11-27",
                 "--feed", "QD-POWER=http://feeds:url-Pa55word@127.0.0.1:9/power.xml",
                 "--feed", "QD-WATER=http://127.0.0.1:9/water.xml"])
        try run(["pay-bill", "--phone", "13800000001", "--bill", "QD-GAS:G2611-55001", "--password-stdin"], stdin: "000000\n")
        try run(["pay-bill", "--phone", "13800000001", "--bill", "QD-GAS:G2611-55001", "--password-stdin"], stdin: "739154\n")
        try run(["jobs", "run", "notify"])
        try run(["notify", "list", "--failed"])
        try run(["history", "--phone", "13800000001", "--json"])
        // The most verbose level really was in force: trace and debug lines were written.
        #expect(everything.contains(" trace ") && everything.contains(" debug "), "no trace or debug log lines were captured")
        #expect(everything.contains("http://***@127.0.0.1:9/power.xml"), "the failing fetch was not logged with its URL redacted")
        for secret in secrets {
            #expect(!everything.contains(secret), "\(secret.prefix(3))... appeared in output or logs")
        }
    }

    /// `qdwallet billers` registers what the file adds and reports, never deletes, what it
    /// no longer names; a broken file changes nothing.
    @Test func billersAreSyncedFromTheFileAndNeverDeleted() throws {
        let cli = try runner()
        defer { cli.cleanUp() }
        let file = URL(fileURLWithPath: cli.environment["QDWALLET_JOBS_DIR"]!).appendingPathComponent("billers.toml")
        let original = try String(contentsOf: file, encoding: .utf8)
        // QD-GAS leaves the file, QD-HEAT joins it.
        let blocks = original.components(separatedBy: "[[biller]]")
        let withoutGas = blocks.filter { !$0.contains("\"QD-GAS\"") }.joined(separator: "[[biller]]")
        let heat = "\n[[biller]]\ncode = \"QD-HEAT\"\nname = \"青岛热力\"\ncategory = \"heating\"\nfeed_url = \"file://{root}/SampleFeeds/QD-HEAT/{yyyymmdd}.xml\"\nresult_url = \"file://{reports}/QD-HEAT/{yyyymmdd}.xml\"\n"
        try (withoutGas + heat).write(to: file, atomically: false, encoding: .utf8)
        let synced = try #require(try ok(cli, ["billers"])["billers"] as? [[String: Any]])
        let status = Dictionary(uniqueKeysWithValues: synced.map { ($0["code"] as? String ?? "", $0["status"] as? String ?? "") })
        #expect(status == ["QD-GAS": "not_in_file", "QD-HEAT": "added", "QD-POWER": "registered", "QD-WATER": "registered"])
        let text = try cli.run(["billers"])
        #expect(text.status == 0)
        #expect(text.stdout.contains("warning: biller QD-GAS is registered but no longer in billers.toml"))
        // The biller that left the file can still be linked to: nothing was deleted.
        try ok(cli, ["wallet", "open", "--phone", "13800000001", "--name", "张三"])
        try ok(cli, ["utility", "link", "--phone", "13800000001", "--biller", "QD-GAS", "--customer-no", "88001234"])
        // A broken file is refused before anything is written.
        try "[[biller]]\ncode = \"qd-bad\"\n".write(to: file, atomically: false, encoding: .utf8)
        let broken = try cli.run(["billers", "--json"])
        #expect(broken.status == 1)
        #expect(broken.stderr.contains("billers.toml"))
        #expect(try ok(cli, ["ledger", "check"])["ok"] as? Bool == true)
    }
}
