import ArgumentParser
import Billing
import Campaigns
import Feeds
import JobRunner
import Ledger
import QDConfig
import Wallet

/// The exit codes operators script against (`cli.md`): fixed, never renumbered.
public enum ExitStatus: Int32, Sendable {
    case success = 0
    /// The operation was refused: insufficient funds, locked, limit, invalid input.
    case refused = 1
    /// The command line itself was wrong.
    case usage = 2
    /// A report or check found breaks.
    case breaks = 3
    /// An infrastructure fault: database locked or unreadable, feed unreachable.
    case infrastructure = 4
}

/// An error the CLI reports with a code, a message and an exit status.
public struct CLIFailure: Error, Sendable, CustomStringConvertible {
    public var status: ExitStatus
    /// A stable snake_case name for scripts.
    public var code: String
    public var message: String

    public init(_ status: ExitStatus, code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// Classifies any error thrown by the modules below the CLI.
    static func from(_ error: any Error) -> CLIFailure {
        switch error {
        case let failure as CLIFailure:
            return failure
        case let refusal as LedgerRefusal:
            return CLIFailure(.refused, code: refusal.rawValue, refusal.explanation)
        case let refusal as WalletRefusal:
            return CLIFailure(.refused, code: refusal.rawValue, refusal.explanation)
        case let refusal as QRRefusal:
            return CLIFailure(.refused, code: refusal.refusal.rawValue, refusal.description)
        case let wallet as WalletError:
            // A missing or wrong data key is the environment's fault, like an unreachable feed.
            return CLIFailure(.infrastructure, code: wallet.code.rawValue, wallet.message)
        case let refusal as JobRefusal:
            switch refusal {
            case .alreadyRunning:
                return CLIFailure(.infrastructure, code: "already_running", refusal.description)
            case .unknownJob:
                return CLIFailure(.usage, code: "unknown_job", refusal.description)
            case .unknownParameter:
                return CLIFailure(.usage, code: "unknown_parameter", refusal.description)
            case .invalidParameter:
                return CLIFailure(.usage, code: "invalid_parameter", refusal.description)
            default:
                return CLIFailure(.refused, code: "job_refused", refusal.description)
            }
        case let fault as BillingError:
            return CLIFailure(.infrastructure, code: fault.code.rawValue, fault.message)
        case let refusal as BillingRefusal:
            return CLIFailure(.refused, code: refusal.rawValue, refusal.explanation)
        case let feed as FeedError:
            return CLIFailure(.infrastructure, code: feed.code.rawValue, feed.description)
        case let campaign as CampaignError:
            return CLIFailure(.refused, code: "invalid_campaign", campaign.description)
        case let config as ConfigError:
            return CLIFailure(.refused, code: "invalid_configuration", config.description)
        case let parse as MoneyParseError:
            return CLIFailure(.refused, code: "invalid_amount", parse.description)
        case let ledger as LedgerError:
            switch ledger.code {
            case .storage, .busy, .corrupt, .databaseNotFound, .databaseNewer:
                return CLIFailure(.infrastructure, code: ledger.code.rawValue, ledger.description)
            case .batchTooLarge, .accountCodeTaken, .accountNotFound, .invalidAccount:
                return CLIFailure(.refused, code: ledger.code.rawValue, ledger.description)
            }
        default:
            return CLIFailure(.infrastructure, code: "internal", String(describing: error))
        }
    }
}
