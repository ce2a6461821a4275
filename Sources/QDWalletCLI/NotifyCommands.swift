import ArgumentParser
import Foundation
import GRDB
import Ledger
import Wallet

/// `qdwallet notify list/retry`
struct NotifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notify", abstract: "The notification outbox: what waits, what was delivered, the dead letters.",
        subcommands: [List.self, Retry.self])

    struct List: ParsableCommand, ReadOnlyCommand {
        static let configuration = CommandConfiguration(abstract: "Messages, newest first; --failed for the dead letters only.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Only dead letters (delivery failed after the last try).") var failed = false
        @Option(help: "At most this many.") var limit: Int = 100

        func run() throws {
            let store = try AppDatabase.openStore(path: global.databasePath, mode: .existingForReading)
            let messages = try store.database.read { db in
                try OutboxStore(db).list(deadOnly: failed, limit: max(1, min(limit, 10_000)))
            }
            Output(json: global.json).emit(["messages": messages]) {
                messages.isEmpty ? "no messages" : messages.map { "\($0.id)  \($0.kind)  \($0.status)  attempts \($0.attempts)" + ($0.lastError.map { "  \($0)" } ?? "") }.joined(separator: "\n")
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send dead letters again on the next notify run.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "One message's id.") var id: Int64?
        @Flag(name: .customLong("all-failed"), help: "Every dead letter.") var allFailed = false

        func validate() throws {
            guard (id != nil) != allFailed else { throw ValidationError("give --id N or --all-failed") }
        }

        func run() throws {
            let store = try AppDatabase.openStore(path: global.databasePath)
            let changed = try store.transaction { db, _ -> Int in
                try OutboxStore(db).requeueDead(id: id)
            }
            if let id, changed == 0 {
                throw CLIFailure(.refused, code: "not_dead", "message \(id) is not a dead letter")
            }
            Output(json: global.json).emit(["requeued": changed]) { "\(changed) message(s) queued again" }
        }
    }
}
