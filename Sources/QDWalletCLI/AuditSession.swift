import ArgumentParser
import Foundation
import GRDB
import Ledger
import Synchronization
import Wallet
import QDSQL

/// A command that changes nothing: it is not written to the audit trail.
protocol ReadOnlyCommand {}

/// The command this process runs, for the audit trail: written once, in the first write
/// transaction the command commits (so it commits with the change), and a closing entry
/// when the command ends refused or failed.
enum AuditSession {
    struct State: Sendable {
        var operatorName: String
        var command: String
        var arguments: String
        var walletPhone: String?
        var written = false
    }

    private static let state = Mutex<State?>(nil)

    /// Starts the session of a command that may change something.
    static func begin(command: String, arguments: [String], environment: QDEnvironment = .process) {
        state.withLock { $0 = State(operatorName: operatorName(environment), command: command, arguments: mask(arguments).joined(separator: " "), walletPhone: walletPhone(arguments)) }
    }

    /// The hook a store calls before each write transaction commits.
    static let beforeCommit: @Sendable (any SQLConnection) throws -> Void = { db in
        guard var current = state.withLock({ $0 }), !current.written else { return }
        try AuditStore.append(db, at: SystemClock().nowMicros(), operator: current.operatorName, command: current.command, arguments: current.arguments, outcome: "ok", walletPhone: current.walletPhone)
        current.written = true
        state.withLock { $0 = current }
    }

    /// After a command failed: its outcome, in a transaction of its own.
    static func recordFailure(_ failure: CLIFailure, databasePath: String) {
        guard let current = state.withLock({ $0 }) else { return }
        guard let store = try? AppDatabase.openStore(path: databasePath) else { return }
        store.setBeforeCommit(nil)
        let word = switch failure.status {
        case .refused: "refused"
        case .usage: "usage"
        case .breaks: "breaks"
        default: "failed"
        }
        let outcome = word + ": " + failure.code
        _ = try? store.transaction { db, _ in
            try AuditStore.append(db, at: SystemClock().nowMicros(), operator: current.operatorName, command: current.command, arguments: current.arguments, outcome: outcome, walletPhone: current.walletPhone)
        }
    }

    /// `QDWALLET_OPERATOR`, else the user this process runs as.
    static func operatorName(_ environment: QDEnvironment) -> String {
        if let given = environment.operatorName, let name = Validation.text(given, charactersMax: 64) { return name }
        if let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name { return String(cString: name) }
        return "uid \(geteuid())"
    }

    /// The arguments as output shows them: phone, ID and card numbers and names masked,
    /// credentials taken out of URLs.
    static func mask(_ arguments: [String]) -> [String] {
        var masked: [String] = []
        var previous = ""
        for argument in arguments {
            let value: String
            switch previous {
            case "--phone", "--from", "--to": value = Mask.phone(argument)
            case "--id-number": value = Mask.residentID(argument)
            case "--card-number": value = Mask.card(argument.filter { $0 != " " && $0 != "-" })
            case "--name": value = Mask.name(argument)
            default: value = argument.contains("://") ? Redaction.parameters(["v": argument])["v"] ?? argument : argument
            }
            masked.append(String(value.prefix(200)))
            previous = argument
        }
        return masked
    }

    /// The wallet a command touches: its `--phone` (or the payer's `--from`).
    static func walletPhone(_ arguments: [String]) -> String? {
        for flag in ["--phone", "--from"] {
            if let index = arguments.firstIndex(of: flag), index + 1 < arguments.count { return arguments[index + 1] }
        }
        return nil
    }
}

/// `qdwallet audit`: the operators' audit trail, newest first.
struct AuditCommand: ParsableCommand, ReadOnlyCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "The operators' audit trail: who ran which command, masked, how it ended and when.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "From this day (YYYY-MM-DD, Asia/Shanghai).") var since: String?
    @Option(name: .customLong("operator"), help: "Only this operator.") var operatorName: String?
    @Option(name: .customLong("wallet"), help: "Only commands that touched this wallet (its mobile number).") var wallet: String?
    @Option(help: "At most this many.") var limit: Int = 100

    func run() throws {
        let day = try since.map { text -> ShanghaiCalendar.Date in
            guard let date = ShanghaiCalendar.Date(iso: text) else { throw CLIFailure(.usage, code: "usage", "--since is a date, YYYY-MM-DD") }
            return date
        }
        let store = try AppDatabase.openStore(path: global.databasePath, mode: .existingForReading)
        let entries = try store.database.read { db in try AuditStore.list(db, since: day?.startMicros, operator: operatorName, walletPhone: wallet, limit: limit) }
        Output(json: global.json).emit(["entries": entries]) {
            entries.isEmpty ? "no entries" : entries.map { "\(TimeText.shanghai($0.at))  \($0.operator)  \($0.command)  \($0.arguments)  -> \($0.outcome)" }.joined(separator: "\n")
        }
    }
}
