import Foundation
import GRDB
import Ledger

/// Every SQL statement of the job repository.
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

    static func lock(_ db: Database, job: String) throws -> Lock? {
        try Row.fetchOne(db, sql: "SELECT execution_id, owner, heartbeat_at FROM job_locks WHERE job_name = ?", arguments: [job]).map {
            Lock(executionID: $0["execution_id"], owner: $0["owner"], heartbeatAt: $0["heartbeat_at"])
        }
    }

    static func takeLock(_ db: Database, job: String, executionID: Int64, owner: String, now: TimestampMicros) throws {
        try db.execute(sql: "DELETE FROM job_locks WHERE job_name = ?", arguments: [job])
        try db.execute(sql: "INSERT INTO job_locks (job_name, execution_id, owner, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)", arguments: [job, executionID, owner, now, now])
    }

    /// Refreshes the heartbeat; false when the lock is no longer this execution's.
    static func heartbeat(_ db: Database, job: String, executionID: Int64, now: TimestampMicros) throws -> Bool {
        try db.execute(sql: "UPDATE job_locks SET heartbeat_at = ? WHERE job_name = ? AND execution_id = ?", arguments: [now, job, executionID])
        guard db.changesCount == 1 else { return false }
        try db.execute(sql: "UPDATE job_executions SET heartbeat_at = ? WHERE id = ?", arguments: [now, executionID])
        return true
    }

    static func releaseLock(_ db: Database, job: String, executionID: Int64) throws {
        try db.execute(sql: "DELETE FROM job_locks WHERE job_name = ? AND execution_id = ?", arguments: [job, executionID])
    }

    static func instance(_ db: Database, job: String, key: String, parameters: String, now: TimestampMicros) throws -> Instance {
        if let row = try Row.fetchOne(db, sql: "SELECT id, completed_at FROM job_instances WHERE job_name = ? AND instance_key = ?", arguments: [job, key]) {
            return Instance(id: row["id"], completedAt: row["completed_at"])
        }
        try db.execute(sql: "INSERT INTO job_instances (job_name, instance_key, parameters, created_at) VALUES (?, ?, ?, ?)", arguments: [job, key, parameters, now])
        return Instance(id: db.lastInsertedRowID, completedAt: nil)
    }

    static func startExecution(_ db: Database, instanceID: Int64, forced: Bool, owner: String, parameters: String, now: TimestampMicros) throws -> Int64 {
        try db.execute(
            sql: "INSERT INTO job_executions (instance_id, status, forced, owner, parameters, started_at, heartbeat_at) VALUES (?, 'started', ?, ?, ?, ?, ?)",
            arguments: [instanceID, forced, owner, parameters, now, now])
        return db.lastInsertedRowID
    }

    static func finishExecution(_ db: Database, executionID: Int64, status: String, message: String?, summary: Data?, now: TimestampMicros) throws {
        try db.execute(
            sql: "UPDATE job_executions SET status = ?, ended_at = ?, heartbeat_at = ?, exit_message = ?, summary = ? WHERE id = ?",
            arguments: [status, now, now, message, summary.map { String(decoding: $0, as: UTF8.self) }, executionID])
        try db.execute(sql: "UPDATE job_step_executions SET status = ?, ended_at = ? WHERE execution_id = ? AND status = 'started'", arguments: [status, now, executionID])
    }

    static func markAbandoned(_ db: Database, executionID: Int64, message: String, now: TimestampMicros) throws {
        try db.execute(sql: "UPDATE job_executions SET status = 'abandoned', ended_at = ?, exit_message = ? WHERE id = ? AND status = 'started'", arguments: [now, message, executionID])
        try db.execute(sql: "UPDATE job_step_executions SET status = 'abandoned', ended_at = ? WHERE execution_id = ? AND status = 'started'", arguments: [now, executionID])
    }

    static func completeInstance(_ db: Database, instanceID: Int64, now: TimestampMicros) throws {
        try db.execute(sql: "UPDATE job_instances SET completed_at = ? WHERE id = ?", arguments: [now, instanceID])
    }

    /// The latest execution of the instance before `executionID`.
    static func previousExecution(_ db: Database, instanceID: Int64, before executionID: Int64) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT max(id) FROM job_executions WHERE instance_id = ? AND id < ?", arguments: [instanceID, executionID])
    }

    /// The latest state of a step in earlier executions of the instance (for a restart).
    static func latestStep(_ db: Database, instanceID: Int64, step: String, before executionID: Int64) throws -> StepState? {
        try Row.fetchOne(db, sql: """
            SELECT s.* FROM job_step_executions s JOIN job_executions e ON e.id = s.execution_id
            WHERE e.instance_id = ? AND s.step_name = ? AND s.execution_id < ?
            ORDER BY s.execution_id DESC LIMIT 1
            """, arguments: [instanceID, step, executionID]).map(stepState)
    }

    static func stepState(_ row: Row) -> StepState {
        StepState(status: row["status"], read: row["read_count"], written: row["written_count"], skipped: row["skipped_count"], failed: row["failed_count"], chunks: row["chunks"], checkpointVersion: row["checkpoint_version"], checkpoint: row["checkpoint"])
    }

    static func insertStep(_ db: Database, executionID: Int64, step: String, state: StepState, now: TimestampMicros) throws {
        try db.execute(sql: """
            INSERT INTO job_step_executions (execution_id, step_name, status, read_count, written_count, skipped_count, failed_count, chunks, checkpoint_version, checkpoint, started_at, updated_at, ended_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [executionID, step, state.status, state.read, state.written, state.skipped, state.failed, state.chunks, state.checkpointVersion, state.checkpoint, now, now, state.status == "completed" ? now : nil])
    }

    static func saveStep(_ db: Database, executionID: Int64, step: String, state: StepState, now: TimestampMicros) throws {
        try db.execute(sql: """
            UPDATE job_step_executions SET status = ?, read_count = ?, written_count = ?, skipped_count = ?, failed_count = ?, chunks = ?,
                checkpoint_version = ?, checkpoint = ?, updated_at = ?, ended_at = ?
            WHERE execution_id = ? AND step_name = ?
            """, arguments: [state.status, state.read, state.written, state.skipped, state.failed, state.chunks, state.checkpointVersion, state.checkpoint, now, state.status == "completed" ? now : nil, executionID, step])
    }

    static func lastFire(_ db: Database, job: String) throws -> TimestampMicros? {
        try TimestampMicros.fetchOne(db, sql: "SELECT last_fire_at FROM job_schedules WHERE job_name = ?", arguments: [job])
    }

    static func recordFire(_ db: Database, job: String, at fire: TimestampMicros) throws {
        try db.execute(sql: "INSERT INTO job_schedules (job_name, last_fire_at) VALUES (?, ?) ON CONFLICT (job_name) DO UPDATE SET last_fire_at = excluded.last_fire_at", arguments: [job, fire])
    }

    /// Records a fire the scheduler will not run (beyond the catch-up bound).
    static func recordUnrunFire(_ db: Database, job: String, at fire: TimestampMicros, now: TimestampMicros) throws {
        try db.execute(sql: "INSERT INTO job_unrun_fires (job_name, fire_at, recorded_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", arguments: [job, fire, now])
    }

    /// The newest fires left unrun, newest first.
    static func unrunFires(_ db: Database, job: String, limit: Int) throws -> [TimestampMicros] {
        try TimestampMicros.fetchAll(db, sql: "SELECT fire_at FROM job_unrun_fires WHERE job_name = ? ORDER BY fire_at DESC LIMIT ?", arguments: [job, limit])
    }

    /// Deletes finished executions (and their steps) that ended before `cutoff`. Instances
    /// stay, with their completion time, so a purged completed run is still never rerun.
    static func purge(_ db: Database, endedBefore cutoff: TimestampMicros) throws -> (executions: Int, steps: Int) {
        try db.execute(sql: "DELETE FROM job_step_executions WHERE execution_id IN (SELECT id FROM job_executions WHERE status <> 'started' AND ended_at < ?)", arguments: [cutoff])
        let steps = db.changesCount
        try db.execute(sql: "DELETE FROM job_executions WHERE status <> 'started' AND ended_at < ? AND id NOT IN (SELECT execution_id FROM job_locks)", arguments: [cutoff])
        return (db.changesCount, steps)
    }
}
