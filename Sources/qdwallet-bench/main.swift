// Benchmarks of qdwallet, run in release mode:
//
//     swift run -c release qdwallet-bench ledger [--transfers N] [--batch N] [--wallets N] [--rounds N]
//
// `ledger` measures the ledger's batch path (Ledger.post of two-leg transfers in one database
// transaction per batch) against a raw SQLite floor measured in the same run: the same rows
// (idempotency row, journal row with its hashes, two entries, two account updates per
// transfer) written with plain prepared statements and no checks, into the same schema.
// Rounds alternate floor and ledger so that a noisy neighbour hurts both alike; the ratio is
// taken from the median round of each.
//
//     swift run -c release qdwallet-bench paybill [--entries N] [--samples N] [--db postgres://... (an empty database)]
//
// `paybill` fills a ledger with N entries, then times S pay-bills (password hashing excluded,
// and timed on its own), reporting p50 and p99.
//
//     swift run -c release qdwallet-bench nightly [--bills N] [--wallets N] [--unmatched-percent P] [--no-campaigns]
//         [--history-months M] [--schema-dir DIR] [--keep DIR [--generate-only]] [--db postgres://...]
//
// `nightly` generates a synthetic city (wallets, linked accounts, a campaign, three feeds of
// N bills in all), then measures, in the same run: xmllint --stream --schema over the feeds
// (the parsing floor), qdwallet's feed reader over the same files, and the whole nightly run
// (`qdwallet jobs run nightly-billing`, a child process: fetch from file URLs, validate, parse,
// stage, match, campaigns, post, outbox, payment reports) with its peak resident memory, and
// on SQLite the store floor: every row the run added or changed, written again into a copy of
// the city as it was before the run with plain prepared statements and no logic, in as many
// transactions as the run's chunks (writes timed alone; the rows by table are printed).
// `--keep DIR --generate-only` writes the city into DIR and stops, for profiling the run.
// The distribution: `--wallets` sets bills per wallet (200,000 bills over 50 wallets is a
// property manager's night), `--unmatched-percent` the share of bills for customers unknown
// to the wallet (10 unless told), `--no-campaigns` leaves the city's campaign out,
// `--history-months M` gives the city M months of bills paid before the night (a bill a
// linked account a month, rows of `bills` alone), for the night's cost against the months kept.
//
//     swift run -c release qdwallet-bench floor --before CITY.sqlite --after RUN.sqlite [--transactions N] [--pragmas "wal_autocheckpoint=10000"]
//
// `floor` runs the store floor alone, on a city kept with `nightly --keep` (a copy of it taken
// before the run, and the database after), with settings to try on the floor's connection.
//
//     swift run -c release qdwallet-bench payers --db postgres://... [--payers 1,4,16] [--payments N]
//
// `payers` runs N processes at once, each paying QR payments from its own wallet to its own
// merchant on PostgreSQL, for each N: throughput, p50 and p99, and each N's throughput as a
// ratio of one payer's. `--compare-one-writer` runs each N again with writers taking turns
// (one advisory lock per write transaction), the design this replaced.
//
//     swift run -c release qdwallet-bench password [--slow-samples N] [--keyed-samples N]
//
// `password` times a payment password check in both stored forms: PBKDF2 at 600,000
// iterations against the keyed form (sealed under the data key), and their ratio.
//
//     QDWALLET_DATA_KEY=... swift run -c release qdwallet-bench api-load --db PATH-OR-URL --out DIR [--wallets N] [--payments N]
//
// `api-load` prepares a load run of the HTTP API (Tests/API/load.sh runs it, then wrk against
// `qdwallet serve`): wallets with a device each, money, a merchant, and N QR payments each
// confirmed by its device's signature of a fresh challenge, one request a line.
import Foundation
import Ledger

