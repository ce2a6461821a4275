import ArgumentParser
import Foundation
import Logging

/// The `qdwallet` operator command line.
public struct QDWalletCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "qdwallet",
        abstract: "The back office of Qingdao's digital wallet: the ledger, wallet operations and the nightly jobs.",
        discussion: """
            Exit codes: 0 success; 1 refused (the message says why); 2 usage error; \
            3 a report or check found breaks; 4 infrastructure fault.
            """,
        subcommands: [
            InitCommand.self, WalletCommand.self, CardCommand.self, TopUpCommand.self, WithdrawCommand.self,
            MerchantCommand.self, PayCommand.self, TransferCommand.self, BalanceCommand.self, HistoryCommand.self,
            UtilityCommand.self, BillersCommand.self, BillsCommand.self, AuditCommand.self, PayBillCommand.self, CampaignCommand.self, ReportCommand.self, NotifyCommand.self, KeysCommand.self,
            JobsCommand.self, SchedulerCommand.self, LedgerCommand.self, DemoCommand.self, ServeCommand.self,
        ])

    public init() {}

    /// Parses the arguments, runs the command and exits with the code of `cli.md`.
    public static func runMain(_ arguments: [String]? = nil) -> Never {
        // Everything this process creates (the database's -wal and -shm files, report copies,
        // --out files, downloaded feeds) is readable by its owner only.
        umask(0o077)
        bootstrapLogging()
        let given = arguments ?? Array(CommandLine.arguments.dropFirst())
        let wantsJSON = given.contains("--json")
        var databasePath: String?
        do {
            var command = try parseAsRoot(arguments)
            // Every command that may change something is written to the audit trail.
            if !(command is ReadOnlyCommand) {
                AuditSession.begin(command: commandWords(given), arguments: given)
                databasePath = try? GlobalOptions.parse(databaseArguments(given)).databasePath
            }
            try command.run()
            Foundation.exit(ExitStatus.success.rawValue)
        } catch let exit as ExitCode {
            if exit.rawValue != 0, let databasePath {
                AuditSession.recordFailure(CLIFailure(ExitStatus(rawValue: exit.rawValue) ?? .infrastructure, code: "exit_\(exit.rawValue)", ""), databasePath: databasePath)
            }
            Foundation.exit(exit.rawValue)
        } catch {
            // Help, version and usage errors come from the parser (or from a command group's
            // default `run`); everything else from the modules below.
            let parserCode = exitCode(for: error)
            if parserCode == .success {
                print(fullMessage(for: error))
                Foundation.exit(ExitStatus.success.rawValue)
            }
            let failure = parserCode == .validationFailure
                ? CLIFailure(.usage, code: "usage", fullMessage(for: error))
                : CLIFailure.from(error)
            Output.failure(failure, json: wantsJSON)
            if let databasePath { AuditSession.recordFailure(failure, databasePath: databasePath) }
            Foundation.exit(failure.status.rawValue)
        }
    }

    /// The command's words (`wallet freeze`), before its first option.
    static func commandWords(_ arguments: [String]) -> String {
        arguments.prefix { !$0.hasPrefix("-") }.prefix(3).joined(separator: " ")
    }

    /// Just `--db` from the arguments, for the audit trail to find the database.
    static func databaseArguments(_ arguments: [String]) -> [String] {
        guard let index = arguments.firstIndex(of: "--db"), index + 1 < arguments.count else { return [] }
        return ["--db", arguments[index + 1]]
    }
}

/// Structured log lines on stderr; the level from QDWALLET_LOG_LEVEL (default info).
func bootstrapLogging() {
    let level = QDEnvironment.process.logLevel
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}
