import Foundation
import GRDB
import Testing

/// A careless operator: a typo in --db, the demo pointed at a real database, a read-only
/// file. Nothing that matters is created, overwritten or deleted.
@Suite struct OperatorMistakeTests {
    let billing = BillingCLITests()

    func mode(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    /// Only init (and the demo) create a database: every other command refuses a path with no
    /// database, exit 4, naming the path and `qdwallet init`, and creates nothing.
    @Test func aTypoInTheDatabasePathCreatesNothingAndReportsNothing() throws {
        let cli = try billing.runner()
        defer { cli.cleanUp() }
        try billing.ok(cli, ["wallet", "open", "--phone", "13800000001", "--name", "张三"])
        try billing.ok(cli, ["utility", "link", "--phone", "13800000001", "--biller", "QD-WATER", "--customer-no", "1100234567"])
        let reports = cli.directory.appendingPathComponent("reports").path
        let real = try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--reports-dir", reports])
        #expect(real.status == 0, "\(real.stderr)")
        let report = reports + "/outbound/QD-WATER/QDW-QD-WATER-20261127.xml"
        let delivered = try Data(contentsOf: URL(fileURLWithPath: report))
        #expect(String(decoding: delivered, as: UTF8.self).contains("PAYABLE") || String(decoding: delivered, as: UTF8.self).contains("PaidCount"))

        let typo = cli.directory.appendingPathComponent("qdwalet.sqlite").path
        for arguments in [
            ["ledger", "check"], ["report", "reconciliation", "--date", "2026-11-27"], ["balance", "--phone", "13800000001"],
            ["wallet", "open", "--phone", "13800000009", "--name", "王五"], ["jobs", "list"], ["billers"],
            ["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--reports-dir", reports, "--force"],
        ] {
            let result = try cli.run(arguments + ["--db", typo, "--json"])
            #expect(result.status == 4, "\(arguments): \(result.stdout)")
            let error = try #require(try result.json()["error"] as? [String: Any])
            #expect(error["code"] as? String == "database_not_found", "\(arguments)")
            #expect((error["message"] as? String)?.contains(typo) == true)
            #expect((error["message"] as? String)?.contains("qdwallet init") == true)
            #expect(!FileManager.default.fileExists(atPath: typo), "\(arguments) created the database")
        }
        // The report delivered to the biller is the real night's, byte for byte.
        #expect(try Data(contentsOf: URL(fileURLWithPath: report)) == delivered)
        // A file that is not a qdwallet database is not turned into one either.
        let empty = cli.directory.appendingPathComponent("empty.sqlite").path
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        let refused = try cli.run(["ledger", "check", "--db", empty])
        #expect(refused.status == 4)
        #expect(refused.stderr.contains("not a qdwallet database"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: empty)).isEmpty)
    }

    /// The demo builds its world only in a new or empty database.
    @Test func theDemoRefusesADatabaseThatHoldsData() throws {
        let cli = try billing.runner()
        defer { cli.cleanUp() }
        try billing.ok(cli, ["wallet", "open", "--phone", "13800000001", "--name", "张三"])
        let result = try cli.run(["demo", "--db", cli.databasePath, "--jobs-dir", BillingCLITests.root + "/Jobs", "--json"])
        #expect(result.status == 1)
        #expect((try result.json()["error"] as? [String: Any])?["code"] as? String == "database_not_empty")
        // Nothing of the demo's world was written: its residents do not exist, the key is ours.
        let demoResident = try cli.run(["balance", "--phone", "13800000002", "--json"])
        #expect((try demoResident.json()["error"] as? [String: Any])?["code"] as? String == "wallet_not_found")
        #expect(try billing.ok(cli, ["keys", "id"])["matches"] as? Bool == true)
        // An initialised database with a data key of its own is refused too: the demo's random
        // key could never be used with it.
        let keyed = cli.directory.appendingPathComponent("keyed.sqlite").path
        #expect(try cli.run(["init", "--db", keyed]).status == 0)
        #expect(try cli.run(["demo", "--db", keyed, "--jobs-dir", BillingCLITests.root + "/Jobs"]).status == 1)
        // An initialised, empty database is fine.
        var demo = cli
        demo.environment.removeValue(forKey: "QDWALLET_DATA_KEY")
        let fresh = cli.directory.appendingPathComponent("fresh.sqlite").path
        #expect(try demo.run(["init", "--db", fresh]).status == 0)
        let ran = try demo.run(["demo", "--db", fresh, "--jobs-dir", BillingCLITests.root + "/Jobs"])
        #expect(ran.status == 0, "\(ran.stderr)")
        #expect(ran.stdout.contains("ledger check: ok"))
    }

    /// Files the commands write are readable by their owner only: the database and its -wal
    /// and -shm files, delivered report copies, --out files.
    @Test func everythingWrittenIsPrivate() throws {
        let cli = try billing.runner()
        defer { cli.cleanUp() }
        try billing.ok(cli, ["wallet", "open", "--phone", "13800000001", "--name", "张三"])
        let reports = cli.directory.appendingPathComponent("reports").path
        #expect(try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--reports-dir", reports]).status == 0)
        let out = cli.directory.appendingPathComponent("reconciliation.html").path
        _ = try cli.run(["report", "reconciliation", "--date", "2026-11-27", "--format", "html", "--out", out])
        var checked = 0
        for file in [cli.databasePath, cli.databasePath + "-wal", cli.databasePath + "-shm", out,
                     reports + "/outbound/QD-WATER/QDW-QD-WATER-20261127.xml", reports + "/QD-WATER/QDW-QD-WATER-20261127.xml"]
        where FileManager.default.fileExists(atPath: file) {
            #expect(mode(file) & 0o077 == 0, "\(file) is \(String(mode(file), radix: 8))")
            checked += 1
        }
        #expect(checked >= 4)
    }

    /// A database this user may not write: reading commands work where SQLite can (the
    /// folder is writable), and every command says what is wrong, never "cannot create".
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func aReadOnlyDatabaseSaysSoAndStillAnswersReads() throws {
        let cli = try billing.runner()
        defer { cli.cleanUp() }
        try billing.ok(cli, ["wallet", "open", "--phone", "13800000001", "--name", "张三"])
        // As another user (nobody), who may read the file but not write it.
        let folder = cli.directory.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let copy = folder.appendingPathComponent("q.sqlite").path
        try FileManager.default.copyItem(atPath: cli.databasePath, toPath: copy)
        for path in [cli.directory.path, folder.path] { chmod(path, 0o777) }
        chmod(copy, 0o644)
        func asNobody(_ arguments: [String]) throws -> CLIRunner.Result {
            var runner = cli
            runner.environment["QDWALLET_DB"] = copy
            return try runner.run(["--reuid=65534", "--regid=65534", "--clear-groups", CLIRunner.executable.path] + arguments, executable: URL(fileURLWithPath: "/usr/bin/setpriv"))
        }
        let balance = try asNobody(["balance", "--phone", "13800000001", "--json"])
        #expect(balance.status == 0, "\(balance.stderr)")
        #expect(try balance.json()["balance_fen"] as? Int == 0)
        let check = try asNobody(["ledger", "check"])
        #expect(check.status == 0, "\(check.stderr)")
        let write = try asNobody(["wallet", "open", "--phone", "13800000002", "--name", "李四"])
        #expect(write.status == 4)
        #expect(write.stderr.contains("read-only for this user"))
        #expect(!write.stderr.contains("cannot create"))
        // With the folder read-only too, even reads cannot open a WAL database: say why.
        try? FileManager.default.removeItem(atPath: copy + "-shm")
        try? FileManager.default.removeItem(atPath: copy + "-wal")
        chmod(folder.path, 0o755)
        let stuck = try asNobody(["balance", "--phone", "13800000001"])
        #expect(stuck.status == 4)
        #expect(stuck.stderr.contains("read-only") && stuck.stderr.contains("-shm"))
    }
}

/// Typos in a run's parameters are usage errors, never a silent fallback.
@Suite struct RunParameterTests {
    let billing = BillingCLITests()