let arguments = Array(CommandLine.arguments.dropFirst())
/// A positive integer option; its default when absent. A value that is not one ends the run
/// (a typo must not run the default, which may take minutes).
func option(_ name: String, _ fallback: Int) -> Int {
    guard let index = arguments.firstIndex(of: name) else { return fallback }
    guard index + 1 < arguments.count, let value = Int(arguments[index + 1].replacingOccurrences(of: "_", with: "")), value > 0 else {
        FileHandle.standardError.write(Data("qdwallet-bench: \(name) takes a positive whole number\n".utf8))
        exit(2)
    }
    return value
}
/// A whole number option within `range`; its default when absent. A value outside ends the run.
func option(_ name: String, in range: ClosedRange<Int>, _ fallback: Int) -> Int {
    guard let given = text(name) else { return fallback }
    guard let value = Int(given), range.contains(value) else {
        FileHandle.standardError.write(Data("qdwallet-bench: \(name) takes a whole number from \(range.lowerBound) to \(range.upperBound)\n".utf8))
        exit(2)
    }
    return value
}
func text(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}
let usage = """
    usage: qdwallet-bench ledger [--transfers N] [--batch N] [--wallets N] [--rounds N] [--db postgres://... [--check]] [--json]
           qdwallet-bench nightly [--bills N] [--wallets N] [--unmatched-percent 0-100] [--no-campaigns] [--history-months 0-120] [--schema-dir DIR]
                                  [--keep DIR [--generate-only]] [--db postgres://... (an empty database)] [--json]
           qdwallet-bench paybill [--entries N] [--samples N] [--db postgres://... (an empty database)]
           qdwallet-bench floor --before CITY.sqlite --after RUN.sqlite [--transactions N] [--pragmas "NAME=VALUE; ..."]
           qdwallet-bench payers --db postgres://... [--payers 1,4,16] [--payments N] [--compare-one-writer]
           qdwallet-bench password [--slow-samples N] [--keyed-samples N]
           qdwallet-bench api-load --db PATH-OR-URL (new) --out DIR [--wallets N] [--payments N] [--merchants N]   (QDWALLET_DATA_KEY set)

    """
guard let suite = arguments.first, ["ledger", "nightly", "floor", "paybill", "payers", "payers-child", "password", "api-load"].contains(suite) else {
    FileHandle.standardError.write(Data(usage.utf8))
    exit(2)
}
/// The options each suite takes with a value, and those it takes alone.
let suiteOptions: [String: (valued: Set<String>, flags: Set<String>)] = [
    "ledger": (["--transfers", "--batch", "--wallets", "--rounds", "--db"], ["--check", "--json"]),
    "nightly": (["--bills", "--wallets", "--unmatched-percent", "--history-months", "--schema-dir", "--keep", "--db"], ["--no-campaigns", "--generate-only", "--json"]),
    "paybill": (["--entries", "--samples", "--db"], []),
    "floor": (["--before", "--after", "--transactions", "--pragmas"], []),
    "payers": (["--db", "--payers", "--payments"], ["--compare-one-writer"]),
    "password": (["--slow-samples", "--keyed-samples"], []),
    "api-load": (["--db", "--out", "--wallets", "--payments", "--merchants"], []),
]
if let known = suiteOptions[suite] {
    var index = 1
    while index < arguments.count {
        let argument = arguments[index]
        if known.flags.contains(argument) {
            index += 1
        } else if known.valued.contains(argument), index + 1 < arguments.count {
            index += 2
        } else {
            let problem = known.valued.contains(argument) ? "\(argument) needs a value" : "\(suite) does not take \(argument)"
            FileHandle.standardError.write(Data("qdwallet-bench: \(problem)\n\n\(usage)".utf8))
            exit(2)
        }
    }
}
if suite == "payers-child" {
    // Started by `payers`: URL SCHEMA INDEX PAYMENTS one-writer|many-writers.
    guard arguments.count == 6, let index = Int(arguments[3]), let payments = Int(arguments[4]) else { exit(2) }
    do {
        try PayersBenchmark.child(url: arguments[1], schema: arguments[2], index: index, payments: payments, oneWriter: arguments[5] == "one-writer")
    } catch {
        FileHandle.standardError.write(Data("qdwallet-bench payer \(index): \(error)\n".utf8))
        exit(4)
    }
    exit(0)
}
if suite == "payers" {
    guard let at = arguments.firstIndex(of: "--db"), at + 1 < arguments.count else {
        FileHandle.standardError.write(Data("qdwallet-bench: payers needs --db postgres://... (a server; each round runs in a schema of its own)\n".utf8))
        exit(2)
    }
    let counts = arguments.firstIndex(of: "--payers").flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
        .map { $0.split(separator: ",").compactMap { Int($0) }.filter { (1...64).contains($0) } } ?? [1, 4, 16]
    guard !counts.isEmpty else {
        FileHandle.standardError.write(Data("qdwallet-bench: --payers takes counts from 1 to 64, separated by commas\n".utf8))
        exit(2)
    }
    do {
        print(try PayersBenchmark(url: arguments[at + 1], payerCounts: counts, payments: option("--payments", 300), compareOneWriter: arguments.contains("--compare-one-writer")).run())
    } catch {
        FileHandle.standardError.write(Data("qdwallet-bench: \(error)\n".utf8))
        exit(4)
    }
    exit(0)
}
if suite == "api-load" {
    guard let database = text("--db"), let out = text("--out") else {
        FileHandle.standardError.write(Data("qdwallet-bench: api-load needs --db (a new SQLite path or an empty PostgreSQL database) and --out DIR\n".utf8))
        exit(2)
    }
    do {
        print(try APILoad(database: database, wallets: option("--wallets", 200), payments: option("--payments", 6_000), merchants: option("--merchants", 100), out: out).run())
    } catch {
        FileHandle.standardError.write(Data("qdwallet-bench: \(error)\n".utf8))
        exit(4)
    }
    exit(0)
}
if suite == "password" {
    do {
        print(try PasswordBenchmark(slowSamples: option("--slow-samples", 20), keyedSamples: option("--keyed-samples", 2_000)).run())
    } catch {
        FileHandle.standardError.write(Data("qdwallet-bench: \(error)\n".utf8))
        exit(4)
    }
    exit(0)
}
if suite == "paybill" {
    do {
        let url: String? = arguments.firstIndex(of: "--db").flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
        print(try PayBillBenchmark(entries: option("--entries", 10_000_000), samples: option("--samples", 1_000), postgresURL: url).run())
    } catch {
        FileHandle.standardError.write(Data("qdwallet-bench: \(error)\n".utf8))
        exit(4)
    }
    exit(0)
}

