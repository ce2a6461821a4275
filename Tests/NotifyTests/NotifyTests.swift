import Crypto
import Feeds
import Foundation
import GRDB
import Logging
import Synchronization
import QDSQL
import QDTestSupport
import Testing
@testable import Billing
@testable import JobRunner
@testable import Ledger
@testable import Notify
@testable import QDConfig
@testable import Wallet

@Suite(.serialized) struct NotifyTests {
    static let secret = Array("s3cret-for-tests".utf8)

    func runner(_ world: BillingWorld, _ config: NotifyConfig) throws -> JobRunner {
        var limits = FetchLimits()
        limits.totalTimeoutSeconds = 2
        limits.connectTimeoutSeconds = 1
        let definition = try JobDefinition(ConfigTable.parse("name = \"notify\"\n[parameters]\nslot = \"{minute}\"", file: "notify.job.toml"))
        return JobRunner(store: world.store, clock: world.clock, logger: Logger(label: "t"), definitions: [definition],
                         implementations: [NotifyJob.implementation(config: config, secret: Self.secret, fetcher: FeedFetcher(limits: limits, environment: [:], sleepMillis: { _ in }), database: world.store.database)],
                         sleepMillis: { _ in })
    }

    func hooks(_ root: String) throws -> [[String: String]] {
        let folder = root + "/hooks"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted { Int($0.dropLast(5)) ?? 0 < Int($1.dropLast(5)) ?? 0 }
        return try names.map { try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/" + $0))) as? [String: String] ?? [:] }
    }

    func statuses(_ world: BillingWorld) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try world.rows("SELECT status, count(*) AS n FROM outbox GROUP BY status") { counts[try row["status"]] = try row["n"] }
        return counts
    }

    @Test func deliversSignedWithRetriesQuietHoursAndDeadLetters() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-hooks-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let server = try FeedServer(root: root)
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")  // notices and receipts into the outbox
        let queued = try world.count("SELECT count(*) FROM outbox")
        #expect(queued == 9)

        // 23:30 in Qingdao: notices wait; a security alert goes at once.
        world.clock.set(shanghai(2026, 11, 28, 23, 30))
        try world.store.database.write { db in
            try Outbox.enqueue(db, walletID: 1, kind: .securityAlert, payload: ["event": "large_payment", "phone": "138****0001"], now: world.clock.nowMicros())
        }
        let flaky = NotifyConfig(sink: .webhook(url: "http://127.0.0.1:\(server.port)/hook/flaky/1"), attemptsMax: 3, backoffInitialSeconds: 60, backoffMaxSeconds: 600)
        _ = try runner(world, flaky).run("notify")
        #expect(try statuses(world)["delivered"] == nil)  // the alert's first try hit the 500
        world.clock.advance(micros: 61_000_000)
        _ = try runner(world, flaky).run("notify")
        #expect(try statuses(world)["delivered"] == 1)
        var delivered = try hooks(root)
        #expect(delivered.count == 1)
        let body = try #require(delivered.first?["body"])
        #expect(delivered.first?["signature"] == NotifyJob.signature(Data(body.utf8), secret: Self.secret))
        #expect(body.contains("\"kind\":\"security_alert\"") && !body.contains("13800000001"))

        // 07:00: everything else goes; the receiver sees each message id once.
        world.clock.set(shanghai(2026, 11, 29, 7, 0))
        _ = try runner(world, flaky).run("notify")
        delivered = try hooks(root)
        #expect(delivered.count == queued + 1)
        #expect(Set(delivered.compactMap { $0["message_id"] }).count == delivered.count)
        #expect(try statuses(world)["pending"] == nil)

        // A receiver that is down: bounded tries, then a dead letter, then a retry by hand.
        try world.store.database.write { db in
            try Outbox.enqueue(db, walletID: 1, kind: .securityAlert, payload: ["event": "wrong_passwords"], now: world.clock.nowMicros())
        }
        let down = NotifyConfig(sink: .webhook(url: "http://127.0.0.1:\(server.port)/hook/down"), attemptsMax: 2, backoffInitialSeconds: 1, backoffMaxSeconds: 1)
        world.clock.advance(micros: 60_000_000)
        _ = try runner(world, down).run("notify")
        // A run per minute: the job's instance is the minute it runs for.
        world.clock.advance(micros: 60_000_000)
        let report = try runner(world, down).run("notify")
        #expect(try statuses(world)["dead"] == 1)
        #expect(report.assessment == .breaks)
        let error = try world.text("SELECT last_error FROM outbox WHERE status = 'dead'")
        #expect(error?.contains("503") == true)
        try world.execute("UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = 0 WHERE status = 'dead'")
        world.clock.advance(micros: 60_000_000)
        _ = try runner(world, NotifyConfig(sink: .webhook(url: "http://127.0.0.1:\(server.port)/hook/ok"))).run("notify")
        #expect(try statuses(world)["dead"] == nil && statuses(world)["pending"] == nil)

