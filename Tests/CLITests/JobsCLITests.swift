import Foundation
import QDSQL
import Testing

/// The job commands end to end, on the run's engine (SQLite, or PostgreSQL with
/// `QDWALLET_TEST_ENGINE=postgres`).
@Suite struct JobsCLITests {
    static let jobsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Jobs").path

    func runner() throws -> CLIRunner {
        var cli = try CLIRunner()
        cli.environment["QDWALLET_DB"] = try cli.database()
        cli.environment["QDWALLET_JOBS_DIR"] = Self.jobsDirectory
        #expect(try cli.run(["init"]).status == 0)
        return cli
    }

    @Test func runListHistory() throws {
        let cli = try runner()
        defer { cli.cleanUp() }
        let run = try cli.run(["jobs", "run", "ledger-check", "--date", "2026-11-27", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try run.json()
        #expect(report["status"] as? String == "completed")
        #expect((report["summary"] as? [String: Any])?["ok"] as? Bool == true)
        let again = try cli.run(["jobs", "run", "ledger-check", "--date", "2026-11-27", "--json"])
        #expect(try again.json()["status"] as? String == "already_completed")
        let forced = try cli.run(["jobs", "run", "ledger-check", "--date", "2026-11-27", "--force", "--json"])
        #expect(try forced.json()["forced"] as? Bool == true)

        let list = try cli.run(["jobs", "list", "--json"])
        let jobs = try #require(try list.json()["jobs"] as? [[String: Any]])
        #expect(jobs.compactMap { $0["job"] as? String } == ["campaign-settlement", "expire-holds", "ledger-check", "nightly-billing", "notify", "reconciliation"])
        #expect(jobs.first { $0["job"] as? String == "ledger-check" }?["schedule"] as? String == "30 4 * * *")
        let history = try #require(try cli.run(["jobs", "history", "--json"]).json()["executions"] as? [[String: Any]])
        #expect(history.count == 2)
        #expect(history.first?["forced"] as? Bool == true)
        #expect(try cli.run(["jobs", "purge", "--older-than", "0"]).status == 2)
        #expect(try cli.run(["jobs", "purge", "--older-than", "30", "--json"]).json()["executions_removed"] as? Int == 0)
    }

    /// `jobs list` reads: it builds no job, so a campaign file in the jobs folder is not
    /// recorded as a version by listing (only a run that pays records what it pays with), and
    /// it lists where the feed schemas cannot be found (the jobs' setup needs them, the list
    /// does not).
    @Test func listingJobsWritesNothingAndNeedsNoFeedSchema() throws {
        var cli = try runner()
        defer { cli.cleanUp() }
        cli.environment["QDWALLET_SCHEMA_DIR"] = cli.directory.appendingPathComponent("no-schemas").path
        // A copy of the jobs folder in which a campaign has a new version, not yet run.
        let jobs = cli.directory.appendingPathComponent("Jobs")
        try FileManager.default.copyItem(atPath: Self.jobsDirectory, toPath: jobs.path)
        let campaign = jobs.appendingPathComponent("campaigns/first-bill-welcome.toml")
        let text = try String(contentsOf: campaign, encoding: .utf8)
        #expect(text.contains("version  = 1\n"))
        try text.replacingOccurrences(of: "version  = 1\n", with: "version  = 2\n").write(to: campaign, atomically: false, encoding: .utf8)
        cli.environment["QDWALLET_JOBS_DIR"] = jobs.path
        func versions() throws -> Int {
            var count = -1
            try cli.write { count = try $0.int("SELECT count(*) FROM campaign_versions", []) ?? -1 }
            return count
        }
        let before = try versions()
        let list = try cli.run(["jobs", "list", "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        #expect((try list.json()["jobs"] as? [[String: Any]])?.count == 6)
        #expect(try versions() == before)
        // A run does need the schemas, and says which file it could not load.
        let run = try cli.run(["jobs", "run", "nightly-billing", "--date", "2026-11-27"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("no-schemas/billfeed.xsd"), "\(run.stderr)")
    }

    @Test func aSecondRunIsRefusedWithItsHolder() throws {
        let cli = try runner()
        defer { cli.cleanUp() }
        #expect(try cli.run(["init"]).status == 0)
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        try cli.write { db in
            try db.run("INSERT INTO job_instances (id, job_name, instance_key, parameters, created_at) VALUES (1, 'ledger-check', 'date=2026-11-27', '{}', ?)", [now])
            try db.run("INSERT INTO job_executions (id, instance_id, status, owner, parameters, started_at, heartbeat_at) VALUES (7, 1, 'started', 'night-box:4242', '{}', ?, ?)", [now, now])
            try db.run("INSERT INTO job_locks (job_name, execution_id, owner, acquired_at, heartbeat_at) VALUES ('ledger-check', 7, 'night-box:4242', ?, ?)", [now, now])
        }
        let refused = try cli.run(["jobs", "run", "ledger-check", "--date", "2026-11-27", "--json"])
        #expect(refused.status == 4)
        let error = try #require(try refused.json()["error"] as? [String: Any])
        #expect(error["code"] as? String == "already_running")
        #expect((error["message"] as? String)?.contains("execution 7 held by night-box:4242") == true)
    }

    @Test func unknownJobsAndBadDatesAreRefused() throws {
        let cli = try runner()
        defer { cli.cleanUp() }
        #expect(try cli.run(["jobs", "run", "no-such-job"]).status == 2)
        #expect(try cli.run(["jobs", "run", "ledger-check", "--date", "2026-02-30"]).status == 1)
        #expect(try cli.run(["jobs", "run", "ledger-check", "--param", "=x"]).status == 2)
        var elsewhere = cli
        elsewhere.environment["QDWALLET_JOBS_DIR"] = cli.directory.appendingPathComponent("missing").path
        #expect(try elsewhere.run(["jobs", "list"]).status == 1)
    }

    @Test func schedulerOnceStartsWhatIsDue() throws {
        let cli = try runner()
        defer { cli.cleanUp() }
        let first = try cli.run(["scheduler", "--once", "--json"])
        #expect(first.status == 0, "\(first.stderr)")
        let decisions = try #require(try first.json()["decisions"] as? [[String: Any]])
        #expect(Set(decisions.compactMap { $0["action"] as? String }) == ["first_seen"])
        // Nothing is due right after.
        #expect((try cli.run(["scheduler", "--once", "--json"]).json()["decisions"] as? [Any])?.isEmpty == true)
        // A day later (the last fires moved back a day): what is due runs, once.
        try cli.write { try $0.run("UPDATE job_schedules SET last_fire_at = last_fire_at - 86400000000") }
        let due = try cli.run(["scheduler", "--once", "--json"])
        let ran = try #require(try due.json()["decisions"] as? [[String: Any]]).filter { $0["action"] as? String == "ran" }
        let check = try #require(ran.first { $0["job"] as? String == "ledger-check" })
        #expect(check["status"] as? String == "completed")
        #expect(Set(ran.compactMap { $0["job"] as? String }).isSuperset(of: ["ledger-check", "notify", "expire-holds"]))
        let history = try #require(try cli.run(["jobs", "history", "--job", "ledger-check", "--json"]).json()["executions"] as? [[String: Any]])
        #expect(history.count == 1 && history[0]["status"] as? String == "completed")
    }

    /// An older qdwallet never uses a database a newer one has upgraded (its rows follow rules
    /// the older one does not know; two versions would pay one bill under two keys): every
    /// command refuses it, exit 4 `database_newer`, naming the unknown schema step, and writes
    /// nothing; a scheduler already running when the upgrade lands stops before its next tick.
    @Test func aDatabaseUpgradedByANewerVersionIsRefusedByAnOlderOne() throws {
        let cli = try runner()
        defer { cli.cleanUp() }
        let step = "v99-from-a-newer-qdwallet"
        let table = CLIRunner.onPostgres ? "qdwallet_migrations (name)" : "grdb_migrations (identifier)"

        // A scheduler started before the upgrade: it ticks (its jobs first seen), then waits.
        let scheduler = Process()
        scheduler.executableURL = CLIRunner.executable
        scheduler.arguments = ["scheduler", "--poll-seconds", "1"]
        scheduler.environment = cli.environment
        scheduler.currentDirectoryURL = cli.directory
        let schedulerErrors = Pipe()
        scheduler.standardOutput = FileHandle.nullDevice
        scheduler.standardError = schedulerErrors
        try scheduler.run()
        defer { if scheduler.isRunning { scheduler.terminate() } }
        var seen = false
        for _ in 0..<300 where !seen {
            try cli.write { seen = try $0.exists("SELECT 1 FROM job_schedules") }
            if !seen { usleep(50_000) }
        }
        #expect(seen, "the scheduler never ticked")
        #expect(scheduler.isRunning)

        try cli.write { _ = try $0.run("INSERT INTO \(table) VALUES (?)", [step]) }
        // It stops by itself, within a few polls, and says why.
        let deadline = Date().addingTimeInterval(20)
        while scheduler.isRunning && Date() < deadline { usleep(50_000) }
        #expect(!scheduler.isRunning, "the scheduler kept running on a newer database")
        if !scheduler.isRunning {
            #expect(scheduler.terminationStatus == 4)
            let said = String(decoding: schedulerErrors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(said.contains(step), "\(said)")
        }

        for arguments in [["init"], ["ledger", "check"], ["jobs", "run", "ledger-check", "--date", "2026-11-27"], ["jobs", "history"],
                          ["scheduler", "--once"], ["billers"], ["balance", "--phone", "13800000001"]] {
            let result = try cli.run(arguments + ["--json"])
            #expect(result.status == 4, "\(arguments): \(result.stdout) \(result.stderr)")
            let error = try #require(try result.json()["error"] as? [String: Any], "\(arguments)")
            #expect(error["code"] as? String == "database_newer", "\(arguments)")
            #expect((error["message"] as? String)?.contains(step) == true, "\(arguments)")
        }
        // The newer step is still recorded (init took nothing away), and nothing ran: once the
        // step is gone again, the history is empty.
        var kept = false
        try cli.write { kept = try $0.exists("SELECT 1 FROM \(CLIRunner.onPostgres ? "qdwallet_migrations WHERE name" : "grdb_migrations WHERE identifier") = ?", [step]) }
        #expect(kept)
        try cli.write { _ = try $0.run("DELETE FROM \(CLIRunner.onPostgres ? "qdwallet_migrations WHERE name" : "grdb_migrations WHERE identifier") = ?", [step]) }
        let history = try cli.run(["jobs", "history", "--json"])
        #expect(history.status == 0, "\(history.stderr)")
        #expect((try history.json()["executions"] as? [Any])?.isEmpty == true)
    }
}
