import ArgumentParser
import Billing
import Campaigns
import Feeds
import Foundation
import JobRunner
import Notify
import Reports
import Wallet
import Ledger
import Logging
import QDConfig

/// Where the job definitions are.
struct JobsOptions: ParsableArguments {
    @Option(name: .customLong("jobs-dir"), help: "The folder of *.job.toml definitions (default: $QDWALLET_JOBS_DIR, else ./Jobs).")
    var jobsDirectory: String?

    var path: String {
        if let jobsDirectory, !jobsDirectory.isEmpty { return jobsDirectory }
        return Self.defaultPath
    }

    /// `$QDWALLET_JOBS_DIR`, else ./Jobs.
    static var defaultPath: String {
        if let fromEnvironment = QDEnvironment.process.jobsDirectory { return fromEnvironment }
        return "./Jobs"
    }
}

/// Builds the runner from the options: database, definitions, implementations.
enum JobsSetup {
    /// The jobs built from the billing configuration (`billers.toml`, the feed schemas,
    /// `wallet.toml`, the campaigns). `notify` is built from `notify.toml`, beside a
    /// `billers.toml`.
    static let billingJobs: Set<String> = ["nightly-billing", "campaign-settlement", "reconciliation"]

    /// The runner, with the implementation of `job` alone when one is named (`jobs run`): a
    /// job is built from its own configuration, so a mistake in another's (its definition or
    /// a `notify.toml` that does not parse, feed schemas that cannot be found) stops that job,
    /// never the ledger's check or the night's billing. Without a name (the scheduler) every
    /// job is built, and any mistake stops it before it starts.
    static func runner(_ global: GlobalOptions, _ jobs: JobsOptions, stop: StopSignal = StopSignal(), clock: any LedgerClock = SystemClock(), only job: String? = nil) throws -> JobRunner {
        let logger = Logger(label: "qdwallet.jobs")
        let definitions: [JobDefinition]
        if let job {
            let loaded = try JobDefinition.loadAll(directory: jobs.path, running: job)
            for problem in loaded.leftAside {
                logger.warning("a job definition was left aside: it cannot be read", metadata: ["problem": "\(problem)"])
            }
            definitions = loaded.definitions
        } else {
            definitions = try JobDefinition.loadAll(directory: jobs.path)
        }
        let store = try AppDatabase.openStore(path: global.databasePath)
        let ledger = Ledger(store: store, clock: clock)
        _ = try SystemAccounts.ensure(in: ledger)
        func wanted(_ name: String) -> Bool { job == nil || job == name }
        var implementations = BuiltinJobs.all
        if billingJobs.contains(where: wanted) {
            let wallets = WalletService(store: store, ledger: ledger, policy: try AppDatabase.walletPolicy(jobsDirectory: jobs.path), dataKey: nil)
            if let billing = try BillingSetup.config(global, jobs, wallets: wallets, stop: stop) {
                implementations.append(NightlyBilling.implementation(billing))
                implementations.append(CampaignSettlement.implementation(statementsDirectory: (billing.reportsDirectory as NSString).appendingPathComponent("settlement")))
                implementations.append(ReconciliationJob.implementation(directory: (billing.reportsDirectory as NSString).appendingPathComponent("reconciliation")))
            }
        }
        if wanted("notify"), FileManager.default.fileExists(atPath: (jobs.path as NSString).appendingPathComponent("billers.toml")) {
            if let config = try BillingSetup.notify(global, jobs) {
                let environment = QDEnvironment.process
                implementations.append(NotifyJob.implementation(config: config, secret: environment.webhookSecret,
                                                                fetcher: FeedFetcher(environment: environment.fetcherEnvironment).stopping(when: { stop.requested }), database: store.database))
            }
        }
        return JobRunner(store: store, clock: clock, logger: logger, definitions: definitions, implementations: implementations, stop: stop)
    }
}

/// The billing configuration: Jobs/billers.toml, the XSDs, the report and work folders.
enum BillingSetup {
    /// Where feeds are downloaded: `feeds/` beside the database.
    static func workDirectory(_ global: GlobalOptions) -> String {
        (global.databaseFolder as NSString).appendingPathComponent("feeds")
    }