        // A receiver that hangs: the try times out and counts.
        try world.store.database.write { db in
            try Outbox.enqueue(db, walletID: 1, kind: .securityAlert, payload: ["event": "many_payments"], now: world.clock.nowMicros())
        }
        world.clock.advance(micros: 60_000_000)
        _ = try runner(world, NotifyConfig(sink: .webhook(url: "http://127.0.0.1:\(server.port)/hook/slow"))).run("notify")
        let slow = try world.rows("SELECT attempts, status, last_error FROM outbox ORDER BY id DESC LIMIT 1").first
        #expect(try slow?["attempts"] as Int? == 1 && slow?["status"] as String? == "pending")
        #expect(try (slow?["last_error"] as String?)?.contains("timed out") == true)
    }

    @Test func remindersOnceBeforeTheDueDateAndOnceOverdue() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let config = NotifyConfig(sink: .file(path: world.directory.appendingPathComponent("notes.jsonl").path))
        // Bills due 2026-12-15 to 12-25: nothing before 12-12.
        world.clock.set(shanghai(2026, 12, 11, 9))
        _ = try runner(world, config).run("notify")
        #expect(try world.count("SELECT count(*) FROM outbox WHERE kind = 'reminder'") == 0)
        world.clock.set(shanghai(2026, 12, 12, 9))
        _ = try runner(world, config).run("notify")
        #expect(try world.count("SELECT count(*) FROM outbox WHERE message_id LIKE 'reminder:QD-POWER:%'") == 1)
        world.clock.advance(micros: 3_600_000_000)
        _ = try runner(world, config).run("notify")
        #expect(try world.count("SELECT count(*) FROM outbox WHERE message_id LIKE 'reminder:QD-POWER:%'") == 1)
        world.clock.set(shanghai(2026, 12, 16, 9))
        _ = try runner(world, config).run("notify")
        #expect(try world.count("SELECT count(*) FROM outbox WHERE message_id = 'overdue:QD-POWER:P2611-100002'") == 1)
        let lines = try String(contentsOfFile: world.directory.appendingPathComponent("notes.jsonl").path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == (try world.count("SELECT count(*) FROM outbox WHERE status = 'delivered'")))
    }

    /// wallet.md: "Pending bills get a reminder three days before the due date and a notice
    /// when overdue": every one of them, however many, a page of `chunk_size` at a time; the
    /// bills reminded by an earlier run do not stop the ones after them.
    @Test func everyPayableBillIsRemindedWhateverTheChunkSize() throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        let config = NotifyConfig(sink: .file(path: world.directory.appendingPathComponent("notes.jsonl").path))
        let definition = try JobDefinition(ConfigTable.parse("name = \"notify\"\nchunk_size = 1\n[parameters]\nslot = \"{minute}\"", file: "notify.job.toml"))
        func notify() throws {
            _ = try JobRunner(store: world.store, clock: world.clock, logger: Logger(label: "t"), definitions: [definition],
                              implementations: [NotifyJob.implementation(config: config, secret: Self.secret, fetcher: FeedFetcher(environment: [:], sleepMillis: { _ in }), database: world.store.database)],
                              sleepMillis: { _ in }).run("notify")
        }
        func expected(today: String, soon: String) throws -> [String] {
            try world.store.database.read { db in
                try db.texts("""
                    SELECT CASE WHEN b.due_date < ? THEN 'overdue:' ELSE 'reminder:' END || b.biller || ':' || b.bill_id FROM bills b JOIN wallets w ON w.id = b.wallet_id
                    WHERE b.status = 'payable' AND b.due_date <= ? AND w.phone IS NOT NULL ORDER BY 1
                    """, [today, soon])
            }
        }
        func reminders() throws -> [String] {
            try world.store.database.read { try $0.texts("SELECT message_id FROM outbox WHERE kind = 'reminder' ORDER BY message_id") }
        }
        // The bills the last run's reminders step read.
        func lastRead() throws -> Int {
            try world.count("SELECT read_count FROM job_step_executions WHERE step_name = 'reminders' ORDER BY id DESC LIMIT 1")
        }
        // The first bill due is reminded alone.
        world.clock.set(shanghai(2026, 12, 12, 9))
        try notify()
        #expect(try reminders() == expected(today: "2026-12-12", soon: "2026-12-15"))
        #expect(try reminders().count == 1)
        // Ten days later every payable bill is due: each reminded (or told it is overdue), the
        // one reminded before as well, in pages of one bill.
        world.clock.set(shanghai(2026, 12, 22, 9))
        try notify()
        let all = try expected(today: "2026-12-22", soon: "2026-12-25")
        #expect(all.count >= 3)
        #expect(Set(try reminders()) == Set(all).union(try expected(today: "2026-12-12", soon: "2026-12-15")))
        // Again: nothing queued twice, and nothing read: each bill's stage says it was told.
        let before = try reminders()
        world.clock.advance(micros: 3_600_000_000)
        try notify()
        #expect(try reminders() == before)
        #expect(try lastRead() == 0)
        // Bills whose stage was never kept (a database upgraded while reminders were queued):
        // read once more, nothing queued twice, then read no more.
        try world.store.database.write { _ = try $0.run("UPDATE bills SET reminded = 0") }
        world.clock.advance(micros: 300_000_000)
        try notify()
        #expect(try reminders() == before)
        #expect(try lastRead() == all.count)
        world.clock.advance(micros: 300_000_000)
        try notify()
        #expect(try lastRead() == 0)
    }

    /// The reminders' pages run every five minutes over every bill kept: each must let a
    /// planner read the bills to remind through the index of the waiting bills by stage and
    /// due date (`billing-v8-reminder-stage`) rather than the whole table or every bill
    /// waiting. The plan is asked of the engine itself with the page's parameters bound:
    /// SQLite's `EXPLAIN QUERY PLAN`; PostgreSQL's `EXPLAIN` with sequential scans priced out,
    /// as a table of a few test bills would otherwise be read whole.
    @Test(arguments: [BillStore.ReminderStage.none, .dueSoon])
    func remindersReadTheBillsToRemindThroughTheirIndex(stage: BillStore.ReminderStage) throws {
        let world = try BillingWorld()
        try world.populate()
        _ = try world.run("2026-11-27")
        #expect(try world.count("SELECT count(*) FROM bills WHERE status = 'payable'") >= 1)
        let binds: [any SQLBindable] = ["2026-12-15", "2026-12-01", Int64(0), Int64(100)]
        let plan = try world.plan(BillStore.toRemindSQL(stage), binds)
        #expect(plan.contains { $0.contains("bills_to_remind") }, "\(plan)")
        #expect(!plan.contains { $0.contains("SCAN bills") || $0.contains("Seq Scan") }, "\(plan)")
        // In index order: no sort of what was read.
        #expect(!plan.contains { $0.contains("TEMP B-TREE") || $0.hasPrefix("Sort") || $0.contains("-> Sort") }, "\(plan)")
    }

    @Test func quietHoursSpanMidnight() {
        let config = NotifyConfig(sink: .file(path: "/dev/null"))
        #expect(config.isQuiet(minuteOfDay: 22 * 60) && config.isQuiet(minuteOfDay: 23 * 60 + 59) && config.isQuiet(minuteOfDay: 0) && config.isQuiet(minuteOfDay: 6 * 60 + 59))
        #expect(!config.isQuiet(minuteOfDay: 7 * 60) && !config.isQuiet(minuteOfDay: 21 * 60 + 59))
    }
}

