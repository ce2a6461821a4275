import Ledger
import QDSQL

/// The reconciliation's breaks, and the only code that names their table. Written once
/// against the SQL layer.
struct ReconStore {
    let sql: any SQLConnection

    init(_ connection: any SQLConnection) { sql = connection }

    /// Opens a break first seen on `date`, or keeps an open one open (and reopens a resolved one).
    func record(key: String, category: String, subject: String, detail: String, on date: ShanghaiCalendar.Date) throws {
        try sql.execute("""
            INSERT INTO recon_breaks (break_key, category, subject, detail, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (break_key) DO UPDATE SET detail = excluded.detail, last_seen = \(sql.dialect.greatest("recon_breaks.last_seen", "excluded.last_seen")), resolved = NULL
            """, key, category, subject, detail, date.iso, date.iso)
    }

    /// Resolves, as of `date`, every open break first seen by then whose key is not in `found`.
    func resolve(except found: Set<String>, on date: ShanghaiCalendar.Date) throws {
        let open = try sql.all("SELECT id, break_key FROM recon_breaks WHERE resolved IS NULL AND first_seen <= ?", [date.iso]) { (try $0.int64(0), try $0.text(1)) }
        for (id, key) in open where !found.contains(key) {
            try sql.execute("UPDATE recon_breaks SET resolved = ? WHERE id = ?", date.iso, id)
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
        try sql.all("SELECT category, subject, detail, first_seen FROM recon_breaks WHERE resolved IS NULL AND first_seen <= ? ORDER BY first_seen, category, subject", [date.iso]) {
            OpenBreak(category: try $0.text(0), subject: try $0.text(1), detail: try $0.text(2), firstSeen: try $0.text(3))
        }
    }

    func openCount(asOf date: ShanghaiCalendar.Date) throws -> Int {
        Int(try sql.int64("SELECT count(*) FROM recon_breaks WHERE resolved IS NULL AND first_seen <= ?", [date.iso]) ?? 0)
    }
}
