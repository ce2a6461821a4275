import ArgumentParser
import Foundation

/// The `qdwallet` operator command line.
public struct QDWalletCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "qdwallet",
        abstract: "The back office of Qingdao's digital wallet: the ledger, wallet operations and the nightly jobs.",
        discussion: """
            Exit codes: 0 success; 1 refused (the message says why); 2 usage error; \
            3 a report or check found breaks; 4 infrastructure fault.
            """,
        subcommands: [InitCommand.self, LedgerCommand.self])

    public init() {}

    /// Parses the arguments, runs the command and exits with the code of `cli.md`.
    public static func runMain(_ arguments: [String]? = nil) -> Never {
        let wantsJSON = (arguments ?? Array(CommandLine.arguments.dropFirst())).contains("--json")
        do {
            var command = try parseAsRoot(arguments)
            do {
                try command.run()
            } catch let exit as ExitCode {
                Foundation.exit(exit.rawValue)
            } catch {
                let failure = CLIFailure.from(error)
                Output.failure(failure, json: wantsJSON)
                Foundation.exit(failure.status.rawValue)
            }
            Foundation.exit(ExitStatus.success.rawValue)
        } catch {
            // Parsing failed, or --help / --version asked for.
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let failure = CLIFailure(.usage, code: "usage", fullMessage(for: error))
            Output.failure(failure, json: wantsJSON)
            Foundation.exit(ExitStatus.usage.rawValue)
        }
    }
}
