import Feeds
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The nightly run on a synthetic city, against xmllint in the same run.
struct NightlyBenchmark {
    var bills: Int
    var wallets: Int
    var schemaDirectory: String
    var keep: String?
    /// Only write the city (database, Jobs/, feeds) into `keep` and stop.
    var generateOnly = false
    /// The city's database on a PostgreSQL server (an empty database) instead of SQLite.
    var postgresURL: String?
    /// Percent of the bills for customers unknown to the wallet.
    var unmatchedPercent = 10
    /// Whether the city's campaign runs.
    var campaigns = true
    /// Months of paid bills the city kept before the night (`CityGenerator.historyMonths`).
    var historyMonths = 0

    struct Report {
        var bills: Int
        var wallets: Int
        var feedBytes: Int64
        var generateSeconds: Double
        var xmllintSeconds: Double?
        var readerSeconds: Double
        var nightlySeconds: Double
        var nightlyPeakMB: Int
        var nightlyStatus: Int32
        var historyMonths = 0
        /// The run's steps and the seconds each took, from its report.
        var steps: [(name: String, seconds: Double)] = []
        /// The raw SQLite floor of the run's writes (SQLite only).
        var floor: StoreFloor.Result?

        var stepsText: String {
            steps.map { "\($0.name) \(String(format: "%.2f", $0.seconds)) s" }.joined(separator: ", ")
        }

        var text: String {
            let ratio = xmllintSeconds.map { String(format: "%.2f", readerSeconds / $0) } ?? "n/a (xmllint not installed)"
            let runToXmllint = xmllintSeconds.map { String(format: "%.2f", nightlySeconds / $0) } ?? "n/a"
            let floorLine = floor.map {
                "\n  store floor (same rows, raw)   \(String(format: "%.2f s", $0.seconds))   \($0.rows) rows   run/floor \(String(format: "%.2f", nightlySeconds / $0.seconds))\n  floor rows by table            \($0.tablesText)"
            } ?? ""
            return """
                nightly run: \(bills) bills, \(wallets) wallets\(historyMonths > 0 ? ", \(historyMonths) months of paid bills kept" : ""), \(feedBytes / 1_048_576) MB of feeds (generated in \(String(format: "%.1f", generateSeconds)) s)
                  xmllint --stream --schema      \(xmllintSeconds.map { String(format: "%.2f s", $0) } ?? "n/a")
                  feed reader (parse+validate)   \(String(format: "%.2f s", readerSeconds))   ratio to xmllint \(ratio)
                  whole nightly run              \(String(format: "%.2f s", nightlySeconds))   \(Int(Double(bills) / nightlySeconds)) bills/s   \(String(format: "%.1f", nightlySeconds * 1e6 / Double(max(1, bills)))) µs/bill   run/xmllint \(runToXmllint)   exit \(nightlyStatus)\(floorLine)
                  steps                          \(stepsText)
                  nightly peak resident          \(nightlyPeakMB) MB
                """
        }

