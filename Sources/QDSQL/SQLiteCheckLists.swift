import GRDB

/// SQLite (3.40, measured) checks a CHECK constraint whose `IN` list holds three values or more
/// through a temporary b-tree that it opens, fills and clears again for every row written (the
/// constraint's code has no once-a-statement guard, as a query's `IN` list has): a page zeroed
/// and a few inserts a row and constraint, about 7% of a nightly run's instructions, most of it
/// in the bills' status. The same constraint written as comparisons (`x = 'a' OR x = 'b' OR
/// ...`) is a few comparisons, and admits the same values: a NULL makes either NULL, which a
/// CHECK does not refuse.
///
/// A table's CHECK constraints are part of its stored `CREATE TABLE` text, which `ALTER TABLE`
/// cannot change. SQLite's documented way to change a constraint that no stored row has to be
/// rewritten for (lang_altertable.html, "Making Other Kinds Of Table Schema Changes") edits
/// that text in `sqlite_schema` under `PRAGMA writable_schema` and increments `schema_version`
/// in the same transaction, so that every connection reads the schema again.
public enum SQLiteCheckLists {
    /// A CHECK constraint `column IN (values)` as a module shipped it.
    public struct List: Sendable {
        public var table: String
        public var column: String
        /// SQL literals, as written in the constraint: `'new'`, `1`.
        public var values: [String]

        public init(_ table: String, _ column: String, _ values: [String]) {
            self.table = table
            self.column = column
            self.values = values
        }

        /// The constraint as shipped.
        public var listed: String { "CHECK (\(column) IN (\(values.joined(separator: ", "))))" }
        /// The same constraint as comparisons.
        public var compared: String { "CHECK (" + values.map { "\(column) = \($0)" }.joined(separator: " OR ") + ")" }
    }

    /// A migration that writes `lists` as comparisons on SQLite, and does nothing on
    /// PostgreSQL (which checks a list as `= ANY (ARRAY[...])`, row by row, without a table).
    public static func migration(_ name: String, _ lists: [List]) -> SQLMigration {
        SQLMigration(name, postgres: "SELECT 1", sqlite: { db in try rewrite(db, lists) })
    }

    /// Writes each constraint of `lists` found as shipped (once in its table's text) as
    /// comparisons. One written otherwise is left as it is, and so is every one when SQLite
    /// refuses to edit its schema (a library or connection in defensive mode): the constraint
    /// holds either way; only the speed of writing depends on it.
    public static func rewrite(_ db: Database, _ lists: [List]) throws {
        var changed: [String: String] = [:]
        for list in lists {
            let text: String
            if let edited = changed[list.table] {
                text = edited
            } else {
                guard let stored = try String.fetchOne(db, sql: "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", arguments: [list.table]) else { continue }
                text = stored
            }
            guard text.components(separatedBy: list.listed).count == 2 else { continue }
            changed[list.table] = text.replacingOccurrences(of: list.listed, with: list.compared)
        }
        guard !changed.isEmpty else { return }
        let version = try Int.fetchOne(db, sql: "PRAGMA schema_version") ?? 0
        do {
            try db.inSavepoint {
                try db.execute(sql: "PRAGMA writable_schema = ON")
                defer { try? db.execute(sql: "PRAGMA writable_schema = OFF") }
                for (table, text) in changed.sorted(by: { $0.key < $1.key }) {
                    try db.execute(sql: "UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = ?", arguments: [text, table])
                }
                try db.execute(sql: "PRAGMA schema_version = \(version + 1)")
                return .commit
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_ERROR || error.resultCode == .SQLITE_READONLY || error.resultCode == .SQLITE_AUTH {
            // Refused (defensive mode): the constraints stay as shipped.
        }
        db.clearSchemaCache()
    }
}
