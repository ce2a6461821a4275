import Foundation
import GRDB
import Ledger

/// Read-only views of the job repository for operators.
public enum JobQueries {
    public struct ExecutionLine: Sendable, Codable {
        public var executionId: Int64
        public var job: String
        public var parameters: String
        public var status: String
        public var forced: Bool
        public var owner: String
        public var startedAt: Int64
        public var endedAt: Int64?
        public var heartbeatAt: Int64
        public var durationSeconds: Double?
        public var read: Int
        public var written: Int
        public var skipped: Int
        public var failed: Int
        public var message: String?
    }

    /// The newest executions first, optionally of one job.
    /// The checkpoint a step of an execution last committed (a one-chunk step's result).
    public static func checkpoint(_ db: Database, executionID: Int64, step: String) throws -> Data? {
        try Data.fetchOne(db, sql: "SELECT checkpoint FROM job_step_executions WHERE execution_id = ? AND step_name = ?", arguments: [executionID, step])
    }

    public static func history(_ pool: DatabasePool, job: String?, limit: Int) throws -> [ExecutionLine] {
        try pool.read { db in
            var sql = """
                SELECT e.*, i.job_name,
                    coalesce(sum(s.read_count), 0) AS r, coalesce(sum(s.written_count), 0) AS w,
                    coalesce(sum(s.skipped_count), 0) AS sk, coalesce(sum(s.failed_count), 0) AS f
                FROM job_executions e JOIN job_instances i ON i.id = e.instance_id
                LEFT JOIN job_step_executions s ON s.execution_id = e.id
                """
            var arguments: StatementArguments = []
            if let job {
                sql += " WHERE i.job_name = ?"
                arguments += [job]
            }
            sql += " GROUP BY e.id ORDER BY e.id DESC LIMIT ?"
            arguments += [max(1, min(limit, 10_000))]
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                let started: Int64 = row["started_at"]
                let ended: Int64? = row["ended_at"]
                return ExecutionLine(
                    executionId: row["id"], job: row["job_name"], parameters: row["parameters"], status: row["status"],
                    forced: row["forced"], owner: row["owner"], startedAt: started, endedAt: ended, heartbeatAt: row["heartbeat_at"],
                    durationSeconds: ended.map { Double($0 - started) / 1e6 },
                    read: row["r"], written: row["w"], skipped: row["sk"], failed: row["f"], message: row["exit_message"])
            }
        }
    }

    public struct JobLine: Sendable, Codable {
        public var job: String
        public var description: String
        public var schedule: String?
        public var nextFireAt: Int64?
        public var lastStatus: String?
        public var lastEndedAt: Int64?
        public var running: Bool
        public var file: String
        /// Fires the scheduler left unrun (beyond `catch_up_max`), newest first, at most 10.
        public var unrunFires: [Int64] = []
    }

    /// Every defined job with its schedule, next fire and last outcome.
    public static func list(_ pool: DatabasePool, definitions: [JobDefinition], now: TimestampMicros) throws -> [JobLine] {
        try pool.read { db in
            try definitions.sorted { $0.name < $1.name }.map { definition in
                let last = try Row.fetchOne(db, sql: """
                    SELECT e.status, e.ended_at FROM job_executions e JOIN job_instances i ON i.id = e.instance_id
                    WHERE i.job_name = ? ORDER BY e.id DESC LIMIT 1
                    """, arguments: [definition.name])
                let running = try Row.fetchOne(db, sql: "SELECT 1 FROM job_locks WHERE job_name = ?", arguments: [definition.name]) != nil
                return JobLine(
                    job: definition.name, description: definition.description, schedule: definition.schedule?.text,
                    nextFireAt: definition.schedule?.next(after: now), lastStatus: last?["status"], lastEndedAt: last?["ended_at"],
                    running: running, file: definition.file, unrunFires: try JobRepository.unrunFires(db, job: definition.name, limit: 10))
            }
        }
    }
}

/// Purging, for operators who hold a database handle but no runner.
public enum JobPurge {
    /// Deletes finished executions that ended before `cutoff`; instances are kept.
    public static func run(_ db: Database, endedBefore cutoff: TimestampMicros) throws -> (executions: Int, steps: Int) {
        try JobRepository.purge(db, endedBefore: cutoff)
    }
}
