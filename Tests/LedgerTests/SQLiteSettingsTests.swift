import Foundation
import GRDB
import Testing
@testable import Ledger

/// What every connection to a SQLite database is opened with, read back from the
/// connections themselves (sqlite.org/pragma.html).
@Suite struct SQLiteSettingsTests {
    @Test func everyConnectionIsOpenedWithTheProjectsSettings() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-settings-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let pool = try SQLiteDatabase.open(path: directory.appendingPathComponent("settings.sqlite").path, migrator: SQLiteDatabase.ledgerMigrator())
        func settings(_ db: Database) throws -> [String: String] {
            var found: [String: String] = [:]
            for name in ["threads", "cache_size", "journal_mode", "foreign_keys"] {
                found[name] = try String.fetchOne(db, sql: "PRAGMA \(name)")
            }
            return found
        }
        let expected = ["threads": "1", "cache_size": "-2048", "journal_mode": "wal", "foreign_keys": "1"]
        // The writer, which also commits with synchronous=FULL (2)...
        #expect(try pool.writeWithoutTransaction { try settings($0) } == expected)
        #expect(try pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 2)
        // ...and a reader (the payment reports' queries run on one).
        #expect(try pool.read { try settings($0) } == expected)
    }
}
