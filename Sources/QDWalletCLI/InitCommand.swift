import ArgumentParser
import Billing
import Foundation
import Ledger
import Wallet

/// `qdwallet init`: creates the database, migrates it and opens the system accounts.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create or upgrade the database, open the system accounts and register the billers of Jobs/billers.toml (safe to run again).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var jobs: JobsOptions

    struct Result: Encodable {
        var database: String
        var accounts: [AccountLine]
        var billers: [BillerSync.Line]
        var dataKeyId: String?
    }

    struct AccountLine: Encodable {
        var id: Int64
        var code: String
        var asset: String
        var kind: String
    }

    func run() throws {
        // The billers file is read before the database is touched: a broken file changes nothing.
        let billers = try BillersCommand.configured(jobs)
        let ledger = try AppDatabase.openLedger(path: global.databasePath, mode: .create)
        let accounts = try SystemAccounts.ensure(in: ledger)
        let sync = try billers.map { try BillersCommand.sync($0, ledger: ledger) }
        // The data key, when given, becomes the database's (or is checked against it).
        let environment = QDEnvironment.process
        var keyID: String?
        if environment.hasDataKey {
            let key = try DataKey.fromEnvironment(environment.dataKeyEnvironment)
            guard let store = ledger.store as? SQLLedgerStore else { throw CLIFailure(.infrastructure, code: "internal", "init needs qdwallet's own database") }
            try WalletService(store: store, ledger: ledger, dataKey: key).adoptDataKey(key)
            keyID = key.keyIDHex
        }
        let result = Result(
            database: global.databaseDisplay,
            accounts: accounts.map { AccountLine(id: $0.id, code: $0.code, asset: $0.asset.rawValue, kind: $0.kind.rawValue) },
            billers: sync?.billers ?? [], dataKeyId: keyID)
        Output(json: global.json).emit(result) {
            var lines = ["database ready: \(result.database)"]
            for account in result.accounts {
                lines.append("  account \(account.id)  \(account.code)  \(account.asset)")
            }
            if let keyID { lines.append("  data key \(keyID) is the database's key") }
            if let sync {
                lines.append(contentsOf: BillersCommand.text(sync))
            } else {
                lines.append("no billers registered: \((jobs.path as NSString).appendingPathComponent("billers.toml")) does not exist (run qdwallet billers once it does)")
            }
            return lines.joined(separator: "\n")
        }
    }
}
