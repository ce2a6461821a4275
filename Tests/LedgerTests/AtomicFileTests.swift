import Foundation
import Ledger
import Testing

/// Reports and statements are written whole or not at all, readable by their owner only,
/// and nothing is left beside them (Foundation's atomic write, used before, left an empty
/// `TemporaryDirectory.*` folder in the temporary directory on Linux after every write).
@Suite struct AtomicFileTests {
    static func leftovers(_ folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
    }

    @Test func aFileIsWrittenWholeAndPrivateAndNothingIsLeft() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-atomic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("reconciliation-20261127.csv").path
        try AtomicFile.write("biller,paid\nQD-WATER,4610\n", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "biller,paid\nQD-WATER,4610\n")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // Replaced whole: the new text, shorter than the old, with nothing of the old after it.
        let bytes = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0) })
        try AtomicFile.write(bytes, to: path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == bytes)
        try AtomicFile.write("短\n", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "短\n")
        try AtomicFile.write(Data(), to: path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).isEmpty)
        #expect(try Self.leftovers(folder.path) == ["reconciliation-20261127.csv"])
    }

    /// A write that cannot be made (no such folder; a folder where the file would be) throws
    /// a clear error naming the path, leaves what was there as it was, and nothing beside it.
    @Test func aWriteThatFailsLeavesWhatWasThere() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-atomic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let missing = folder.appendingPathComponent("no-such-folder/report.txt").path
        #expect {
            try AtomicFile.write("x", to: missing)
        } throws: { error in
            "\(error)".contains(missing)
        }
        let occupied = folder.appendingPathComponent("statements").path
        try FileManager.default.createDirectory(atPath: occupied + "/kept", withIntermediateDirectories: true)
        #expect(throws: LedgerError.self) { try AtomicFile.write("x", to: occupied) }
        #expect(try Self.leftovers(occupied) == ["kept"])
        #expect(try Self.leftovers(folder.path) == ["statements"])
    }
}
