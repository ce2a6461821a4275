import GRDB
import Ledger

/// The reconciliation's breaks, and the only code that names their table.
struct ReconStore {
    let db: Database

    init(_ db: Database) { self.db = db }

    /// Opens a break first seen on `date`, or keeps an open one open (and reopens a resolved one).
    func record(key: String, category: String, subject: String, detail: String, on date: ShanghaiCalendar.Date) throws {
        try db.execute(sql: """
            INSERT INTO recon_breaks (break_key, category, subject, detail, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (break_key) DO UPDATE SET detail = excluded.detail, last_seen = max(last_seen, excluded.last_seen), resolved = NULL
            """, arguments: [key, category, subject, detail, date.iso, date.iso])
    }

    /// Resolves, as of `date`, every open break first seen by then whose key is not in `found`.
    func resolve(except found: Set<String>, on date: ShanghaiCalendar.Date) throws {
        for row in try Row.fetchAll(db, sql: "SELECT id, break_key FROM recon_breaks WHERE resolved IS NULL AND first_seen <= ?", arguments: [date.iso]) where !found.contains(row[1]) {
            try db.execute(sql: "UPDATE recon_breaks SET resolved = ? WHERE id = ?", arguments: [date.iso, row[0] as Int64])
        }
    }

    struct OpenBreak {
        var category: String
        var subject: String
        var detail: String
        var firstSeen: String
    }

    /// The breaks open as of `date`, oldest first.
    func open(asOf date: ShanghaiCalendar.Date) throws -> [OpenBreak] {
        try Row.fetchAll(db, sql: "SELECT category, subject, detail, first_seen FROM recon_breaks WHERE resolved IS NULL AND first_seen <= ? ORDER BY first_seen, category, subject", arguments: [date.iso])
            .map { OpenBreak(category: $0[0], subject: $0[1], detail: $0[2], firstSeen: $0[3]) }
    }

    func openCount(asOf date: ShanghaiCalendar.Date) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM recon_breaks WHERE resolved IS NULL AND first_seen <= ?", arguments: [date.iso]) ?? 0
    }
}
