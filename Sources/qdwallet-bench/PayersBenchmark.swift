import Foundation
import Ledger
import QDSQL
import QDSchema
import Wallet

/// `qdwallet-bench payers --db postgres://...`: N processes at once, each paying QR payments
/// from its own wallet to its own merchant through `WalletService.payQR` (the password check,
/// the class limit, the posting, the movement, the monitoring: everything but the password's
/// hashing, which is slow on purpose and measured by `paybill`). Each count of payers runs on
/// a fresh schema; the children connect first and start together on a signal, so process
/// start-up is not timed. Throughput is all payments over the window from the first start to
/// the last end; latencies are each payment's, over every child.
struct PayersBenchmark {
    let url: String
    let payerCounts: [Int]
    let payments: Int
    /// Also run each count with writers taking turns (`PostgresDatabase.Options.serializedWrites`,
    /// one advisory lock per write transaction, as SQLite's one writer): the comparison.
    let compareOneWriter: Bool

    struct Round {
        var oneWriter: Bool
        var payers: Int
        var payments: Int
        var seconds: Double
        var p50: Double
        var p99: Double
        var max: Double
        var perSecond: Double { Double(payments) / seconds }
    }

    static func phone(_ index: Int) -> String { "139" + String(format: "%08d", index) }

    func run() throws -> String {
        let server = try PostgresConnection(url: url)
        var settings: [String] = []
        for name in ["synchronous_commit", "fsync", "wal_sync_method", "max_connections"] {
            try server.query("SELECT current_setting(?)", [.text(name)]) { row in
                settings.append("\(name)=\(try row.text(0))")
                return false
            }
        }
        var rounds: [Round] = []
        for payers in payerCounts {
            rounds.append(try round(payers: payers, oneWriter: false))
            if compareOneWriter { rounds.append(try round(payers: payers, oneWriter: true)) }
        }
        var lines = ["QR payments by concurrent payers on PostgreSQL (\(settings.joined(separator: ", "))), \(payments) payments a payer, password hashing excluded"]
        for round in rounds {
            lines.append(String(format: "  %2d payers%@: %6d payments in %6.2f s = %7.1f payments/s   p50 %6.2f ms   p99 %6.2f ms   max %7.2f ms",
                                round.payers, round.oneWriter ? " (one writer at a time)" : "", round.payments, round.seconds, round.perSecond, round.p50, round.p99, round.max))
        }
        for oneWriter in [false, true] {
            guard let one = rounds.first(where: { $0.payers == 1 && $0.oneWriter == oneWriter }) else { continue }
            for round in rounds where round.payers > 1 && round.oneWriter == oneWriter {
                lines.append(String(format: "  %d payers%@ reach %.2fx the throughput of one", round.payers, oneWriter ? " (one writer at a time)" : "", round.perSecond / one.perSecond))
            }
        }
        return lines.joined(separator: "\n")
    }

