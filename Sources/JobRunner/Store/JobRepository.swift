import Foundation
import Ledger
import QDSQL

/// Every SQL statement of the job repository, written against the SQL layer.
enum JobRepository {
    struct Lock {
        var executionID: Int64
        var owner: String
        var heartbeatAt: TimestampMicros
    }

    struct Instance {
        var id: Int64
        var completedAt: TimestampMicros?
    }

    struct StepState {
        var status: String
        var read: Int
        var written: Int
        var skipped: Int
        var failed: Int
        var chunks: Int
        var checkpointVersion: Int
        var checkpoint: Data
    }

    static func lock(_ db: any SQLConnection, job: String) throws -> Lock? {
        try db.one("SELECT execution_id, owner, heartbeat_at FROM job_locks WHERE job_name = ?", [job]) {
            Lock(executionID: try $0.int64(0), owner: try $0.text(1), heartbeatAt: try $0.int64(2))
        }
    }

    static func takeLock(_ db: any SQLConnection, job: String, executionID: Int64, owner: String, now: TimestampMicros) throws {
        let sql = db
        try sql.run("DELETE FROM job_locks WHERE job_name = ?", [job])
        try sql.run("INSERT INTO job_locks (job_name, execution_id, owner, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)", [job, executionID, owner, now, now])
    }

    /// Refreshes the heartbeat; false when the lock is no longer this execution's.
    static func heartbeat(_ db: any SQLConnection, job: String, executionID: Int64, now: TimestampMicros) throws -> Bool {
        let sql = db
        guard try sql.run("UPDATE job_locks SET heartbeat_at = ? WHERE job_name = ? AND execution_id = ?", [now, job, executionID]) == 1 else { return false }
        try sql.run("UPDATE job_executions SET heartbeat_at = ? WHERE id = ?", [now, executionID])
        return true
    }

    static func releaseLock(_ db: any SQLConnection, job: String, executionID: Int64) throws {
        try db.run("DELETE FROM job_locks WHERE job_name = ? AND execution_id = ?", [job, executionID])
    }

    static func instance(_ db: any SQLConnection, job: String, key: String, parameters: String, now: TimestampMicros) throws -> Instance {
        let sql = db
        if let found = try sql.one("SELECT id, completed_at FROM job_instances WHERE job_name = ? AND instance_key = ?", [job, key], {
            Instance(id: try $0.int64(0), completedAt: try $0.optionalInt64(1))
        }) {
            return found
        }
        guard let id = try sql.int64("INSERT INTO job_instances (job_name, instance_key, parameters, created_at) VALUES (?, ?, ?, ?) RETURNING id", [job, key, parameters, now]) else {
            throw LedgerError(.storage, "a new job instance has no id")
        }
        return Instance(id: id, completedAt: nil)
    }

    static func startExecution(_ db: any SQLConnection, instanceID: Int64, forced: Bool, owner: String, parameters: String, now: TimestampMicros) throws -> Int64 {
        guard let id = try db.int64(
            "INSERT INTO job_executions (instance_id, status, forced, owner, parameters, started_at, heartbeat_at) VALUES (?, 'started', ?, ?, ?, ?, ?) RETURNING id",
            [instanceID, forced, owner, parameters, now, now]) else {
            throw LedgerError(.storage, "a new job execution has no id")
        }
        return id
    }

    static func finishExecution(_ db: any SQLConnection, executionID: Int64, status: String, message: String?, summary: Data?, now: TimestampMicros) throws {
        let sql = db
        try sql.run("UPDATE job_executions SET status = ?, ended_at = ?, heartbeat_at = ?, exit_message = ?, summary = ? WHERE id = ?",
                    [status, now, now, message, summary.map { String(decoding: $0, as: UTF8.self) }, executionID])
        try sql.run("UPDATE job_step_executions SET status = ?, ended_at = ? WHERE execution_id = ? AND status = 'started'", [status, now, executionID])
    }

    static func markAbandoned(_ db: any SQLConnection, executionID: Int64, message: String, now: TimestampMicros) throws {
        let sql = db
        try sql.run("UPDATE job_executions SET status = 'abandoned', ended_at = ?, exit_message = ? WHERE id = ? AND status = 'started'", [now, message, executionID])
        try sql.run("UPDATE job_step_executions SET status = 'abandoned', ended_at = ? WHERE execution_id = ? AND status = 'started'", [now, executionID])
    }

    static func completeInstance(_ db: any SQLConnection, instanceID: Int64, now: TimestampMicros) throws {
        try db.run("UPDATE job_instances SET completed_at = ? WHERE id = ?", [now, instanceID])
    }

