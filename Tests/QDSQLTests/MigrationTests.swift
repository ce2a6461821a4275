import Foundation
import GRDB
import QDSQL
import Testing

/// SQLite's upgrade steps: which of them GRDB follows with its check of every foreign key.
@Suite struct MigrationTests {
    @Test(arguments: [
        ("CREATE INDEX a ON t(x)", true),
        ("CREATE UNIQUE INDEX bills_by_transaction ON bills(transaction_id) WHERE transaction_id IS NOT NULL", true),
        ("create index a on t(x);\n  DROP INDEX b;\n", true),
        ("-- the day's reads\nCREATE INDEX a ON t(effective_at, id)", true),
        ("CREATE INDEX a ON t(x); UPDATE t SET x = 1", false),
        ("ALTER TABLE t ADD COLUMN y INTEGER", false),
        ("CREATE TABLE t2 (id INTEGER PRIMARY KEY)", false),
        ("CREATE INDEXES a ON t(x)", false),
        ("", false),
    ])
    func aStepBuildsIndexesOnlyWhenEveryStatementDoes(sql: String, indexesOnly: Bool) {
        #expect(SQLMigration("m", sql).buildsIndexesOnly == indexesOnly)
    }

    @Test func aStepOfItsOwnOnSQLiteIsNeverTakenForIndexesOnly() {
        #expect(!SQLMigration("m", postgres: "CREATE INDEX a ON t(x)", sqlite: { _ in }).buildsIndexesOnly)
    }

    /// A database holding a row whose foreign key names nothing (written with the keys off):
    /// an index step is applied without GRDB's check of every foreign key (it reads every
    /// row of every table that has one, an upgrade's cost that grows with the months kept),
    /// and any other step is still refused by that check.
    @Test func onlyAStepThatBuildsIndexesSkipsTheCheckOfEveryForeignKey() throws {
        let queue = try DatabaseQueue()
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: """
                CREATE TABLE parents (id INTEGER PRIMARY KEY);
                CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parents(id));
                PRAGMA foreign_keys = OFF;
                INSERT INTO children (id, parent_id) VALUES (1, 42);
                PRAGMA foreign_keys = ON;
                """)
        }
        var migrator = DatabaseMigrator()
        migrator.register([SQLMigration("children-by-parent", "CREATE INDEX children_by_parent ON children(parent_id)")])
        try migrator.migrate(queue)
        #expect(try queue.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations") } == ["children-by-parent"])
        #expect(try queue.read { try Bool.fetchOne($0, sql: "SELECT count(*) = 1 FROM sqlite_master WHERE name = 'children_by_parent'") } == true)

        migrator.register([SQLMigration("parents-named", "ALTER TABLE parents ADD COLUMN name TEXT")])
        #expect(throws: DatabaseError.self) { try migrator.migrate(queue) }
        #expect(try queue.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations") } == ["children-by-parent"])
    }
}
