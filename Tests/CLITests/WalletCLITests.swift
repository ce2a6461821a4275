import Foundation
import GRDB
import QDSQL
import Testing

@Suite struct WalletCLITests {
    /// A CLI runner with its own database in the environment and a data key.
    func runner() throws -> CLIRunner {
        var cli = try CLIRunner()
        cli.environment["QDWALLET_DB"] = try cli.database()
        cli.environment["QDWALLET_DATA_KEY"] = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        // Only init creates a database.
        let initialised = try cli.run(["init"])
        #expect(initialised.status == 0, "\(initialised.stderr)")
        return cli
    }

    @discardableResult
    func ok(_ cli: CLIRunner, _ arguments: [String], stdin: String? = nil) throws -> [String: Any] {
        let result = try cli.run(arguments + ["--json"], stdin: stdin)
        #expect(result.status == 0, "\(arguments): \(result.stdout) \(result.stderr)")
        return try result.json()
    }

    func refused(_ cli: CLIRunner, _ arguments: [String], stdin: String? = nil, code: String, status: Int32 = 1) throws {
        let result = try cli.run(arguments + ["--json"], stdin: stdin)
        #expect(result.status == status, "\(arguments): \(result.stdout) \(result.stderr)")
        let error = try #require(try result.json()["error"] as? [String: Any])
        #expect(error["code"] as? String == code, "\(arguments): \(error)")
    }