    /// The latest execution of the instance before `executionID`.
    static func previousExecution(_ db: any SQLConnection, instanceID: Int64, before executionID: Int64) throws -> Int64? {
        try db.int64("SELECT max(id) FROM job_executions WHERE instance_id = ? AND id < ?", [instanceID, executionID])
    }

    /// The latest state of a step in earlier executions of the instance (for a restart).
    static func latestStep(_ db: any SQLConnection, instanceID: Int64, step: String, before executionID: Int64) throws -> StepState? {
        try db.one("""
            SELECT s.status, s.read_count, s.written_count, s.skipped_count, s.failed_count, s.chunks, s.checkpoint_version, s.checkpoint
            FROM job_step_executions s JOIN job_executions e ON e.id = s.execution_id
            WHERE e.instance_id = ? AND s.step_name = ? AND s.execution_id < ?
            ORDER BY s.execution_id DESC LIMIT 1
            """, [instanceID, step, executionID], stepState)
    }

    /// A step's state from the columns status, the four counts, chunks, checkpoint version, checkpoint.
    static func stepState(_ row: SQLRow) throws -> StepState {
        StepState(status: try row.text(0), read: try row.int(1), written: try row.int(2), skipped: try row.int(3), failed: try row.int(4), chunks: try row.int(5),
                  checkpointVersion: try row.int(6), checkpoint: try row.data(7))
    }

    static func insertStep(_ db: any SQLConnection, executionID: Int64, step: String, state: StepState, now: TimestampMicros) throws {
        try db.run("""
            INSERT INTO job_step_executions (execution_id, step_name, status, read_count, written_count, skipped_count, failed_count, chunks, checkpoint_version, checkpoint, started_at, updated_at, ended_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [executionID, step, state.status, state.read, state.written, state.skipped, state.failed, state.chunks, state.checkpointVersion, state.checkpoint, now, now, state.status == "completed" ? now : nil])
    }

    static func saveStep(_ db: any SQLConnection, executionID: Int64, step: String, state: StepState, now: TimestampMicros) throws {
        try db.run("""
            UPDATE job_step_executions SET status = ?, read_count = ?, written_count = ?, skipped_count = ?, failed_count = ?, chunks = ?,
                checkpoint_version = ?, checkpoint = ?, updated_at = ?, ended_at = ?
            WHERE execution_id = ? AND step_name = ?
            """, [state.status, state.read, state.written, state.skipped, state.failed, state.chunks, state.checkpointVersion, state.checkpoint, now, state.status == "completed" ? now : nil, executionID, step])
    }

    static func lastFire(_ db: any SQLConnection, job: String) throws -> TimestampMicros? {
        try db.int64("SELECT last_fire_at FROM job_schedules WHERE job_name = ?", [job])
    }

    static func recordFire(_ db: any SQLConnection, job: String, at fire: TimestampMicros) throws {
        try db.run("INSERT INTO job_schedules (job_name, last_fire_at) VALUES (?, ?) ON CONFLICT (job_name) DO UPDATE SET last_fire_at = excluded.last_fire_at", [job, fire])
    }

    /// Records a fire the scheduler will not run (beyond the catch-up bound).
    static func recordUnrunFire(_ db: any SQLConnection, job: String, at fire: TimestampMicros, now: TimestampMicros) throws {
        try db.run("INSERT INTO job_unrun_fires (job_name, fire_at, recorded_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", [job, fire, now])
    }

    /// The newest fires left unrun, newest first.
    static func unrunFires(_ db: any SQLConnection, job: String, limit: Int) throws -> [TimestampMicros] {
        try db.int64s("SELECT fire_at FROM job_unrun_fires WHERE job_name = ? ORDER BY fire_at DESC LIMIT ?", [job, limit])
    }

    /// Deletes finished executions (and their steps) that ended before `cutoff`. Instances
    /// stay, with their completion time, so a purged completed run is still never rerun.
    static func purge(_ db: any SQLConnection, endedBefore cutoff: TimestampMicros) throws -> (executions: Int, steps: Int) {
        let sql = db
        let steps = try sql.run("DELETE FROM job_step_executions WHERE execution_id IN (SELECT id FROM job_executions WHERE status <> 'started' AND ended_at < ?)", [cutoff])
        let executions = try sql.run("DELETE FROM job_executions WHERE status <> 'started' AND ended_at < ? AND id NOT IN (SELECT execution_id FROM job_locks)", [cutoff])
        return (executions, steps)
    }
}