    @Test func aFutureBusinessDateATypoedFeedAndAnUnknownParamAreUsageErrors() throws {
        let cli = try billing.runner()
        defer { cli.cleanUp() }
        let reports = cli.directory.appendingPathComponent("reports").path
        for (arguments, code) in [
            (["jobs", "run", "nightly-billing", "--date", "2099-12-31"], "invalid_parameter"),
            (["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--feed", "QD-WATR=file:///tmp/x.xml"], "unknown_parameter"),
            (["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--param", "dat=2026-11-26"], "unknown_parameter"),
            (["jobs", "run", "campaign-settlement", "--date", "2099-01-01"], "invalid_parameter"),
            (["jobs", "run", "ledger-check", "--param", "verbose=1"], "unknown_parameter"),
        ] {
            let result = try cli.run(arguments + ["--reports-dir", reports, "--json"])
            #expect(result.status == 2, "\(arguments): \(result.stdout) \(result.stderr)")
            #expect((try result.json()["error"] as? [String: Any])?["code"] as? String == code, "\(arguments)")
        }
        // Nothing ran: no instance, no report.
        let history = try billing.ok(cli, ["jobs", "history"])
        #expect((history["executions"] as? [Any])?.isEmpty ?? true)
        #expect(!FileManager.default.fileExists(atPath: reports + "/QD-WATER"))
        let typo = try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--feed", "QD-WATR=file:///tmp/x.xml"])
        #expect(typo.stderr.contains("QD-WATR") && typo.stderr.contains("QD-WATER"))
    }

