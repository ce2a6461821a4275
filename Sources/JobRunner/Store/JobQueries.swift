import Foundation
import Ledger
import QDSQL

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

    /// The checkpoint a step of an execution last committed (a one-chunk step's result).
    public static func checkpoint(_ db: any SQLConnection, executionID: Int64, step: String) throws -> Data? {
        try db.dataValue("SELECT checkpoint FROM job_step_executions WHERE execution_id = ? AND step_name = ?", [executionID, step])
    }

    /// The newest executions first, optionally of one job.
    public static func history(_ database: any SQLDatabase, job: String?, limit: Int) throws -> [ExecutionLine] {
        try database.read { db in
            var query = """
                SELECT e.id, i.job_name, e.parameters, e.status, e.forced, e.owner, e.started_at, e.ended_at, e.heartbeat_at, e.exit_message,
                    coalesce(sum(s.read_count), 0), coalesce(sum(s.written_count), 0), coalesce(sum(s.skipped_count), 0), coalesce(sum(s.failed_count), 0)
                FROM job_executions e JOIN job_instances i ON i.id = e.instance_id
                LEFT JOIN job_step_executions s ON s.execution_id = e.id
                """
            var arguments: [any SQLBindable] = []
            if let job {
                query += " WHERE i.job_name = ?"
                arguments.append(job)
            }
            query += " GROUP BY e.id, i.job_name ORDER BY e.id DESC LIMIT ?"
            arguments.append(max(1, min(limit, 10_000)))
            return try db.all(query, arguments) { row in
                let started = try row.int64(6)
                let ended = try row.optionalInt64(7)
                return ExecutionLine(
                    executionId: try row.int64(0), job: try row.text(1), parameters: try row.text(2), status: try row.text(3),
                    forced: try row.bool(4), owner: try row.text(5), startedAt: started, endedAt: ended, heartbeatAt: try row.int64(8),
                    durationSeconds: ended.map { Double($0 - started) / 1e6 },
                    read: try row.int(10), written: try row.int(11), skipped: try row.int(12), failed: try row.int(13), message: try row.optionalText(9))
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
    public static func list(_ database: any SQLDatabase, definitions: [JobDefinition], now: TimestampMicros) throws -> [JobLine] {
        try database.read { db in
            try definitions.sorted { $0.name < $1.name }.map { definition in
                let last = try db.one("""
                    SELECT e.status, e.ended_at FROM job_executions e JOIN job_instances i ON i.id = e.instance_id
                    WHERE i.job_name = ? ORDER BY e.id DESC LIMIT 1
                    """, [definition.name]) { (status: try $0.text(0), endedAt: try $0.optionalInt64(1)) }
                let running = try db.exists("SELECT 1 FROM job_locks WHERE job_name = ?", [definition.name])
                return JobLine(
                    job: definition.name, description: definition.description, schedule: definition.schedule?.text,
                    nextFireAt: definition.schedule?.next(after: now), lastStatus: last?.status, lastEndedAt: last?.endedAt,
                    running: running, file: definition.file, unrunFires: try JobRepository.unrunFires(db, job: definition.name, limit: 10))
            }
        }
    }
}

/// Purging, for operators who hold a database handle but no runner.
public enum JobPurge {
    /// Deletes finished executions that ended before `cutoff`; instances are kept.
    public static func run(_ db: any SQLConnection, endedBefore cutoff: TimestampMicros) throws -> (executions: Int, steps: Int) {
        try JobRepository.purge(db, endedBefore: cutoff)
    }
}
