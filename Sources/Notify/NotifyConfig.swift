import Foundation
import QDConfig

/// Where and how the outbox is delivered (`Jobs/notify.toml`).
public struct NotifyConfig: Sendable, Hashable {
    public enum Sink: Sendable, Hashable {
        /// POST each message as JSON, signed with HMAC-SHA256.
        case webhook(url: String)
        /// Append each message as a JSON line (development).
        case file(path: String)
    }

    public var sink: Sink
    /// Tries before a message becomes a dead letter.
    public var attemptsMax: Int
    public var backoffInitialSeconds: Int
    public var backoffMaxSeconds: Int
    /// Quiet hours in Asia/Shanghai, minutes after midnight: notices wait, alerts do not.
    public var quietFromMinute: Int
    public var quietToMinute: Int
    /// Messages per chunk.
    public var batchMax: Int

    /// Deliveries under way at once.
    public var concurrency: Int
    /// One delivery's deadline, connect to answer: a hanging receiver costs this, not the run.
    public var deliveryTimeoutSeconds: Int
    /// How long one run delivers before it stops and reports the backlog (a run every five
    /// minutes: less than that).
    public var runSecondsMax: Int

    public init(sink: Sink, attemptsMax: Int = 5, backoffInitialSeconds: Int = 30, backoffMaxSeconds: Int = 3_600, quietFromMinute: Int = 22 * 60, quietToMinute: Int = 7 * 60, batchMax: Int = 200,
                concurrency: Int = 8, deliveryTimeoutSeconds: Int = 10, runSecondsMax: Int = 240) {
        self.concurrency = concurrency
        self.deliveryTimeoutSeconds = deliveryTimeoutSeconds
        self.runSecondsMax = runSecondsMax
        self.sink = sink
        self.attemptsMax = attemptsMax
        self.backoffInitialSeconds = backoffInitialSeconds
        self.backoffMaxSeconds = backoffMaxSeconds
        self.quietFromMinute = quietFromMinute
        self.quietToMinute = quietToMinute
        self.batchMax = batchMax
    }

    /// Reads `notify.toml`; `{reports}` in a file path is the reports folder.
    public static func load(path: String, reports: String) throws -> NotifyConfig {
        let config = try ConfigTable.load(path: path)
        try config.allowOnly(["sink", "webhook_url", "file", "attempts", "backoff_initial_seconds", "backoff_max_seconds", "quiet_from", "quiet_to",
                              "concurrency", "delivery_timeout_seconds", "run_seconds_max", "batch_max"])
        let sink: Sink
        switch try config.string("sink") {
        case "webhook": sink = .webhook(url: try config.string("webhook_url"))
        case "file": sink = .file(path: try config.string("file").replacingOccurrences(of: "{reports}", with: reports))
        default: throw ConfigError(file: config.file, key: "sink", problem: "must be \"webhook\" or \"file\"")
        }
        func minute(_ key: String, _ fallback: Int) throws -> Int {
            guard let text = try config.optionalString(key) else { return fallback }
            let parts = text.split(separator: ":")
            guard parts.count == 2, let h = Int(parts[0]), let m = Int(parts[1]), (0...23).contains(h), (0...59).contains(m) else {
                throw ConfigError(file: config.file, key: key, problem: "must be HH:MM")
            }
            return h * 60 + m
        }
        return NotifyConfig(
            sink: sink, attemptsMax: try config.int("attempts", default: 5, in: 1...50),
            backoffInitialSeconds: try config.int("backoff_initial_seconds", default: 30, in: 1...86_400),
            backoffMaxSeconds: try config.int("backoff_max_seconds", default: 3_600, in: 1...604_800),
            quietFromMinute: try minute("quiet_from", 22 * 60), quietToMinute: try minute("quiet_to", 7 * 60),
            batchMax: try config.int("batch_max", default: 200, in: 1...10_000),
            concurrency: try config.int("concurrency", default: 8, in: 1...64),
            deliveryTimeoutSeconds: try config.int("delivery_timeout_seconds", default: 10, in: 1...120),
            runSecondsMax: try config.int("run_seconds_max", default: 240, in: 10...3_600))
    }

    /// Whether an instant falls in the quiet hours (which may span midnight).
    public func isQuiet(minuteOfDay: Int) -> Bool {
        quietFromMinute <= quietToMinute
            ? minuteOfDay >= quietFromMinute && minuteOfDay < quietToMinute
            : minuteOfDay >= quietFromMinute || minuteOfDay < quietToMinute
    }
}