    @Test func aResidentsDay() throws {
        let cli = try runner()
        defer { cli.cleanUp() }
        let opened = try ok(cli, ["wallet", "open", "--phone", "13800000001", "--name", "张三"])
        #expect(opened["wallet_id"] as? Int == 1)
        try ok(cli, ["wallet", "open", "--phone", "13800000002", "--name", "李四"])
        try refused(cli, ["wallet", "open", "--phone", "13800000001", "--name", "王五"], code: "wallet_exists")
        try refused(cli, ["card", "bind", "--phone", "13800000001", "--card-number", "6222020200112233446", "--bank", "ICBC"], code: "kyc_required")
        try refused(cli, ["wallet", "kyc", "submit", "--phone", "13800000001", "--name", "张三", "--id-number", "110105194912310021"], code: "invalid_id_number")
        let submitted = try ok(cli, ["wallet", "kyc", "submit", "--phone", "13800000001", "--name", "张三", "--id-number", "11010519491231002X"])
        #expect(submitted["id_number_masked"] as? String == "1101**********002X")
        try ok(cli, ["wallet", "kyc", "approve", "--phone", "13800000001", "--class", "2"])
        try ok(cli, ["wallet", "password", "set", "--phone", "13800000001", "--password-stdin"], stdin: "123456\n")
        let card = try ok(cli, ["card", "bind", "--phone", "13800000001", "--card-number", "6222020200112233446", "--bank", "ICBC"])
        let cardID = try #require(card["card_id"] as? Int)
        #expect(card["masked"] as? String == "6222 **** **** 3446")

        let topup = try ok(cli, ["topup", "--phone", "13800000001", "--amount", "100.00", "--card", "\(cardID)", "--idempotency-key", "t-1"])
        #expect(topup["amount_fen"] as? Int == 10_000)
        #expect(topup["discount_fen"] as? Int == 0 && topup["points"] as? Int == 0)
        let again = try ok(cli, ["topup", "--phone", "13800000001", "--amount", "100.00", "--card", "\(cardID)", "--idempotency-key", "t-1"])
        #expect(again["transaction_id"] as? Int == topup["transaction_id"] as? Int)
        #expect(again["replayed"] as? Bool == true)
        try refused(cli, ["topup", "--phone", "13800000001", "--amount", "45.205", "--card", "\(cardID)"], code: "invalid_amount")

        try ok(cli, ["merchant", "register", "--id", "M0001", "--name", "台东小吃", "--category", "food", "--mcc", "5812"])
        let qr = try #require(try ok(cli, ["merchant", "qr", "--id", "M0001", "--amount", "12.50"])["payload"] as? String)
        let paid = try ok(cli, ["pay", "--phone", "13800000001", "--qr", qr, "--password-stdin"], stdin: "123456\n")
        #expect(paid["amount_fen"] as? Int == 1_250)
        try refused(cli, ["pay", "--phone", "13800000001", "--qr", qr, "--amount", "12.00", "--password-stdin"], stdin: "123456\n", code: "qr_amount_mismatch")
        try refused(cli, ["pay", "--phone", "13800000001", "--qr", String(qr.dropLast()) + (qr.hasSuffix("0") ? "1" : "0"), "--password-stdin"], stdin: "123456\n", code: "qr_bad_checksum")
        try refused(cli, ["pay", "--phone", "13800000001", "--qr", qr, "--password-stdin"], stdin: "999999\n", code: "wrong_password")
        try refused(cli, ["pay", "--phone", "13800000001", "--qr", qr], code: "usage", status: 2)

        try ok(cli, ["transfer", "--from", "13800000001", "--to", "13800000002", "--amount", "20", "--password-stdin"], stdin: "123456\n")
        try refused(cli, ["transfer", "--from", "13800000001", "--to", "13800000002", "--amount", "1000", "--password-stdin"], stdin: "123456\n", code: "insufficient_funds")
        try refused(cli, ["transfer", "--from", "13800000001", "--to", "13800000001", "--amount", "1", "--password-stdin"], stdin: "123456\n", code: "self_transfer")

        let withdrawal = try ok(cli, ["withdraw", "--phone", "13800000001", "--amount", "50.00", "--card", "\(cardID)"])
        let balance = try ok(cli, ["balance", "--phone", "13800000001"])
        #expect(balance["balance_fen"] as? Int == 10_000 - 1_250 - 2_000)
        #expect(balance["available_fen"] as? Int == 10_000 - 1_250 - 2_000 - 5_000)
        #expect(balance["points"] as? Int == 0)
        try refused(cli, ["card", "unbind", "--phone", "13800000001", "--card", "\(cardID)"], code: "card_has_pending_operation")
        try ok(cli, ["withdraw", "fail", "--withdrawal", "\(withdrawal["withdrawal_id"] as? Int ?? -1)"])
        #expect(try ok(cli, ["balance", "--phone", "13800000001"])["available_fen"] as? Int == 6_750)
        try ok(cli, ["card", "unbind", "--phone", "13800000001", "--card", "\(cardID)"])

        try ok(cli, ["wallet", "freeze", "--phone", "13800000001", "--reason", "review"])
        try refused(cli, ["transfer", "--from", "13800000001", "--to", "13800000002", "--amount", "1", "--password-stdin"], stdin: "123456\n", code: "wallet_frozen")
        #expect(try ok(cli, ["balance", "--phone", "13800000002"])["balance_fen"] as? Int == 2_000)

        let history = try #require(try ok(cli, ["history", "--phone", "13800000001"])["movements"] as? [[String: Any]])
        #expect(history.compactMap { $0["kind"] as? String }.contains("qr_payment"))
        let check = try ok(cli, ["ledger", "check"])
        #expect(check["ok"] as? Bool == true)
        // The usage counters the class limits read agree with the history, until one is
        // written around the service: then `wallet check` exits 3 and names it.
        #expect(try ok(cli, ["wallet", "check"])["ok"] as? Bool == true)
        let url = try #require(cli.environment["QDWALLET_DB"])
        let database: any SQLDatabase = url.hasPrefix("postgres") ? try PostgresDatabase(url: url) : SQLitePool(try DatabasePool(path: url))
        _ = try database.write { db in try db.execute("UPDATE wallet_usage SET balance_payments_fen = balance_payments_fen + 1 WHERE period = 0") }
        let forged = try cli.run(["wallet", "check", "--json"])
        #expect(forged.status == 3)
        let mismatches = try #require(try forged.json()["mismatches"] as? [[String: Any]])
        #expect(mismatches.count == 1 && mismatches.first?["wallet_id"] as? Int == 1 && mismatches.first?["period"] as? Int == 0)
        #expect(mismatches.first?["counted_fen"] as? Int == 3_251 && mismatches.first?["summed_fen"] as? Int == 3_250)
    }

