import ArgumentParser
import Billing
import Foundation
import Ledger

/// `qdwallet billers`: registers the billers of Jobs/billers.toml and lists them; a biller
/// that left the file is reported and kept, never deleted.
struct BillersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "billers",
        abstract: "Register the billers of Jobs/billers.toml and list every registered biller (one no longer in the file is kept and reported).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var jobs: JobsOptions

    func run() throws {
        guard let billers = try Self.configured(jobs) else {
            throw CLIFailure(.usage, code: "no_billers_file", "\((jobs.path as NSString).appendingPathComponent("billers.toml")) does not exist: give --jobs-dir or QDWALLET_JOBS_DIR")
        }
        let ledger = try AppDatabase.openLedger(path: global.databasePath)
        _ = try SystemAccounts.ensure(in: ledger)
        let sync = try Self.sync(billers, ledger: ledger)
        Output(json: global.json).emit(sync) { Self.text(sync).joined(separator: "\n") }
    }

    /// The billers of the jobs folder's billers.toml, or nil when there is no such file.
    static func configured(_ jobs: JobsOptions) throws -> [Biller]? {
        let path = (jobs.path as NSString).appendingPathComponent("billers.toml")
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try Biller.load(path: path)
    }

    /// Registers `billers` in one transaction.
    static func sync(_ billers: [Biller], ledger: Ledger) throws -> BillerSync {
        guard let store = ledger.store as? SQLLedgerStore else {
            throw CLIFailure(.infrastructure, code: "internal", "billers need qdwallet's own database")
        }
        return try store.transaction { db, tx in try Biller.register(billers, db: db, ledger: tx, clock: ledger.clock) }
    }

    static func text(_ sync: BillerSync) -> [String] {
        var lines = sync.billers.map { line in
            "  biller \(line.code)  \(line.name)  \(line.category)  account \(line.accountID)  \(line.status.rawValue.replacingOccurrences(of: "_", with: " "))"
        }
        for line in sync.notInFile {
            lines.append("warning: biller \(line.code) is registered but no longer in billers.toml; it is kept with its bills and money")
        }
        return lines
    }
}
