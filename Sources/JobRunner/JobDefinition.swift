import Foundation
import Ledger
import QDConfig

/// A job as declared in `Jobs/NAME.toml`.
public struct JobDefinition: Sendable, Hashable {
    /// What to do when the schedule fires while an earlier run of the job is still live.
    public enum OverlapPolicy: String, Sendable, Hashable {
        /// Skip this fire; the live run goes on.
        case skip
        /// Wait for the live run to end (up to the stale limit), then run.
        case wait
    }

    /// What to do with fires missed while no scheduler was running.
    public enum CatchUpPolicy: String, Sendable, Hashable {
        /// Forget them; wait for the next fire.
        case none
        /// Run once, for the latest missed fire, however many were missed.
        case once
        /// Run every missed fire, oldest first, at most `catch_up_max` of them (the newest):
        /// for business-date jobs, where each missed fire is a day of its own. Fires beyond the
        /// bound are recorded as left unrun, for `jobs list` to show.
        case every
    }

    public struct RetryPolicy: Sendable, Hashable {
        /// Tries of one chunk before the run fails (1 = no retry).
        public var attemptsMax: Int = 3
        public var backoffInitialMillis: Int = 200
        public var backoffMaxMillis: Int = 10_000
        /// Randomise each wait between half and all of it, so retries do not march in step.
        public var jitter: Bool = true

        public init() {}

        /// The wait before try `attempt` (2, 3, ...), before jitter.
        public func backoffMillis(beforeAttempt attempt: Int) -> Int {
            let exponent = max(0, min(attempt - 2, 20))
            return min(backoffMaxMillis, backoffInitialMillis << exponent)
        }
    }

    public var name: String
    public var description: String
    public var schedule: CronExpression?
    /// Default parameters; values may use {today}, {yesterday}, {tomorrow} and {minute}
    /// ("2026-11-28T04:15"), in Asia/Shanghai at the fire time.
    public var parameters: [String: String]
    /// The parameters that make a job instance (a completed instance is not run again).
    public var identifying: [String]
    public var chunkSizeMax: Int
    public var retry: RetryPolicy
    public var overlap: OverlapPolicy
    public var catchUp: CatchUpPolicy
    /// With `catch_up = "every"`: how many missed fires one tick runs at most.
    public var catchUpMax: Int
    /// A run whose heartbeat is older than this is abandoned and can be taken over.
    public var staleAfterSeconds: Int
    /// The file it came from.
    public var file: String

    static let keys: Set<String> = ["name", "description", "schedule", "parameters", "identifying", "chunk_size", "retry", "overlap", "catch_up", "catch_up_max", "stale_after_seconds"]