    /// Credentials in a --feed URL are used for the fetch, and stored and printed redacted.
    @Test func credentialsInAFeedURLAreNeverStoredOrPrinted() throws {
        let cli = try billing.runner()
        defer { cli.cleanUp() }
        let feed = BillingCLITests.root + "/SampleFeeds/QD-WATER/QD-WATER-20261127.xml"
        let url = "file://operator:Pa55-in-url@" + feed
        let run = try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-27", "--feed", "QD-WATER=" + url, "--json"])
        #expect(!run.stdout.contains("Pa55-in-url") && !run.stderr.contains("Pa55-in-url"))
        let parameters = try #require(try run.json()["parameters"] as? [String: Any])
        #expect((parameters["feed.QD-WATER"] as? String)?.contains("***@") == true)
        let history = try cli.run(["jobs", "history", "--json"])
        #expect(history.status == 0)
        #expect(!history.stdout.contains("Pa55-in-url"))
        if CLIRunner.onPostgres {
            // On a server: no stored parameter, summary or message holds it.
            var found = -1
            try cli.write { db in
                found = try db.int("""
                    SELECT (SELECT count(*) FROM job_instances WHERE parameters LIKE '%Pa55%') + (SELECT count(*) FROM job_executions
                        WHERE parameters LIKE '%Pa55%' OR coalesce(summary, '') LIKE '%Pa55%' OR coalesce(exit_message, '') LIKE '%Pa55%')
                    """) ?? -1
            }
            #expect(found == 0)
        } else {
            let stored = try Data(contentsOf: URL(fileURLWithPath: cli.databasePath)) + ((try? Data(contentsOf: URL(fileURLWithPath: cli.databasePath + "-wal"))) ?? Data())
            #expect(stored.range(of: Data("Pa55-in-url".utf8)) == nil)
        }
    }
}

/// Downloaded feeds are kept for the retention days, then purged with the job history.
@Suite struct FeedRetentionTests {
    let billing = BillingCLITests()