    /// Where reports go: --reports, else QDWALLET_REPORTS_DIR, else `reports/` beside the database.
    static func reportsDirectory(_ global: GlobalOptions) -> String {
        global.reportsDirectory ?? QDEnvironment.process.reportsDirectory ?? (global.databaseFolder as NSString).appendingPathComponent("reports")
    }

    /// The outbox's delivery (`Jobs/notify.toml`), or nil when the jobs folder has none.
    static func notify(_ global: GlobalOptions, _ jobs: JobsOptions) throws -> NotifyConfig? {
        let file = (jobs.path as NSString).appendingPathComponent("notify.toml")
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        return try NotifyConfig.load(path: file, reports: reportsDirectory(global))
    }

    static func config(_ global: GlobalOptions, _ jobs: JobsOptions, wallets: WalletService, stop: StopSignal = StopSignal()) throws -> NightlyBillingConfig? {
        let billersFile = (jobs.path as NSString).appendingPathComponent("billers.toml")
        guard FileManager.default.fileExists(atPath: billersFile) else { return nil }
        let billers = try Biller.load(path: billersFile)
        let root = (URL(fileURLWithPath: jobs.path).standardizedFileURL.deletingLastPathComponent().path as NSString).standardizingPath
        let environment = QDEnvironment.process
        let schemas = environment.schemaDirectory ?? (root as NSString).appendingPathComponent("SampleFeeds/schema")
        let reports = reportsDirectory(global)
        let work = workDirectory(global)
        let campaigns = try CampaignSetup.load(jobs, store: wallets.store)
        return NightlyBillingConfig(
            billers: billers,
            feedSchema: try XMLSchema(path: (schemas as NSString).appendingPathComponent("billfeed.xsd")),
            reportSchema: try XMLSchema(path: (schemas as NSString).appendingPathComponent("payreport.xsd")),
            root: root, reportsDirectory: reports, workDirectory: work,
            fetcher: FeedFetcher(environment: environment.fetcherEnvironment).stopping(when: { stop.requested }), wallets: wallets, campaigns: campaigns)
    }
}

/// The campaigns of `Jobs/campaigns/`, with their versions recorded.
enum CampaignSetup {
    static func load(_ jobs: JobsOptions, store: SQLLedgerStore) throws -> [Campaign] {
        let campaigns = try Campaign.loadAll(directory: (jobs.path as NSString).appendingPathComponent("campaigns"))
        try store.transaction { db, _ in try CampaignBook.register(campaigns, db: db, now: SystemClock().nowMicros()) }
        return campaigns
    }
}

