import Foundation
import Ledger
import Logging

/// Starts jobs on their cron schedules (Asia/Shanghai). Each fire is recorded before its run
/// starts, so a crash never replays a fire more than once, and missed fires are caught up at
/// most once, as each job's catch-up policy says.
public struct Scheduler: Sendable {
    public let runner: JobRunner
    /// Runs before every tick and ends the scheduler when it throws (the CLI's: a newer
    /// qdwallet has upgraded the database, so this one must not start another job).
    public let beforeEachTick: @Sendable () throws -> Void

    public init(runner: JobRunner, beforeEachTick: @escaping @Sendable () throws -> Void = {}) {
        self.runner = runner
        self.beforeEachTick = beforeEachTick
    }

    /// What one tick decided for one job.
    public struct Decision: Sendable, Codable {
        public var job: String
        /// ran, skipped_overlap, waiting_overlap, skipped_missed, first_seen
        public var action: String
        public var fireAt: Int64
        public var missedFires: Int
        public var status: String?
        public var message: String?
    }

    /// Runs every job that is due at the clock's current time.
    public func tick() throws -> [Decision] {
        try beforeEachTick()
        var decisions: [Decision] = []
        for definition in runner.definitions.values.sorted(by: { $0.name < $1.name }) {
            guard let schedule = definition.schedule else { continue }
            if runner.stop.requested { break }
            if definition.catchUp == .every {
                decisions.append(contentsOf: try tickEvery(definition, schedule))
            } else if let decision = try tick(definition, schedule) {
                decisions.append(decision)
            }
        }
        return decisions
    }

    /// `catch_up = "every"`: each due fire runs, oldest first, each recorded once its run has
    /// completed; a run that does not complete ends the tick (the next tick tries it again).
    /// Fires beyond `catch_up_max` are recorded as left unrun.
    private func tickEvery(_ definition: JobDefinition, _ schedule: CronExpression) throws -> [Decision] {
        let now = runner.clock.nowMicros()
        let last = try runner.store.database.read { db in try JobRepository.lastFire(db, job: definition.name) }
        guard let last else {
            try runner.store.transaction { db, _ in try JobRepository.recordFire(db, job: definition.name, at: now) }
            return [Decision(job: definition.name, action: "first_seen", fireAt: now, missedFires: 0)]
        }
        var due: [TimestampMicros] = []
        var cursor = last
        while due.count < 100_000, let next = schedule.next(after: cursor), next <= now {
            due.append(next)
            cursor = next
        }
        guard !due.isEmpty else { return [] }
        var decisions: [Decision] = []
        if due.count > definition.catchUpMax {
            let unrun = due.prefix(due.count - definition.catchUpMax)
            try runner.store.transaction { db, _ in
                for fire in unrun { try JobRepository.recordUnrunFire(db, job: definition.name, at: fire, now: now) }
                try JobRepository.recordFire(db, job: definition.name, at: unrun.last!)
            }
            runner.logger.error("missed fires beyond the catch-up bound left unrun", metadata: ["job": "\(definition.name)", "unrun": "\(unrun.count)", "catch_up_max": "\(definition.catchUpMax)"])
            decisions.append(Decision(job: definition.name, action: "left_unrun", fireAt: unrun.last!, missedFires: unrun.count))
            due.removeFirst(unrun.count)
        }
        for (index, fire) in due.enumerated() {
            if runner.stop.requested { break }
            do {
                let report = try runner.run(definition.name, parametersAt: fire)
                decisions.append(Decision(job: definition.name, action: "ran", fireAt: fire, missedFires: due.count - 1 - index, status: report.status, message: report.message))
                guard report.status == "completed" || report.status == "already_completed" else { break }
                try runner.store.transaction { db, _ in try JobRepository.recordFire(db, job: definition.name, at: fire) }
            } catch let refusal as JobRefusal {
                if case .alreadyRunning = refusal {
                    decisions.append(Decision(job: definition.name, action: "waiting_overlap", fireAt: fire, missedFires: due.count - 1 - index, message: refusal.description))
                    break
                }
                throw refusal
            }
        }
        return decisions
    }

    private func tick(_ definition: JobDefinition, _ schedule: CronExpression) throws -> Decision? {
        let now = runner.clock.nowMicros()
        let last = try runner.store.database.read { db in try JobRepository.lastFire(db, job: definition.name) }
        guard let last else {
            // A job seen for the first time starts from now: its history is not "missed".
            try runner.store.transaction { db, _ in try JobRepository.recordFire(db, job: definition.name, at: now) }
            return Decision(job: definition.name, action: "first_seen", fireAt: now, missedFires: 0)
        }
        guard var latest = schedule.next(after: last), latest <= now else { return nil }
        var fires = 1
        // Count the fires that fell between the last one and now (bounded).
        while fires < 100_000, let following = schedule.next(after: latest), following <= now {
            latest = following
            fires += 1
        }
        let missed = fires - 1
        let overdue = missed > 0 || now - latest >= 60_000_000
        if overdue && definition.catchUp == .none {
            try runner.store.transaction { db, _ in try JobRepository.recordFire(db, job: definition.name, at: latest) }
            runner.logger.warning("missed fires skipped", metadata: ["job": "\(definition.name)", "missed": "\(fires)"])
            return Decision(job: definition.name, action: "skipped_missed", fireAt: latest, missedFires: fires)
        }
        if definition.overlap == .skip {
            try runner.store.transaction { db, _ in try JobRepository.recordFire(db, job: definition.name, at: latest) }
        }
        do {
            let report = try runner.run(definition.name, parametersAt: latest)
            if definition.overlap == .wait {
                try runner.store.transaction { db, _ in try JobRepository.recordFire(db, job: definition.name, at: latest) }
            }
            return Decision(job: definition.name, action: "ran", fireAt: latest, missedFires: missed, status: report.status, message: report.message)
        } catch let refusal as JobRefusal {
            if case .alreadyRunning = refusal {
                runner.logger.warning("fire overlaps a live run", metadata: ["job": "\(definition.name)", "policy": "\(definition.overlap.rawValue)", "holder": "\(refusal)"])
                return Decision(job: definition.name, action: definition.overlap == .skip ? "skipped_overlap" : "waiting_overlap", fireAt: latest, missedFires: missed, message: refusal.description)
            }
            throw refusal
        }
    }

    /// Ticks until stopped, sleeping to the next fire (at most `pollSeconds` at a time, and
    /// waking every second to notice a stop request).
    public func run(pollSeconds: Int = 30) throws {
        runner.logger.info("scheduler started", metadata: ["jobs": "\(runner.definitions.values.filter { $0.schedule != nil }.map(\.name).sorted().joined(separator: ","))"])
        while !runner.stop.requested {
            for decision in try tick() where decision.action != "first_seen" {
                runner.logger.info("tick", metadata: ["job": "\(decision.job)", "action": "\(decision.action)", "status": "\(decision.status ?? "")", "missed": "\(decision.missedFires)"])
            }
            let now = runner.clock.nowMicros()
            let next = runner.definitions.values.compactMap { $0.schedule?.next(after: now) }.min() ?? now + Int64(pollSeconds) * 1_000_000
            var waitSeconds = min(Int64(pollSeconds), max(1, (next - now) / 1_000_000))
            while waitSeconds > 0 && !runner.stop.requested {
                runner.sleep(1_000)
                waitSeconds -= 1
            }
        }
        runner.logger.info("scheduler stopped")
    }
}