    func round(payers: Int, oneWriter: Bool) throws -> Round {
        let database = try PostgresDatabase.inNewSchema(url: url, prefix: "payers", migrations: try QDWalletSchema.postgresMigrations())
        defer { try? database.dropSchema() }
        guard let schema = database.options.schema else { throw LedgerError(.storage, "no schema") }
        try setUp(database, payers: payers)

        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        var children: [(process: Process, input: Pipe, output: Pipe)] = []
        for index in 0..<payers {
            let process = Process()
            process.executableURL = executable
            process.arguments = ["payers-child", url, schema, String(index), String(payments), oneWriter ? "one-writer" : "many-writers"]
            let input = Pipe(), output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            children.append((process, input, output))
        }
        // Every child connected and ready, then all go at once.
        for child in children {
            guard let line = Self.readLine(child.output.fileHandleForReading), line == "ready" else {
                throw LedgerError(.storage, "a payer did not start")
            }
        }
        for child in children { child.input.fileHandleForWriting.write(Data("go\n".utf8)) }
        var starts: [Double] = [], ends: [Double] = [], latencies: [Double] = []
        for child in children {
            let rest = String(decoding: child.output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            child.process.waitUntilExit()
            let fields = rest.split(whereSeparator: \.isWhitespace)
            guard child.process.terminationStatus == 0, fields.count == 4, fields[0] == "done", let start = Double(fields[1]), let end = Double(fields[2]) else {
                throw LedgerError(.storage, "a payer failed: \(rest.prefix(300))")
            }
            starts.append(start)
            ends.append(end)
            latencies += fields[3].split(separator: ",").compactMap { Double($0) }
        }
        latencies.sort()
        func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        let seconds = (ends.max() ?? 0) - (starts.min() ?? 0)
        return Round(oneWriter: oneWriter, payers: payers, payments: latencies.count, seconds: seconds, p50: percentile(0.5), p99: percentile(0.99), max: latencies.last ?? 0)
    }

    /// A verified wallet for each payer, funded for its payments, with a password, and a
    /// merchant of its own.
    func setUp(_ database: PostgresDatabase, payers: Int) throws {
        let store = SQLLedgerStore(database: database)
        let clock = SystemClock()
        let ledger = Ledger(store: store, clock: clock)
        let bank = try SystemAccounts.ensure(in: ledger)[0].id
        let wallets = WalletService(store: store, ledger: ledger, hasher: PasswordHasher(iterations: 1), dataKey: nil)
        let now = clock.nowMicros()
        for index in 0..<payers {
            let cash = try store.transaction { db, tx in
                let id = Int64(index + 1)
                let cash = try tx.insertAccount(AccountSpec(code: "wallet:\(id)", asset: .cny, kind: .userWallet, rules: .noOverdraft), createdAt: now)
                let points = try tx.insertAccount(AccountSpec(code: "points:\(id)", asset: .pts, kind: .userPoints, rules: .unrestricted), createdAt: now)
                try db.run("INSERT INTO wallets (id, phone, name, kyc_class, kyc_verified, opened_at, wallet_account_id, points_account_id) VALUES (?, ?, '张*', 3, 1, ?, ?, ?)",
                           [id, Self.phone(index), now, cash.id, points.id])
                return cash.id
            }
            _ = try ledger.post(.transfer(key: "fund-\(index)", from: bank, to: cash, amount: Int64(payments) * 200))
            try wallets.setPassword(phone: Self.phone(index), password: "123456")
            _ = try wallets.registerMerchant(id: "M\(index)", name: "商户\(index)", category: "food")
        }
    }

    /// One payer (a child process): connects, says "ready", waits for "go", pays, and prints
    /// "done START END ms,ms,..." (wall-clock seconds, latencies in milliseconds).
    static func child(url: String, schema: String, index: Int, payments: Int, oneWriter: Bool) throws {
        var options = PostgresDatabase.Options()
        options.schema = schema
        options.serializedWrites = oneWriter
        let database = try PostgresDatabase(url: url, options: options)
        let store = SQLLedgerStore(database: database)
        let ledger = Ledger(store: store, clock: SystemClock())
        let wallets = WalletService(store: store, ledger: ledger, hasher: PasswordHasher(iterations: 1), dataKey: nil)
        let qr = try wallets.merchantQR(id: "M\(index)", amountFen: nil)
        FileHandle.standardOutput.write(Data("ready\n".utf8))
        _ = Swift.readLine()
        var latencies: [String] = []
        latencies.reserveCapacity(payments)
        let start = Date().timeIntervalSince1970
        for payment in 0..<payments {
            let began = DispatchTime.now().uptimeNanoseconds
            _ = try wallets.payQR(phone: phone(index), payload: qr, amountFen: Int64(100 + payment % 50), password: "123456", idempotencyKey: "bench-\(index)-\(payment)")
            latencies.append(String(format: "%.3f", Double(DispatchTime.now().uptimeNanoseconds - began) / 1e6))
        }
        let end = Date().timeIntervalSince1970
        FileHandle.standardOutput.write(Data("done \(start) \(end) \(latencies.joined(separator: ","))\n".utf8))
    }

    /// One line from a pipe, without buffering past it.
    static func readLine(_ handle: FileHandle) -> String? {
        var bytes: [UInt8] = []
        while true {
            let byte = handle.readData(ofLength: 1)
            guard let first = byte.first else { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if first == 10 { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(first)
        }
    }
}