if suite == "floor" {
    guard let before = text("--before"), let after = text("--after") else {
        FileHandle.standardError.write(Data("qdwallet-bench: floor needs --before CITY.sqlite and --after RUN.sqlite\n".utf8))
        exit(2)
    }
    do {
        let folder = (after as NSString).deletingLastPathComponent
        let result = try StoreFloor(before: before, after: after, path: folder.isEmpty ? "floor.sqlite" : folder + "/floor.sqlite", transactions: option("--transactions", 20), pragmas: text("--pragmas") ?? "").run()
        print("store floor: \(result.rows) rows in \(String(format: "%.2f", result.seconds)) s (\(result.tablesText))")
    } catch {
        FileHandle.standardError.write(Data("qdwallet-bench: \(error)\n".utf8))
        exit(4)
    }
    exit(0)
}

if suite == "nightly" {
    let bills = option("--bills", 100_000)
    if arguments.contains("--generate-only") && text("--keep") == nil {
        FileHandle.standardError.write(Data("qdwallet-bench: --generate-only needs --keep DIR\n".utf8))
        exit(2)
    }
    let unmatched = option("--unmatched-percent", in: 0...100, 10)
    let history = option("--history-months", in: 0...120, 0)
    do {
        let report = try NightlyBenchmark(bills: bills, wallets: option("--wallets", max(1_000, bills / 3)), schemaDirectory: text("--schema-dir") ?? "SampleFeeds/schema", keep: text("--keep"), generateOnly: arguments.contains("--generate-only"), postgresURL: text("--db"),
                                          unmatchedPercent: unmatched, campaigns: !arguments.contains("--no-campaigns"), historyMonths: history).run()
        if arguments.contains("--generate-only") { exit(0) }
        print(arguments.contains("--json") ? report.json : report.text)
        if report.nightlyStatus != 0 {
            FileHandle.standardError.write(Data("qdwallet-bench: the nightly run exited \(report.nightlyStatus)\n".utf8))
            exit(4)
        }
    } catch {
        FileHandle.standardError.write(Data("qdwallet-bench: \(error)\n".utf8))
        exit(4)
    }
    exit(0)
}

let configuration = LedgerBenchmark.Configuration(
    transfers: option("--transfers", 200_000),
    batch: option("--batch", 10_000),
    wallets: option("--wallets", 10_000),
    rounds: option("--rounds", 3))
let databaseURL: String? = arguments.firstIndex(of: "--db").flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
if arguments.contains("--check") {
    guard let url = databaseURL else {
        FileHandle.standardError.write(Data("qdwallet-bench: ledger --check needs --db postgres://...\n".utf8))
        exit(2)
    }
    do {
        print(try PostgresLedgerBenchmark(configuration: configuration, url: url).runCheck())
    } catch {
        FileHandle.standardError.write(Data("qdwallet-bench: \(error)\n".utf8))
        exit(4)
    }
    exit(0)
}
do {
    let report = try databaseURL.map { try PostgresLedgerBenchmark(configuration: configuration, url: $0).run() } ?? LedgerBenchmark(configuration: configuration).run()
    if arguments.contains("--json") {
        print(report.json)
    } else {
        print(report.text)
    }
} catch {
    FileHandle.standardError.write(Data("qdwallet-bench: \(error)\n".utf8))
    exit(4)
}