/// `qdwallet jobs ...`
struct JobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "Run, list, inspect and purge batch jobs.",
        subcommands: [Run.self, List.self, History.self, Purge.self])

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a job now (or resume its last unfinished run).",
            discussion: "Exit 0 completed (or already completed), 3 completed with breaks, 4 failed, stopped or already running elsewhere.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var jobs: JobsOptions
        @Argument(help: "The job's name, as in its definition.") var name: String
        @Option(help: "The business date parameter (YYYY-MM-DD).") var date: String?
        @Option(name: .customLong("param"), help: "A parameter, KEY=VALUE; repeatable.") var parameters: [String] = []
        @Option(name: .customLong("feed"), help: "BILLER=URL: read this biller's feed from URL for this run (https, sftp or file); repeatable.") var feeds: [String] = []
        @Flag(help: "Run a new attempt even if this instance completed; recorded as forced.") var force = false

        func overrides() throws -> [String: String] {
            var overrides: [String: String] = [:]
            for text in parameters {
                guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
                    throw CLIFailure(.usage, code: "usage", "--param takes KEY=VALUE, got \"\(text.prefix(40))\"")
                }
                overrides[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            for text in feeds {
                guard let equals = text.firstIndex(of: "="), equals != text.startIndex, text.index(after: equals) != text.endIndex else {
                    throw CLIFailure(.usage, code: "usage", "--feed takes BILLER=URL, got \"\(text.prefix(40))\"")
                }
                overrides["feed." + String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            if let date {
                guard ShanghaiCalendar.Date(iso: date) != nil else {
                    throw CLIFailure(.refused, code: "invalid_date", "invalid date \"\(date.prefix(20))\": write it as YYYY-MM-DD")
                }
                overrides["date"] = date
            }
            return overrides
        }

        func run() throws {
            let stop = StopSignal()
            stop.installHandlers()
            let runner = try JobsSetup.runner(global, jobs, stop: stop, only: name)
            let report = try runner.run(name, overrides: try overrides(), force: force)
            Output(json: global.json).emit(JobReportDocument(report)) { JobReportDocument(report).text }
            switch report.status {
            case "completed", "already_completed":
                switch report.assessment {
                case .clean: break
                case .breaks: throw ExitCode(ExitStatus.breaks.rawValue)
                case .fault: throw ExitCode(ExitStatus.infrastructure.rawValue)
                }
            default:
                throw ExitCode(ExitStatus.infrastructure.rawValue)
            }
        }
    }

    struct List: ParsableCommand, ReadOnlyCommand {
        static let configuration = CommandConfiguration(abstract: "The defined jobs, their schedules, next fires and last outcomes.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var jobs: JobsOptions

        func run() throws {
            // The definitions and what the database recorded of them, read only: listing
            // builds no job (no feed schema compiled, no campaign version recorded, no system
            // account opened), so it works wherever the jobs' own setup would not.
            let definitions = try JobDefinition.loadAll(directory: jobs.path)
            let store = try AppDatabase.openStore(path: global.databasePath, mode: .existingForReading)
            let lines = try JobQueries.list(store.database, definitions: definitions, now: SystemClock().nowMicros())
            Output(json: global.json).emit(["jobs": lines]) {
                lines.map { line in
                    let next = line.nextFireAt.map { TimeText.shanghai($0) } ?? "-"
                    let unrun = line.unrunFires.isEmpty ? "" : "  LEFT UNRUN: " + line.unrunFires.map { TimeText.shanghai($0) }.joined(separator: ", ")
                    return "\(line.job)  schedule \(line.schedule ?? "none")  next \(next)  last \(line.lastStatus ?? "never")\(line.running ? "  [running]" : "")\(unrun)"
                }.joined(separator: "\n")
            }
        }
    }

    struct History: ParsableCommand, ReadOnlyCommand {
        static let configuration = CommandConfiguration(abstract: "Executions, newest first: status, counts, durations, errors.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only this job.") var job: String?
        @Option(help: "At most this many executions.") var limit: Int = 50

        func run() throws {
            let store = try AppDatabase.openStore(path: global.databasePath, mode: .existingForReading)
            let lines = try JobQueries.history(store.database, job: job, limit: limit)
            Output(json: global.json).emit(["executions": lines]) {
                lines.isEmpty ? "no executions" : lines.map { line in
                    var text = "\(line.executionId)  \(line.job)  \(line.status)  \(TimeText.shanghai(line.startedAt))"
                    if let duration = line.durationSeconds { text += "  \(String(format: "%.1f", duration)) s" }
                    text += "  read \(line.read) written \(line.written) skipped \(line.skipped) failed \(line.failed)"
                    if line.forced { text += "  [forced]" }
                    if let message = line.message { text += "\n    \(message)" }
                    return text
                }.joined(separator: "\n")
            }
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete finished executions older than N days (instances are kept, so completed runs stay completed), and downloaded feeds older than the feed retention.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("older-than"), help: "Days.") var olderThanDays: Int
        @Option(name: .customLong("feeds-older-than"), help: "Days downloaded feeds (rejected ones too) are kept (default: --older-than).") var feedsOlderThanDays: Int?

        func validate() throws {
            guard (1...36_500).contains(olderThanDays) else { throw ValidationError("--older-than must be 1 to 36500 days") }
            if let feedsOlderThanDays, !(1...36_500).contains(feedsOlderThanDays) { throw ValidationError("--feeds-older-than must be 1 to 36500 days") }
        }

        func run() throws {
            let store = try AppDatabase.openStore(path: global.databasePath)
            let now = SystemClock().nowMicros()
            let cutoff = now - Int64(olderThanDays) * ShanghaiCalendar.dayMicros
            let removed = try store.transaction { db, _ in try JobPurge.run(db, endedBefore: cutoff) }
            let feedDays = feedsOlderThanDays ?? olderThanDays
            let feeds = try FeedRetention.purge(workDirectory: BillingSetup.workDirectory(global), olderThan: now - Int64(feedDays) * ShanghaiCalendar.dayMicros)
            Output(json: global.json).emit(["executions_removed": Int64(removed.executions), "step_executions_removed": Int64(removed.steps), "feed_files_removed": Int64(feeds.files), "feed_bytes_removed": feeds.bytes]) {
                "removed \(removed.executions) executions and \(removed.steps) step executions older than \(olderThanDays) days, and \(feeds.files) downloaded feed files (\(feeds.bytes) bytes) older than \(feedDays) days"
            }
        }
    }
}

/// `qdwallet scheduler`
struct SchedulerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Start jobs on their schedules until SIGTERM (which lets the current chunk finish).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var jobs: JobsOptions
    @Flag(help: "Run what is due now once, then exit.") var once = false
    @Option(name: .customLong("poll-seconds"), help: "Longest sleep between checks.") var pollSeconds: Int = 30

    func run() throws {
        let stop = StopSignal()
        stop.installHandlers()
        let runner = try JobsSetup.runner(global, jobs, stop: stop)
        // A scheduler left running while a newer qdwallet upgraded the database starts no
        // further job: it stops (exit 4) before its next tick.
        let scheduler = Scheduler(runner: runner, beforeEachTick: { [store = runner.store, shown = global.databaseDisplay] in
            try AppDatabase.requireKnownSchema(store, context: shown)
        })
        if once {
            let decisions = try scheduler.tick()
            Output(json: global.json).emit(["decisions": decisions]) {
                decisions.isEmpty ? "nothing due" : decisions.map { "\($0.job): \($0.action)\($0.status.map { " (\($0))" } ?? "")" }.joined(separator: "\n")
            }
            return
        }
        try scheduler.run(pollSeconds: max(1, pollSeconds))
    }
}

/// `jobs run`'s document: the execution report with the job's own summary inlined.
struct JobReportDocument: Encodable {
    let report: ExecutionReport

    init(_ report: ExecutionReport) { self.report = report }

    enum CodingKeys: String, CodingKey {
        case job, executionId, status, parameters, forced, resumedExecutionId, abandonedExecutionId, steps, durationSeconds, message, assessment, summary, billers
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(report.job, forKey: .job)
        try container.encode(report.executionId, forKey: .executionId)
        try container.encode(report.status, forKey: .status)
        try container.encode(report.parameters, forKey: .parameters)
        try container.encode(report.forced, forKey: .forced)
        try container.encodeIfPresent(report.resumedExecutionId, forKey: .resumedExecutionId)
        try container.encodeIfPresent(report.abandonedExecutionId, forKey: .abandonedExecutionId)
        try container.encode(report.steps, forKey: .steps)
        try container.encode(report.durationSeconds, forKey: .durationSeconds)
        try container.encodeIfPresent(report.message, forKey: .message)
        try container.encode(report.assessment, forKey: .assessment)
        if let summary = report.summary, let object = try? JSONDecoder().decode(JSONValue.self, from: summary) {
            try container.encode(object, forKey: .summary)
            // cli.md fixes the nightly run's per-biller list at the top level.
            if case .object(let fields) = object, let billers = fields["billers"] {
                try container.encode(billers, forKey: .billers)
            }
        }
    }

    var text: String {
        var lines = ["\(report.job): \(report.status)" + (report.executionId > 0 ? " (execution \(report.executionId), \(String(format: "%.1f", report.durationSeconds)) s)" : "")]
        for step in report.steps {
            lines.append("  \(step.name): \(step.status)  read \(step.read) written \(step.written) skipped \(step.skipped) failed \(step.failed)  chunks \(step.chunks)  \(String(format: "%.1f", step.seconds)) s\(step.resumed ? "  [resumed]" : "")")
        }
        if let message = report.message { lines.append("  \(message)") }
        return lines.joined(separator: "\n")
    }
}

/// Any JSON value, to pass a job's summary through unchanged.
enum JSONValue: Codable {
    case null, bool(Bool), number(Int64), double(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int64.self) { self = .number(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// Instants as people in Qingdao read them.
enum TimeText {
    static func shanghai(_ micros: Int64) -> String {
        let date = ShanghaiCalendar.date(at: micros)
        let minutes = ShanghaiCalendar.microsOfDay(at: micros) / 60_000_000
        let hh = minutes / 60, mm = minutes % 60
        return "\(date.iso) \(hh < 10 ? "0" : "")\(hh):\(mm < 10 ? "0" : "")\(mm)"
    }
}