    @Test func personalDataNeverLeavesMasked() throws {
        let cli = try runner()
        defer { cli.cleanUp() }
        var everything = ""
        for arguments in [
            ["wallet", "open", "--phone", "13800000001", "--name", "张三"],
            ["wallet", "kyc", "submit", "--phone", "13800000001", "--name", "张三", "--id-number", "11010519491231002X"],
            ["wallet", "kyc", "approve", "--phone", "13800000001", "--class", "3"],
            ["card", "bind", "--phone", "13800000001", "--card-number", "6222020200112233446", "--bank", "ICBC"],
            ["card", "bind", "--phone", "13800000001", "--card-number", "6222020200112233446", "--bank", "ICBC"],
            ["card", "bind", "--phone", "13800000001", "--card-number", "6222020200112233445", "--bank", "ICBC"],
            ["card", "list", "--phone", "13800000001"],
            ["history", "--phone", "13800000001"],
        ] {
            for json in [true, false] {
                let result = try cli.run(arguments + (json ? ["--json"] : []))
                everything += result.stdout + result.stderr
            }
        }
        for secret in ["11010519491231002X", "6222020200112233446", "6222020200112233445", "13800000001"] {
            #expect(!everything.contains(secret), "\(secret.prefix(4))... appeared in output")
        }
    }

    @Test func missingDataKeyIsAClearError() throws {
        var cli = try runner()
        defer { cli.cleanUp() }
        cli.environment.removeValue(forKey: "QDWALLET_DATA_KEY")
        try ok(cli, ["wallet", "open", "--phone", "13800000001", "--name", "张三"])
        let result = try cli.run(["wallet", "kyc", "submit", "--phone", "13800000001", "--name", "张三", "--id-number", "11010519491231002X"])
        #expect(result.status == 4)
        #expect(result.stderr.contains("QDWALLET_DATA_KEY"))
        let keyFile = cli.directory.appendingPathComponent("key")
        try Data((0..<32).map { UInt8($0) }).base64EncodedString().write(to: keyFile, atomically: false, encoding: .utf8)
        cli.environment["QDWALLET_DATA_KEY_FILE"] = keyFile.path
        // A key file others can read is refused until it is private.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyFile.path)
        let exposed = try cli.run(["wallet", "kyc", "submit", "--phone", "13800000001", "--name", "张三", "--id-number", "11010519491231002X"])
        #expect(exposed.status == 4)
        #expect(exposed.stderr.contains("chmod 600"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile.path)
        #expect(try cli.run(["wallet", "kyc", "submit", "--phone", "13800000001", "--name", "张三", "--id-number", "11010519491231002X"]).status == 0)
        #expect(try cli.run(["wallet", "kyc", "approve", "--phone", "13800000001", "--class", "2"]).status == 0)
        #expect(try cli.run(["card", "bind", "--phone", "13800000001", "--card-number", "6222020200112233446", "--bank", "ICBC"]).status == 0)
        // With the key at hand the payment password is keyed (sealed under it), and checking
        // it needs the key.
        #expect(try cli.run(["wallet", "password", "set", "--phone", "13800000001", "--password-stdin"], stdin: "123456\n").status == 0)
        cli.environment.removeValue(forKey: "QDWALLET_DATA_KEY_FILE")
        let keyless = try cli.run(["transfer", "--from", "13800000001", "--to", "13800000009", "--amount", "1.00", "--password-stdin"], stdin: "123456\n")
        #expect(keyless.status == 4)
        #expect(keyless.stderr.contains("QDWALLET_DATA_KEY"))
        cli.environment["QDWALLET_DATA_KEY_FILE"] = keyFile.path

        // Rotation through the CLI: afterwards only the new key opens the data.
        let newKeyFile = cli.directory.appendingPathComponent("key-2")
        try Data((0..<32).map { UInt8(255 - $0) }).base64EncodedString().write(to: newKeyFile, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: newKeyFile.path)
        let rotation = try cli.run(["keys", "rotate", "--new-key-file", newKeyFile.path])
        #expect(rotation.status == 0, "\(rotation.stderr)")
        #expect(rotation.stdout.contains("re-sealed 1 real-name submissions, 1 cards and 1 payment passwords"))
        cli.environment["QDWALLET_DATA_KEY_FILE"] = newKeyFile.path
        // The password still matches under the new key (the payee is missing: refused after it).
        try refused(cli, ["transfer", "--from", "13800000001", "--to", "13800000009", "--amount", "1.00", "--password-stdin"], stdin: "123456\n", code: "wallet_not_found")
        try refused(cli, ["transfer", "--from", "13800000001", "--to", "13800000009", "--amount", "1.00", "--password-stdin"], stdin: "654321\n", code: "wrong_password")
        #expect(try cli.run(["card", "bind", "--phone", "13800000001", "--card-number", "6222020200112233446", "--bank", "ICBC"]).status == 1) // the same card: found under the new key
    }
}
