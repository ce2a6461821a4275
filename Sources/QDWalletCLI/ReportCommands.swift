import ArgumentParser
import Foundation
import Ledger
import Reports

/// `qdwallet report reconciliation`
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Reports for finance.", subcommands: [ReconciliationReport.self])

    struct ReconciliationReport: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reconciliation",
            abstract: "Per biller: feed totals, bills by outcome, the payment report and the ledger; campaigns; trial balance; breaks with their age.",
            discussion: "Exit 3 when there are open breaks.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The business day (YYYY-MM-DD).") var date: String
        @Option(help: "text, csv, json or html (--json means json).") var format: String = "text"
        @Option(help: "Write to this file instead of stdout.") var out: String?

        func validate() throws {
            guard ["text", "csv", "json", "html"].contains(format) else { throw ValidationError("--format is text, csv, json or html") }
        }

        func run() throws {
            guard let day = ShanghaiCalendar.Date(iso: date) else {
                throw CLIFailure(.refused, code: "invalid_date", "invalid date \"\(date.prefix(20))\": write it as YYYY-MM-DD")
            }
            let store = try AppDatabase.openStore(path: global.databasePath)
            try store.sealPending()
            let reconciliation = try Reconciliation.run(store, date: day)
            let chosen = global.json ? "json" : format
            let text = switch chosen {
            case "csv": reconciliation.csv
            case "json": reconciliation.json
            case "html": reconciliation.html
            default: reconciliation.text
            }
            if let out {
                try AtomicFile.write(text, to: out)
                FileHandle.standardError.write(Data("reconciliation for \(day.iso) written to \(out): \(reconciliation.breaks.count) break(s)\n".utf8))
            } else {
                print(text)
            }
            if !reconciliation.breaks.isEmpty { throw ExitCode(ExitStatus.breaks.rawValue) }
        }
    }
}
