import ArgumentParser
import Ledger

/// `qdwallet init`: creates the database, migrates it and opens the system accounts.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create or upgrade the database and open the system accounts (safe to run again).")

    @OptionGroup var global: GlobalOptions

    struct Result: Encodable {
        var database: String
        var accounts: [AccountLine]
    }

    struct AccountLine: Encodable {
        var id: Int64
        var code: String
        var asset: String
        var kind: String
    }

    func run() throws {
        let ledger = try AppDatabase.openLedger(path: global.databasePath)
        let accounts = try SystemAccounts.ensure(in: ledger)
        let result = Result(
            database: global.databasePath,
            accounts: accounts.map { AccountLine(id: $0.id, code: $0.code, asset: $0.asset.rawValue, kind: $0.kind.rawValue) })
        Output(json: global.json).emit(result) {
            var lines = ["database ready: \(result.database)"]
            for account in result.accounts {
                lines.append("  account \(account.id)  \(account.code)  \(account.asset)")
            }
            return lines.joined(separator: "\n")
        }
    }
}