        var json: String {
            "{\"bills\":\(bills),\"wallets\":\(wallets),\"history_months\":\(historyMonths),\"xmllint_s\":\(xmllintSeconds.map { String(format: "%.3f", $0) } ?? "null"),\"reader_s\":\(String(format: "%.3f", readerSeconds)),\"nightly_s\":\(String(format: "%.3f", nightlySeconds)),\"bills_per_s\":\(Int(Double(bills) / nightlySeconds)),\"peak_mb\":\(nightlyPeakMB),\"floor_s\":\(floor.map { String(format: "%.3f", $0.seconds) } ?? "null"),\"floor_rows\":\(floor.map { String($0.rows) } ?? "null"),\"exit\":\(nightlyStatus),\"steps\":{\(steps.map { "\"\($0.name)\":\(String(format: "%.3f", $0.seconds))" }.joined(separator: ","))}}"
        }
    }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    func run() throws -> Report {
        let directory = keep ?? FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-city-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if keep == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let city = CityGenerator(wallets: wallets, bills: bills, directory: directory, postgresURL: postgresURL, unmatchedPercent: unmatchedPercent, campaigns: campaigns, historyMonths: historyMonths)
        let generate = try Self.seconds { try city.generate() }
        if generateOnly {
            print("city written to \(directory) in \(String(format: "%.1f", generate)) s; run it with:")
            print("  QDWALLET_SCHEMA_DIR=... qdwallet jobs run nightly-billing --date \(city.date.iso) --db \(city.databasePath) --jobs-dir \(city.jobsDirectory)")
            return Report(bills: bills, wallets: wallets, feedBytes: 0, generateSeconds: generate, xmllintSeconds: nil, readerSeconds: 0, nightlySeconds: 0, nightlyPeakMB: 0, nightlyStatus: 0)
        }
        let feeds = try FileManager.default.contentsOfDirectory(atPath: directory + "/feeds").filter { $0.hasSuffix(".xml") }.sorted().map { directory + "/feeds/" + $0 }
        let bytes = feeds.reduce(Int64(0)) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int64) ?? 0) }
        let schema = (schemaDirectory as NSString).appendingPathComponent("billfeed.xsd")

        var xmllint: Double?
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/xmllint") {
            xmllint = try Self.seconds {
                for feed in feeds {
                    let status = try Self.runProcess("/usr/bin/xmllint", ["--stream", "--noout", "--schema", schema, feed], environment: [:]).status
                    guard status == 0 else { throw FeedError(.invalid, "xmllint refused a generated feed", context: feed) }
                }
            }
        }
        let compiled = try XMLSchema(path: schema)
        let reader = try Self.seconds {
            for feed in feeds {
                let biller = ((feed as NSString).lastPathComponent as NSString).deletingPathExtension.components(separatedBy: "-20").first ?? ""
                var count = 0
                _ = try FeedReader(schema: compiled).read(path: feed, expectedBiller: biller, expectedDate: nil, onHeader: { _ in }, onBill: { _ in count += 1 }, onCancel: { _ in })
            }
        }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("qdwallet").path
        var environment = ProcessInfo.processInfo.environment
        environment["QDWALLET_SCHEMA_DIR"] = (schemaDirectory as NSString).standardizingPath.hasPrefix("/") ? schemaDirectory : FileManager.default.currentDirectoryPath + "/" + schemaDirectory
        environment["QDWALLET_LOG_LEVEL"] = "warning"
        var status: Int32 = 0
        var peak = 0
        // The city as it was before the run, for the store floor.
        let before = directory + "/before.sqlite"
        if postgresURL == nil {
            try? FileManager.default.removeItem(atPath: before)
            try FileManager.default.copyItem(atPath: city.databasePath, toPath: before)
            if FileManager.default.fileExists(atPath: city.databasePath + "-wal") {
                try FileManager.default.copyItem(atPath: city.databasePath + "-wal", toPath: before + "-wal")
            }
        }
        // The run's report (JSON) goes to a file, for the seconds of its steps.
        let output = directory + "/nightly-report.json"
        let nightly = try Self.seconds {
            let arguments = ["jobs", "run", "nightly-billing", "--date", city.date.iso, "--db", city.databasePath, "--jobs-dir", city.jobsDirectory, "--json"]
            if postgresURL == nil {
                (status, peak) = try Self.runProcess(executable, arguments, environment: environment, output: output)
            } else {
                // A server has no folder: the run's feeds and reports go beside the city's files
                // (its working folder), not into the current one.
                (status, peak) = try Self.runProcess("/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", directory, executable] + arguments, environment: environment, output: output)
            }
        }
        var report = Report(bills: bills, wallets: wallets, feedBytes: bytes, generateSeconds: generate, xmllintSeconds: xmllint, readerSeconds: reader, nightlySeconds: nightly, nightlyPeakMB: peak, nightlyStatus: status, historyMonths: historyMonths)
        if let data = FileManager.default.contents(atPath: output),
           let document = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let steps = document["steps"] as? [[String: Any]] {
            report.steps = steps.compactMap { step in
                guard let name = step["name"] as? String, let seconds = step["seconds"] as? Double else { return nil }
                return (name, seconds)
            }
        }
        if postgresURL == nil && status == 0 {
            report.floor = try StoreFloor(before: before, after: city.databasePath, path: directory + "/floor.sqlite",
                                          transactions: (bills + CityGenerator.chunkSize - 1) / CityGenerator.chunkSize).run()
        }
        return report
    }

    /// Runs a child to completion; returns its exit status and its peak resident memory (MB).
    static func runProcess(_ path: String, _ arguments: [String], environment: [String: String], output: String = "/dev/null") throws -> (status: Int32, peakMB: Int) {
        var pid: pid_t = 0
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { posix_spawn_file_actions_destroy(&actions) }
        guard posix_spawn(&pid, path, &actions, nil, argv, envp) == 0 else {
            throw FeedError(.io, "cannot start \(path)")
        }
        var status: Int32 = 0
        var usage = rusage()
        wait4(pid, &status, 0, &usage)
        let code = (status >> 8) & 0xFF
        return (code, Int(usage.ru_maxrss) / 1024)
    }
}
