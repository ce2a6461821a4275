import Foundation
import GRDB
import Testing
@testable import Ledger

@Suite struct LedgerCLITests {
    @Test func initCreatesTheSystemAccountsAndIsRepeatable() throws {
        let cli = try CLIRunner()
        defer { cli.cleanUp() }
        let first = try cli.run(["init", "--db", cli.databasePath, "--json"])
        #expect(first.status == 0, "\(first.stderr)")
        let accounts = try #require(try first.json()["accounts"] as? [[String: Any]])
        #expect(accounts.compactMap { $0["code"] as? String } == SystemAccounts.specs.map(\.code))
        let second = try cli.run(["init", "--db", cli.databasePath, "--json"])
        #expect(second.status == 0)
        #expect(second.stdout == first.stdout)
        let attributes = try FileManager.default.attributesOfItem(atPath: cli.databasePath)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test func checkPassesOnACleanLedger() throws {
        let cli = try CLIRunner()
        defer { cli.cleanUp() }
        try seed(cli.databasePath)
        let result = try cli.run(["ledger", "check", "--db", cli.databasePath, "--json"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let json = try result.json()
        #expect(json["ok"] as? Bool == true)
        #expect((json["violations"] as? [Any])?.isEmpty == true)
        #expect(json["transactions"] as? Int == 3)
        let text = try cli.run(["ledger", "check", "--db", cli.databasePath])
        #expect(text.status == 0)
        #expect(text.stdout.contains("ledger check: ok"))
        #expect(text.stdout.contains("CNY: debits 150.00  credits 150.00"))
    }

    /// `ledger check --expect-head SEQ:HASH` proves the journal still holds an anchor.
    @Test func checkProvesAnAnchorIsStillHeld() throws {
        let cli = try CLIRunner()
        defer { cli.cleanUp() }
        try seed(cli.databasePath)
        let head = try #require(try cli.run(["ledger", "check", "--db", cli.databasePath, "--json"]).json()["head"] as? String)
        #expect(head.hasPrefix("3:") && head.count == 2 + 64)
        #expect(try cli.run(["ledger", "check", "--db", cli.databasePath, "--expect-head", head]).status == 0)
        let missing = try cli.run(["ledger", "check", "--db", cli.databasePath, "--expect-head", "4" + head.dropFirst(1), "--json"])
        #expect(missing.status == 3)
        #expect(((try missing.json()["violations"] as? [[String: Any]]) ?? []).compactMap { $0["code"] as? String } == ["expected_head_missing"])
        #expect(try cli.run(["ledger", "check", "--db", cli.databasePath, "--expect-head", "3:abc"]).status == 2)
    }

    @Test func checkExitsThreeWithTheViolations() throws {
        let cli = try CLIRunner()
        defer { cli.cleanUp() }
        try seed(cli.databasePath)
        let pool = try DatabasePool(path: cli.databasePath)
        try pool.write { db in
            try db.execute(sql: "DROP TRIGGER ledger_transactions_no_update")
            try db.execute(sql: "UPDATE ledger_transactions SET memo = 'rewritten' WHERE id = 2")
            try db.execute(sql: "UPDATE ledger_accounts SET credits_posted = credits_posted + 100 WHERE code = 'wallet:1'")
        }
        try pool.close()
        let result = try cli.run(["ledger", "check", "--db", cli.databasePath, "--json"])
        #expect(result.status == 3)
        let json = try result.json()
        #expect(json["ok"] as? Bool == false)
        let codes = (json["violations"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
        #expect(codes.contains("hash_chain_broken"))
        #expect(codes.contains("account_totals_mismatch"))
        #expect(codes.contains("asset_does_not_sum_to_zero"))
        let text = try cli.run(["ledger", "check", "--db", cli.databasePath])
        #expect(text.status == 3)
        #expect(text.stdout.contains("! hash_chain_broken: transaction=2"))
    }

    @Test func usageErrorsExitTwo() throws {
        let cli = try CLIRunner()
        defer { cli.cleanUp() }
        for arguments in [["ledger", "chek"], ["frobnicate"], ["init", "--db"], ["ledger", "check", "--bogus"]] {
            let result = try cli.run(arguments)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(!result.stderr.isEmpty)
        }
        let json = try cli.run(["ledger", "chek", "--json"])
        #expect(json.status == 2)
        let error = try #require(try json.json()["error"] as? [String: Any])
        #expect(error["code"] as? String == "usage")
        #expect(try cli.run(["--help"]).status == 0)
    }

    @Test func anUnusableDatabaseExitsFour() throws {
        let cli = try CLIRunner()
        defer { cli.cleanUp() }
        let missing = cli.directory.appendingPathComponent("missing/dir/x.sqlite").path
        let result = try cli.run(["ledger", "check", "--db", missing, "--json"])
        #expect(result.status == 4)
        let error = try #require(try result.json()["error"] as? [String: Any])
        #expect(error["code"] as? String == "database_not_found")
        #expect((error["message"] as? String)?.contains("qdwallet init") == true)
        #expect((error["message"] as? String)?.contains(missing) == true)
        // init cannot create it either: its folder is missing.
        let created = try cli.run(["init", "--db", missing, "--json"])
        #expect(created.status == 4)
        #expect(created.stderr.contains("cannot create the database file"))
        let garbage = cli.directory.appendingPathComponent("garbage.sqlite")
        try Data(repeating: 0x41, count: 8_192).write(to: garbage)
        #expect(try cli.run(["ledger", "check", "--db", garbage.path]).status == 4)
    }

    @Test func theDatabaseComesFromTheEnvironment() throws {
        var cli = try CLIRunner()
        defer { cli.cleanUp() }
        let path = cli.directory.appendingPathComponent("from-env.sqlite").path
        cli.environment["QDWALLET_DB"] = path
        #expect(try cli.run(["init"]).status == 0)
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(try cli.run(["init"]).stdout.contains(path))
    }

    /// Three transfers through the library, on the database the CLI will open.
    func seed(_ path: String) throws {
        let pool = try SQLiteDatabase.open(path: path, migrator: SQLiteDatabase.ledgerMigrator())
        let ledger = Ledger(store: SQLiteLedgerStore(pool: pool))
        let bank = try ledger.openAccount(AccountSpec(code: SystemAccounts.bankClearing, asset: .cny, kind: .bankClearing, rules: .unrestricted)).id
        let wallet = try ledger.openAccount(AccountSpec(code: "wallet:1", asset: .cny, kind: .userWallet, rules: .noOverdraft)).id
        let biller = try ledger.openAccount(AccountSpec(code: "biller:QD-WATER", asset: .cny, kind: .billerSettlement, rules: .unrestricted)).id
        _ = try ledger.post([
            .transfer(key: "topup", from: bank, to: wallet, amount: 10_000),
            .transfer(key: "bill-1", from: wallet, to: biller, amount: 4_520),
            .transfer(key: "bill-2", from: wallet, to: biller, amount: 480),
        ])
        try pool.close()
    }
}
