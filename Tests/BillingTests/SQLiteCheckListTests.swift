import Foundation
import GRDB
import QDSchema
import QDSQL
import Testing
@testable import Billing
@testable import Campaigns
@testable import JobRunner
@testable import Ledger
@testable import Wallet

/// On SQLite every CHECK list of three values or more is stored as comparisons (SQLite built a
/// temporary b-tree for each row it checked against such a list): the same values admitted,
/// the same refused, in a new database and in one written before the change.
@Suite struct SQLiteCheckListTests {
    static let lists: [(table: String, column: String, values: [String])] = [
        ("ledger_transactions", "kind", ["transfer", "hold", "hold_post", "hold_void", "hold_expire", "reversal"]),
        ("ledger_hold_resolutions", "outcome", ["posted", "voided", "expired"]),
        ("outbox", "status", ["pending", "delivered", "dead"]),
        ("kyc_submissions", "status", ["submitted", "approved", "rejected"]),
        ("card_operations", "status", ["pending", "completed", "failed"]),
        ("job_executions", "status", ["started", "completed", "failed", "stopped", "abandoned"]),
        ("job_step_executions", "status", ["started", "completed", "failed", "stopped", "abandoned"]),
        ("bills", "status", ["new", "payable", "paid", "unmatched", "cancelled", "refunded"]),
        ("billing_runs", "status", ["processed", "rejected", "skipped"]),
        ("campaign_allocations", "points_status", ["pending", "vested", "expired", "reversed"]),
        ("campaign_cap_use", "period", ["day", "week", "month", "campaign"]),
    ]

