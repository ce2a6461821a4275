import Foundation
import Ledger

/// Downloaded feeds are kept, rejected ones of any size included, for a number of days, then
/// removed by `jobs purge`: the folder of downloads never grows without bound, and nothing a
/// reconciliation of the kept days could ask for is gone.
public enum FeedRetention {
    public struct Purged: Sendable, Codable {
        public var files: Int
        public var bytes: Int64
    }

    /// Removes the regular files under `workDirectory/<BILLER>/` last written before
    /// `cutoff`; folders, links and newer files stay.
    public static func purge(workDirectory: String, olderThan cutoff: TimestampMicros) throws -> Purged {
        var purged = Purged(files: 0, bytes: 0)
        let manager = FileManager.default
        guard let billers = try? manager.contentsOfDirectory(atPath: workDirectory) else { return purged }
        for biller in billers.sorted() {
            let folder = (workDirectory as NSString).appendingPathComponent(biller)
            var isFolder: ObjCBool = false
            guard manager.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else { continue }
            for name in try manager.contentsOfDirectory(atPath: folder) {
                let path = (folder as NSString).appendingPathComponent(name)
                var info = stat()
                guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
                let modified = Int64(info.st_mtim.tv_sec) * 1_000_000 + Int64(info.st_mtim.tv_nsec) / 1_000
                guard modified < cutoff else { continue }
                try manager.removeItem(atPath: path)
                purged.files += 1
                purged.bytes += Int64(info.st_size)
            }
        }
        return purged
    }
}