/// Delivery drains a city's outbox, bounds each delivery, keeps its progress message by
/// message, and stops sending the moment its run lost the job's lock.
@Suite(.serialized) struct NotifyDeliveryTests {
    func fill(_ world: BillingWorld, _ count: Int) throws {
        try world.store.database.write { db in
            for n in 0..<count {
                try Outbox.enqueue(db, walletID: 1, kind: .securityAlert, payload: ["event": "test", "n": String(n)], now: world.clock.nowMicros(), messageID: "m-\(n)")
            }
        }
    }

    func runner(_ world: BillingWorld, _ config: NotifyConfig) throws -> JobRunner {
        let definition = try JobDefinition(ConfigTable.parse("name = \"notify\"\n[parameters]\nslot = \"{minute}\"", file: "notify.job.toml"))
        return JobRunner(store: world.store, clock: world.clock, logger: Logger(label: "t"), definitions: [definition],
                         implementations: [NotifyJob.implementation(config: config, secret: NotifyTests.secret, fetcher: FeedFetcher(environment: [:], sleepMillis: { _ in }), database: world.store.database)],
                         sleepMillis: { _ in })
    }

    func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func messageIDs(_ path: String) throws -> [String] {
        try lines(path).map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return object?["message_id"] as? String ?? ""
        }
    }

    @Test func oneRunDrainsAThreeThousandMessageOutbox() throws {
        let world = try BillingWorld()
        try world.populate()
        try fill(world, 3_000)
        let sink = world.directory.appendingPathComponent("notifications.jsonl").path
        let report = try runner(world, NotifyConfig(sink: .file(path: sink))).run("notify")
        #expect(report.status == "completed")
        #expect(try world.count("SELECT count(*) FROM outbox WHERE status = 'delivered'") == 3_000)
        #expect(Set(try messageIDs(sink)).count == 3_000 && lines(sink).count == 3_000)
        let data = try #require(report.summary)
        let summary = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Int])
        #expect(summary["backlog"] == 0)
    }

    /// A receiver that accepts the connection and never answers costs each delivery its
    /// deadline, no more: the run ends, every message is recorded as tried.
    @Test(.timeLimit(.minutes(1))) func aHangingWebhookCostsEachDeliveryItsDeadline() throws {
        let world = try BillingWorld()
        try world.populate()
        try fill(world, 20)
        let silent = try SilentServer()
        let config = NotifyConfig(sink: .webhook(url: "http://127.0.0.1:\(silent.port)/hook"), attemptsMax: 5, backoffInitialSeconds: 60, concurrency: 8, deliveryTimeoutSeconds: 1, runSecondsMax: 60)
        let started = Date()
        let report = try runner(world, config).run("notify")
        #expect(report.status == "completed")
        #expect(Date().timeIntervalSince(started) < 15)
        #expect(try world.count("SELECT count(*) FROM outbox WHERE attempts = 1 AND status = 'pending' AND last_error IS NOT NULL AND claimed_by IS NULL") == 20)
        let data = try #require(report.summary)
        let summary = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Int])
        #expect(summary["backlog"] == 0) // all wait for their backoff, none is due
    }

    /// A run whose lock is taken over stops before sending more; the next run sends the
    /// rest, and no message is sent twice.
    @Test(.timeLimit(.minutes(1))) func aRunThatLostItsLockSendsNothingMore() throws {
        let world = try BillingWorld()
        try world.populate()
        try fill(world, 3_000)
        let sink = world.directory.appendingPathComponent("notifications.jsonl").path
        let config = NotifyConfig(sink: .file(path: sink), batchMax: 50, concurrency: 2)
        // Another process takes the lock over when about a hundred messages are out (the
        // fetcher's stop check runs before each message: a deterministic moment).
        let store = world.store
        let asked = Mutex(0)
        let definition = try JobDefinition(ConfigTable.parse("name = \"notify\"\n[parameters]\nslot = \"{minute}\"", file: "notify.job.toml"))
        let fetcher = FeedFetcher(environment: [:], sleepMillis: { _ in }, shouldStop: {
            let n = asked.withLock { count -> Int in count += 1; return count }
            if n == 100 { _ = try? store.database.write { try $0.execute("DELETE FROM job_locks") } }
            return false
        })
        let stealing = JobRunner(store: world.store, clock: world.clock, logger: Logger(label: "t"), definitions: [definition],
                                 implementations: [NotifyJob.implementation(config: config, secret: NotifyTests.secret, fetcher: fetcher, database: world.store.database)], sleepMillis: { _ in })
        #expect(throws: JobRunnerError.self) { try stealing.run("notify") }
        let sentFirst = lines(sink).count
        #expect(sentFirst >= 98 && sentFirst <= 102, "\(sentFirst)")
        #expect(try world.count("SELECT count(*) FROM outbox WHERE status = 'delivered'") == sentFirst)
        // The other run (here: this one again, once the lock is free) sends the rest, once.
        try world.execute("DELETE FROM job_locks")
        _ = try runner(world, config).run("notify")
        let ids = try messageIDs(sink)
        #expect(ids.count == 3_000 && Set(ids).count == 3_000)
        #expect(try world.count("SELECT count(*) FROM outbox WHERE status = 'delivered'") == 3_000)
    }

    /// Quiet hours, 22:00 to 07:00 in Qingdao, through the job itself, at their edges: a
    /// notice goes at 21:59 and 07:00, waits at 22:00 and 06:59; an alert never waits.
    @Test func quietHoursHoldAtTheirEdgesInTheJob() throws {
        let world = try BillingWorld()
        try world.populate()
        let sink = world.directory.appendingPathComponent("quiet.jsonl").path
        let config = NotifyConfig(sink: .file(path: sink))
        func attempt(_ hour: Int, _ minute: Int, kind: Outbox.Kind) throws -> Bool {
            world.clock.set(shanghai(2026, 11, 28, hour, minute))
            let id = "q-\(hour)-\(minute)-\(kind.rawValue)"
            try world.store.database.write { db in
                try Outbox.enqueue(db, walletID: 1, kind: kind, payload: ["event": "edge"], now: world.clock.nowMicros(), messageID: id)
            }
            _ = try runner(world, config).run("notify", force: true)
            return try world.count("SELECT count(*) FROM outbox WHERE message_id = '\(id)' AND status = 'delivered'") == 1
        }
        #expect(try attempt(21, 59, kind: .billNotice))
        #expect(try !attempt(22, 0, kind: .billNotice))
        #expect(try attempt(22, 0, kind: .securityAlert))
        #expect(try !attempt(6, 59, kind: .billNotice))
        #expect(try attempt(7, 0, kind: .billNotice))
    }
}