    /// The migrations as they stood before the lists were rewritten.
    static func migratorBefore() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("ledger-v1") { db in try db.execute(sql: LedgerSchema.v1) }
        for migrations in [WalletSchema.migrations, JobSchema.migrations, BillingSchema.migrations, CampaignSchema.migrations] {
            migrator.register(migrations.filter { $0.sqlite == nil })
        }
        return migrator
    }

    /// A database in a folder of its own, removed with the folder (its `-wal` and `-shm`
    /// files with it).
    func database() throws -> (DatabasePool, String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("checks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("checks.sqlite").path
        return (try DatabasePool(path: path), path)
    }

    func stored(_ pool: DatabasePool, _ table: String) throws -> String {
        try pool.read { try String.fetchOne($0, sql: "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", arguments: [table]) ?? "" }
    }

    /// A bill's status as the constraint judges it: admitted or refused.
    func admits(_ pool: DatabasePool, status: String, id: Int) -> Bool {
        do {
            try pool.write { db in
                try db.execute(sql: """
                    INSERT INTO bills (id, biller, bill_id, feed_id, seq, business_date, customer_no, customer_name, district, period, usage, usage_unit, amount_fen, late_fee_fen, due_fen, issue_date, due_date, status, updated_at)
                    VALUES (?, 'QD-WATER', ?, 'QD-WATER/F1', ?, '2026-11-27', '1100234567', '张*', '市南区', '2026-11', '1', 'm3', 100, 0, 100, '2026-11-27', '2026-12-21', ?, 0)
                    """, arguments: [id, "W-\(id)", id, status])
            }
            return true
        } catch {
            return false
        }
    }

    @Test func everyListIsStoredAsComparisonsAndJudgesAsBefore() throws {
        let (pool, path) = try database()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try QDWalletSchema.migrator().migrate(pool)
        for list in Self.lists {
            let text = try stored(pool, list.table)
            let listed = "CHECK (\(list.column) IN (" + list.values.map { "'\($0)'" }.joined(separator: ", ") + "))"
            let compared = "CHECK (" + list.values.map { "\(list.column) = '\($0)'" }.joined(separator: " OR ") + ")"
            #expect(!text.contains(listed) && text.contains(compared), "\(list.table).\(list.column): \(text)")
        }
        let kyc = try stored(pool, "wallets")
        #expect(kyc.contains("CHECK (kyc_class = 1 OR kyc_class = 2 OR kyc_class = 3)"), "\(kyc)")
        // Writing a bill opens no temporary table any more.
        let program = try pool.read { db in
            try String.fetchAll(db, sql: "EXPLAIN INSERT INTO bills (biller, bill_id, feed_id, seq, business_date, customer_no, customer_name, district, period, usage, usage_unit, amount_fen, late_fee_fen, due_fen, issue_date, due_date, status, updated_at) VALUES ('b', 'i', 'f', 1, 'd', 'c', 'n', 'd', 'p', 'u', 'm3', 1, 0, 1, 'd', 'd', 'new', 0)")
        }
        #expect(!program.contains("OpenEphemeral"), "\(program)")
        // The same statuses admitted, any other refused, as the list did.
        try pool.write { db in
            try db.execute(sql: "INSERT INTO feeds (feed_id, biller, business_date, sha256, bytes, ctrl_sum_fen, created_at, ingested_at, execution_id, bills, cancels) VALUES ('QD-WATER/F1', 'QD-WATER', '2026-11-27', x'00', 1, 0, 0, 0, 1, 0, 0)")
        }
        for (index, status) in ["new", "payable", "paid", "unmatched", "cancelled", "refunded"].enumerated() {
            #expect(admits(pool, status: status, id: index + 1), "\(status)")
        }
        for (index, status) in ["bogus", "NEW", "paid ", ""].enumerated() {
            #expect(!admits(pool, status: status, id: index + 100), "\(status.debugDescription)")
        }
        #expect(try pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM bills") } == 6)
    }

    /// A database written before the change: its rows stay, its constraints are rewritten once
    /// (a second run changes nothing), every connection reads the new schema, and the file
    /// passes SQLite's integrity check.
    @Test func aDatabaseOfBeforeIsRewrittenInPlaceOnce() throws {
        let (pool, path) = try database()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try Self.migratorBefore().migrate(pool)
        #expect(try stored(pool, "bills").contains("CHECK (status IN ('new', 'payable', 'paid', 'unmatched', 'cancelled', 'refunded'))"))
        try pool.write { db in
            try db.execute(sql: "INSERT INTO outbox (message_id, wallet_id, kind, urgent, payload, created_at, not_before) VALUES ('m1', NULL, 'notice', 0, '{}', 1, 1)")
        }
        let before = try pool.read { try Int.fetchOne($0, sql: "PRAGMA schema_version") ?? 0 }
        // Another connection, opened before the rewrite, as another process would hold.
        let other = try DatabaseQueue(path: path)
        try QDWalletSchema.migrator().migrate(pool)
        // Each module's rewrite moved the version on, so that every connection reads again.
        let after = try pool.read { try Int.fetchOne($0, sql: "PRAGMA schema_version") ?? 0 }
        #expect(after > before)
        #expect(try stored(pool, "outbox").contains("CHECK (status = 'pending' OR status = 'delivered' OR status = 'dead')"))
        #expect(try other.read { try String.fetchOne($0, sql: "SELECT sql FROM sqlite_schema WHERE name = 'outbox'") ?? "" }.contains("status = 'pending' OR"))
        #expect(throws: (any Error).self) {
            try other.write { try $0.execute(sql: "UPDATE outbox SET status = 'lost' WHERE message_id = 'm1'") }
        }
        try other.write { try $0.execute(sql: "UPDATE outbox SET status = 'delivered' WHERE message_id = 'm1'") }
        #expect(try pool.read { try String.fetchOne($0, sql: "SELECT status FROM outbox WHERE message_id = 'm1'") } == "delivered")
        #expect(try pool.read { try String.fetchAll($0, sql: "PRAGMA integrity_check") } == ["ok"])
        // Again: nothing left to rewrite, nothing changes.
        let texts = try pool.read { try String.fetchAll($0, sql: "SELECT coalesce(sql, name) FROM sqlite_schema ORDER BY name") }
        try pool.write { db in try SQLiteCheckLists.rewrite(db, [SQLiteCheckLists.List("outbox", "status", ["'pending'", "'delivered'", "'dead'"])]) }
        #expect(try pool.read { try String.fetchAll($0, sql: "SELECT coalesce(sql, name) FROM sqlite_schema ORDER BY name") } == texts)
        #expect(try pool.read { try Int.fetchOne($0, sql: "PRAGMA schema_version") ?? 0 } == after)
    }
}
