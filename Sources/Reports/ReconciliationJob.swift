import Foundation
import JobRunner
import Ledger
import QDSQL

/// `reconciliation --date D`: the day's reconciliation in every format, under
/// `reports/reconciliation/`; exit 3 when it has breaks.
public enum ReconciliationJob {
    public static func implementation(directory: String) -> JobImplementation {
        JobImplementation(
            name: "reconciliation",
            steps: [Step(directory: directory)],
            summary: { db, context in
                try JobQueries.checkpoint(db, executionID: context.executionID, step: "reconcile")
            },
            assess: { db, context in
                let date = try context.date("date")
                return try ReconStore(db).openCount(asOf: date) > 0 ? .breaks : .clean
            })
    }

    struct Step: TypedJobStep {
        struct Checkpoint: Codable, Sendable { var breaks: Int; var files: [String] }
        let directory: String
        let name = "reconcile"
        /// The ledger check and the day's figures read one state on a read snapshot, while
        /// payments go on: the chunk's transaction only records the breaks.
        var readsBeforeChunk: Bool { true }
        let checkpointVersion = 1
        func start(_ context: JobContext) throws -> Checkpoint { Checkpoint(breaks: -1, files: []) }
        func read(_ context: JobContext, at checkpoint: Checkpoint, db: any SQLConnection, ledger: any LedgerReading) throws -> Reconciliation.Reading? {
            try Reconciliation.read(db, ledger: ledger, date: try context.date("date"), stopWhen: { context.stop.requested })
        }
        func chunk(_ context: JobContext, db: any SQLConnection, ledger: any LedgerWriting, from checkpoint: Checkpoint) throws -> (Checkpoint, ChunkCounts) {
            let date = try context.date("date")
            guard let reading = context.prepared(Reconciliation.Reading.self), reading.date == date else {
                throw JobStepNotRead(step: name)
            }
            let reconciliation = try Reconciliation.record(reading, db)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            var files: [String] = []
            for (suffix, text) in [("txt", reconciliation.text), ("csv", reconciliation.csv), ("json", reconciliation.json), ("html", reconciliation.html)] {
                let path = (directory as NSString).appendingPathComponent("reconciliation-\(date.compact).\(suffix)")
                try AtomicFile.write(text, to: path)
                files.append(path)
            }
            return (Checkpoint(breaks: reconciliation.breaks.count, files: files), ChunkCounts(read: reconciliation.billers.count, written: files.count, failed: reconciliation.breaks.count, done: true))
        }
    }
}
