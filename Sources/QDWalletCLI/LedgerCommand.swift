import ArgumentParser
import Ledger

/// `qdwallet ledger ...`: verification of the shared ledger.
struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Inspect and verify the ledger.",
        subcommands: [Check.self])

    /// `qdwallet ledger check`: exit 0 when everything holds, 3 with the violations listed.
    struct Check: ParsableCommand, ReadOnlyCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify the ledger: assets sum to zero, balances equal their entries, rules hold, the hash chain is intact.",
            discussion: "Exits 3 and lists the violations when anything is off.")

        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("expect-head"), help: "SEQ:HASH, an anchor from a payment report or a reconciliation: prove the journal still holds it.")
        var expectHead: String?

        func validate() throws {
            if let expectHead, ChainHead.parse(anchor: expectHead) == nil {
                throw ValidationError("--expect-head is SEQ:HASH, the sequence number and 64 hex digits, as a payment report's LedgerHead")
            }
        }

        struct Result: Encodable {
            var head: String
            var ok: Bool
            var violations: [LedgerViolation]
            var violationCount: Int
            var accounts: Int
            var transactions: Int
            var entries: Int
            var trialBalance: [TrialBalanceLine]
        }

        func run() throws {
            let ledger = try AppDatabase.openLedger(path: global.databasePath, mode: .existingForReading)
            let report = try expectHead.map { try ledger.check(expectingHead: $0) } ?? ledger.check()
            let result = Result(
                head: report.head,
                ok: report.ok, violations: report.violations, violationCount: report.violationCount,
                accounts: report.accounts, transactions: report.transactions, entries: report.entries,
                trialBalance: report.trialBalance)
            Output(json: global.json).emit(result) {
                var lines = [
                    report.ok ? "ledger check: ok" : "ledger check: \(report.violationCount) violation(s)",
                    "  accounts \(report.accounts), transactions \(report.transactions), entries \(report.entries)",
                    "  head \(report.head)",
                ]
                for line in report.trialBalance {
                    let show: (Int64) -> String = { line.asset == .cny ? Money(fen: $0).yuanString : String($0) }
                    lines.append("  \(line.asset.rawValue): debits \(show(line.debitsPosted))  credits \(show(line.creditsPosted))  pending \(show(line.debitsPending))/\(show(line.creditsPending))")
                }
                for violation in report.violations {
                    lines.append("  ! \(violation)")
                }
                if report.violations.count < report.violationCount {
                    lines.append("  ... and \(report.violationCount - report.violations.count) more")
                }
                return lines.joined(separator: "\n")
            }
            if !report.ok {
                throw ExitCode(ExitStatus.breaks.rawValue)
            }
        }
    }
}