    /// Reads one definition, naming the file and the key in every error.
    public init(_ config: ConfigTable) throws {
        try config.allowOnly(Self.keys)
        file = config.file
        name = try config.string("name")
        guard !name.isEmpty, name.utf8.count <= 64, name.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            throw ConfigError(file: file, key: "name", problem: "use 1 to 64 lower-case letters, digits, '-' or '_'")
        }
        description = try config.string("description", default: "")
        if let text = try config.optionalString("schedule") {
            do {
                schedule = try CronExpression(text)
            } catch {
                throw ConfigError(file: file, key: "schedule", problem: error.description)
            }
        } else {
            schedule = nil
        }
        parameters = try config.table("parameters")?.stringMap() ?? [:]
        identifying = try config.strings("identifying", default: parameters.keys.sorted())
        for key in identifying where parameters[key] == nil {
            throw ConfigError(file: file, key: "identifying", problem: "names \"\(key)\", which is not a parameter")
        }
        chunkSizeMax = try config.int("chunk_size", default: 1_000, in: 1...100_000)
        retry = RetryPolicy()
        if let table = try config.table("retry") {
            try table.allowOnly(["attempts", "backoff_initial_ms", "backoff_max_ms", "jitter"])
            retry.attemptsMax = try table.int("attempts", default: retry.attemptsMax, in: 1...20)
            retry.backoffInitialMillis = try table.int("backoff_initial_ms", default: retry.backoffInitialMillis, in: 1...600_000)
            retry.backoffMaxMillis = try table.int("backoff_max_ms", default: retry.backoffMaxMillis, in: retry.backoffInitialMillis...3_600_000)
            retry.jitter = try table.bool("jitter", default: true)
        }
        let overlapText = try config.string("overlap", default: "skip")
        guard let overlap = OverlapPolicy(rawValue: overlapText) else {
            throw ConfigError(file: file, key: "overlap", problem: "must be \"skip\" or \"wait\"")
        }
        self.overlap = overlap
        let catchUpText = try config.string("catch_up", default: "once")
        guard let catchUp = CatchUpPolicy(rawValue: catchUpText) else {
            throw ConfigError(file: file, key: "catch_up", problem: "must be \"none\", \"once\" or \"every\"")
        }
        self.catchUp = catchUp
        catchUpMax = try config.int("catch_up_max", default: 7, in: 1...366)
        staleAfterSeconds = try config.int("stale_after_seconds", default: 120, in: 5...86_400)
    }

    /// Every `*.job.toml` directly in `directory` (other TOML files there configure billers
    /// and campaigns).
    public static func loadAll(directory: String) throws -> [JobDefinition] {
        let loaded = try load(directory: directory)
        if let problem = loaded.problems.first { throw problem }
        return loaded.definitions
    }

    /// The definitions `directory` holds for a run of `job`: a file that cannot be read is
    /// left aside, with its problem, when another file defines `job` (a mistake in one job's
    /// definition stops that job, not the others); when none does, the first problem is the
    /// error (the file may be `job`'s own).
    public static func loadAll(directory: String, running job: String) throws -> (definitions: [JobDefinition], leftAside: [any Error]) {
        let loaded = try load(directory: directory)
        if let problem = loaded.problems.first, !loaded.definitions.contains(where: { $0.name == job }) { throw problem }
        return (loaded.definitions, loaded.problems)
    }

    private static func load(directory: String) throws -> (definitions: [JobDefinition], problems: [any Error]) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw ConfigError(file: directory, key: "", problem: "the jobs folder cannot be read; give --jobs-dir or QDWALLET_JOBS_DIR")
        }
        var definitions: [JobDefinition] = []
        var problems: [any Error] = []
        var seen: [String: String] = [:]
        for name in names.sorted() where name.hasSuffix(".job.toml") {
            let path = (directory as NSString).appendingPathComponent(name)
            let definition: JobDefinition
            do {
                definition = try JobDefinition(try ConfigTable.load(path: path))
            } catch {
                problems.append(error)
                continue
            }
            if let other = seen[definition.name] {
                // Two definitions of one job: neither can be trusted to be the one meant.
                throw ConfigError(file: name, key: "name", problem: "\"\(definition.name)\" is also defined in \(other)")
            }
            seen[definition.name] = name
            definitions.append(definition)
        }
        return (definitions, problems)
    }

    /// Parameters for a run: the defaults with templates resolved at `now`, then `overrides`.
    public func resolvedParameters(now: TimestampMicros, overrides: [String: String]) -> [String: String] {
        let today = ShanghaiCalendar.date(at: now)
        let minuteOfDay = ShanghaiCalendar.microsOfDay(at: now) / 60_000_000
        let minute = today.iso + "T" + (minuteOfDay / 60 < 10 ? "0" : "") + String(minuteOfDay / 60) + ":" + (minuteOfDay % 60 < 10 ? "0" : "") + String(minuteOfDay % 60)
        var resolved: [String: String] = [:]
        for (key, value) in parameters {
            resolved[key] = value
                .replacingOccurrences(of: "{minute}", with: minute)
                .replacingOccurrences(of: "{today}", with: today.iso)
                .replacingOccurrences(of: "{yesterday}", with: today.adding(days: -1).iso)
                .replacingOccurrences(of: "{tomorrow}", with: today.adding(days: 1).iso)
        }
        for (key, value) in overrides { resolved[key] = value }
        return resolved
    }

    /// The canonical text of the identifying parameters: what makes a job instance.
    public func instanceKey(_ parameters: [String: String]) -> String {
        identifying.sorted().map { "\($0)=\(parameters[$0] ?? "")" }.joined(separator: "&")
    }
}
