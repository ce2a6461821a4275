import Foundation
import Testing

/// Every amount has a bound: per request (Jobs/wallet.toml [limits]), per ledger leg, per
/// account total; and an amount is positive, whatever the argument parser makes of "-1".
@Suite struct AmountBoundsCLITests {
    let wallet = WalletCLITests()

    /// A verified wallet with a password and a card; returns the card id.
    func resident(_ cli: CLIRunner, phone: String = "13800000001") throws -> Int {
        try wallet.ok(cli, ["wallet", "open", "--phone", phone, "--name", "张三"])
        try wallet.ok(cli, ["wallet", "kyc", "submit", "--phone", phone, "--name", "张三", "--id-number", residentID(forPhone: phone)])
        try wallet.ok(cli, ["wallet", "kyc", "approve", "--phone", phone, "--class", "3"])
        try wallet.ok(cli, ["wallet", "password", "set", "--phone", phone, "--password-stdin"], stdin: "123456\n")
        let card = try wallet.ok(cli, ["card", "bind", "--phone", phone, "--card-number", "6222020200112233446", "--bank", "ICBC"])
        return try #require(card["card_id"] as? Int)
    }

    @Test func aTypoOfAHugeTopUpIsRefusedAndBlocksNothing() throws {
        let cli = try wallet.runner()
        defer { cli.cleanUp() }
        try wallet.ok(cli, ["init"])
        let card = try resident(cli)
        try wallet.refused(cli, ["topup", "--phone", "13800000001", "--amount", "92233720368547758.07", "--card", "\(card)"], code: "amount_over_request_limit")
        try wallet.refused(cli, ["topup", "--phone", "13800000001", "--amount", "50000.01", "--card", "\(card)"], code: "amount_over_request_limit")
        #expect(try wallet.ok(cli, ["topup", "--phone", "13800000001", "--amount", "50000.00", "--card", "\(card)"])["amount_fen"] as? Int == 5_000_000)
        #expect(try wallet.ok(cli, ["topup", "--phone", "13800000001", "--amount", "0.01", "--card", "\(card)"])["amount_fen"] as? Int == 1)
        try wallet.refused(cli, ["withdraw", "--phone", "13800000001", "--amount", "50000.01", "--card", "\(card)"], code: "amount_over_request_limit")
        try wallet.ok(cli, ["wallet", "open", "--phone", "13800000002", "--name", "李四"])
        try wallet.refused(cli, ["transfer", "--from", "13800000001", "--to", "13800000002", "--amount", "50000.01", "--password-stdin"], stdin: "123456\n", code: "amount_over_request_limit")
        try wallet.ok(cli, ["merchant", "register", "--id", "M0001", "--name", "台东小吃", "--category", "food"])
        let qr = try #require(try wallet.ok(cli, ["merchant", "qr", "--id", "M0001"])["payload"] as? String)
        try wallet.refused(cli, ["pay", "--phone", "13800000001", "--qr", qr, "--amount", "50000.01", "--password-stdin"], stdin: "123456\n", code: "amount_over_request_limit")
        let balance = try wallet.ok(cli, ["balance", "--phone", "13800000001"])
        #expect(balance["balance_fen"] as? Int == 5_000_001)
        #expect(try wallet.ok(cli, ["ledger", "check"])["ok"] as? Bool == true)
    }

    /// EMV QRCPS MPM, Transaction Amount (ID 54): at most 13 characters.
    @Test func aQRAmountThatDoesNotFitTag54IsRefused() throws {
        let cli = try wallet.runner()
        defer { cli.cleanUp() }
        try wallet.ok(cli, ["init"])
        try wallet.ok(cli, ["merchant", "register", "--id", "M0001", "--name", "台东小吃", "--category", "food"])
        try wallet.refused(cli, ["merchant", "qr", "--id", "M0001", "--amount", "12345678901.23"], code: "qr_amount_too_large")
        let payload = try #require(try wallet.ok(cli, ["merchant", "qr", "--id", "M0001", "--amount", "9999999999.99"])["payload"] as? String)
        #expect(payload.contains("54139999999999.99"))
    }

    @Test(arguments: [["topup", "--phone", "13800000001", "--card", "1", "--amount", "-1"],
                      ["topup", "--phone", "13800000001", "--card", "1", "--amount", "-0.01"],
                      ["withdraw", "--phone", "13800000001", "--card", "1", "--amount", "-5.00"],
                      ["merchant", "qr", "--id", "M0001", "--amount", "-1"]])
    func aNegativeAmountSaysAmountsArePositive(arguments: [String]) throws {
        let cli = try wallet.runner()
        defer { cli.cleanUp() }
        try wallet.ok(cli, ["init"])
        let result = try cli.run(arguments + ["--json"])
        #expect(result.status == 1, "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("amounts are positive"))
        #expect(!result.stderr.contains("Missing value"))
    }

    @Test func theLimitsAreConfiguredInWalletToml() throws {
        var cli = try wallet.runner()
        defer { cli.cleanUp() }
        let jobs = cli.directory.appendingPathComponent("jobs")
        try FileManager.default.createDirectory(at: jobs, withIntermediateDirectories: true)
        cli.environment["QDWALLET_JOBS_DIR"] = jobs.path
        try "[limits]\ntopup_max = \"100.00\"\n".write(to: jobs.appendingPathComponent("wallet.toml"), atomically: false, encoding: .utf8)
        try wallet.ok(cli, ["init"])
        let card = try resident(cli)
        try wallet.refused(cli, ["topup", "--phone", "13800000001", "--amount", "100.01", "--card", "\(card)"], code: "amount_over_request_limit")
        #expect(try wallet.ok(cli, ["topup", "--phone", "13800000001", "--amount", "100.00", "--card", "\(card)"])["amount_fen"] as? Int == 10_000)
        // A misspelt key or an amount past the ceiling is an error naming the file and key.
        try "[limits]\ntopup_maxx = \"100.00\"\n".write(to: jobs.appendingPathComponent("wallet.toml"), atomically: false, encoding: .utf8)
        let misspelt = try cli.run(["topup", "--phone", "13800000001", "--amount", "1.00", "--card", "\(card)"])
        #expect(misspelt.status == 1)
        #expect(misspelt.stderr.contains("wallet.toml: limits.topup_maxx: unknown key"))
        try "[limits]\ntopup_max = \"92233720368547758.07\"\n".write(to: jobs.appendingPathComponent("wallet.toml"), atomically: false, encoding: .utf8)
        let tooLarge = try cli.run(["topup", "--phone", "13800000001", "--amount", "1.00", "--card", "\(card)"])
        #expect(tooLarge.status == 1)
        #expect(tooLarge.stderr.contains("limits.topup_max"))
        try FileManager.default.removeItem(at: jobs.appendingPathComponent("wallet.toml"))
        #expect(try wallet.ok(cli, ["balance", "--phone", "13800000001"])["balance_fen"] as? Int == 10_000)
    }
}