    @Test func feedsAreKeptThenPurged() throws {
        let cli = try billing.runner()
        defer { cli.cleanUp() }
        #expect(try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-27"]).status == 0)
        // A refused feed is kept as well.
        #expect(try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-28", "--feed", "QD-POWER=file://" + BillingCLITests.root + "/SampleFeeds/bad/wrong-totals.xml"]).status == 3)
        let work = cli.directory.appendingPathComponent("feeds").path
        func files() -> [String] {
            (FileManager.default.enumerator(atPath: work)?.compactMap { $0 as? String } ?? []).filter { $0.hasSuffix(".xml") }.sorted()
        }
        let kept = files()
        #expect(kept.count == 6, "\(kept)")
        // Nothing is younger than the retention: nothing goes.
        let none = try billing.ok(cli, ["jobs", "purge", "--older-than", "30"])
        #expect(none["feed_files_removed"] as? Int == 0)
        #expect(files() == kept)
        // The 27th's downloads age past 30 days; the 28th's stay.
        let old = Date().addingTimeInterval(-40 * 86_400)
        for name in kept where name.contains("20261127") {
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: work + "/" + name)
        }
        let purged = try billing.ok(cli, ["jobs", "purge", "--older-than", "30"])
        #expect(purged["feed_files_removed"] as? Int == 3)
        #expect(files() == kept.filter { !$0.contains("20261127") })
        #expect(try cli.run(["jobs", "purge", "--older-than", "30", "--feeds-older-than", "0"]).status == 2)
    }
}

/// Who did it: every command that changes anything is in the audit trail, masked, with its
/// outcome, committed with the change; the trail refuses edits; the reconciliation counts it.
@Suite struct AuditTrailTests {
    let wallet = WalletCLITests()

    @Test func everyChangeIsAuditedMaskedAndAppendOnly() throws {
        var cli = try wallet.runner()
        defer { cli.cleanUp() }
        cli.environment["QDWALLET_OPERATOR"] = "王操作员"
        try wallet.ok(cli, ["wallet", "open", "--phone", "13800000001", "--name", "张三"])
        try wallet.ok(cli, ["wallet", "kyc", "submit", "--phone", "13800000001", "--name", "张三", "--id-number", "11010519491231002X"])
        try wallet.ok(cli, ["wallet", "kyc", "approve", "--phone", "13800000001", "--class", "2"])
        try wallet.ok(cli, ["wallet", "freeze", "--phone", "13800000001", "--reason", "court order"])
        try wallet.refused(cli, ["wallet", "open", "--phone", "13800000001", "--name", "李四"], code: "wallet_exists")
        // Reading changes nothing and is not audited.
        _ = try wallet.ok(cli, ["balance", "--phone", "13800000001"])
        let entries = try #require(try wallet.ok(cli, ["audit"])["entries"] as? [[String: Any]])
        let commands = entries.compactMap { $0["command"] as? String }
        #expect(commands == ["wallet open", "wallet freeze", "wallet kyc approve", "wallet kyc submit", "wallet open", "init"], "\(commands)")
        #expect(entries.allSatisfy { $0["operator"] as? String == "王操作员" || $0["command"] as? String == "init" })
        #expect(entries.first?["outcome"] as? String == "refused: wallet_exists")
        #expect(entries.dropFirst().allSatisfy { $0["outcome"] as? String == "ok" })
        let everything = entries.map { "\($0)" }.joined()
        #expect(!everything.contains("13800000001") && !everything.contains("11010519491231002X"))
        #expect(everything.contains("138****0001") && everything.contains("1101**********002X"))
        // By wallet and by operator.
        let touched = try #require(try wallet.ok(cli, ["audit", "--wallet", "13800000001"])["entries"] as? [[String: Any]])
        #expect(touched.count == 5)
        #expect((try wallet.ok(cli, ["audit", "--operator", "nobody"])["entries"] as? [Any])?.isEmpty == true)
        // Append-only, like the journal.
        #expect(throws: (any Error).self) { try cli.write { try $0.run("UPDATE audit_log SET operator = 'x'") } }
        #expect(throws: (any Error).self) { try cli.write { try $0.run("DELETE FROM audit_log") } }
        #expect((try wallet.ok(cli, ["audit"])["entries"] as? [Any])?.count == entries.count)
        // The day's reconciliation counts the operator actions.
        let today = ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "Asia/Shanghai")!, formatOptions: [.withFullDate])
        let report = try cli.run(["report", "reconciliation", "--date", today])
        #expect(report.stdout.contains("operator actions:") && report.stdout.contains("wallet freeze 1"), "\(report.stdout)")
    }
}
