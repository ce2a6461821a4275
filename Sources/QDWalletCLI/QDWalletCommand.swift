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
            UtilityCommand.self, BillersCommand.self, BillsCommand.self, PayBillCommand.self, CampaignCommand.self, ReportCommand.self, NotifyCommand.self, KeysCommand.self,
            JobsCommand.self, SchedulerCommand.self, LedgerCommand.self, DemoCommand.self,
        ])

    public init() {}

    /// Parses the arguments, runs the command and exits with the code of `cli.md`.
    public static func runMain(_ arguments: [String]? = nil) -> Never {
        // Everything this process creates (the database's -wal and -shm files, report copies,
        // --out files, downloaded feeds) is readable by its owner only.
        umask(0o077)
        bootstrapLogging()
        let wantsJSON = (arguments ?? Array(CommandLine.arguments.dropFirst())).contains("--json")
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            Foundation.exit(ExitStatus.success.rawValue)
        } catch let exit as ExitCode {
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
            Foundation.exit(failure.status.rawValue)
        }
    }
}

/// Structured log lines on stderr; the level from QDWALLET_LOG_LEVEL (default info).
func bootstrapLogging() {
    let level = ProcessInfo.processInfo.environment["QDWALLET_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}
