import Foundation
import QDSchema
import QDSQL
import Testing

/// `--db postgres://...`: the same commands on a PostgreSQL server (cli.md's exit codes), a
/// database without qdwallet's schema refused, the demo on an empty database, and a password
/// never printed.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["QDWALLET_TEST_POSTGRES"]?.isEmpty == false))
struct PostgresCLITests {
    @Test func initThenTheCommandsWorkAndAnEmptyDatabaseIsRefused() throws {
        try CLIRunner.withPostgresDatabase { url in
            let cli = try CLIRunner()
            // No schema yet: refused (exit 4), nothing created.
            let before = try cli.run(["balance", "--db", url, "--phone", "13800000001"])
            #expect(before.status == 4, "\(before.stderr)")
            #expect(before.stderr.contains("qdwallet init"))
            let admin = try PostgresConnection(url: url)
            #expect(try admin.int("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0)

            let initialised = try cli.run(["init", "--db", url, "--json", "--jobs-dir", BillingCLITests.root + "/Jobs"])
            #expect(initialised.status == 0, "\(initialised.stderr)")
            // Again: nothing to do, still fine.
            #expect(try cli.run(["init", "--db", url, "--jobs-dir", BillingCLITests.root + "/Jobs"]).status == 0)
            #expect(try admin.int("SELECT count(*) FROM qdwallet_migrations") == (try QDWalletSchema.postgresMigrations().count))

            #expect(try cli.run(["wallet", "open", "--db", url, "--phone", "13800000001", "--name", "张三"]).status == 0)
            let balance = try cli.run(["balance", "--db", url, "--phone", "13800000001", "--json"])
            #expect(balance.status == 0, "\(balance.stderr)")
            #expect(try balance.json()["balance_fen"] as? Int == 0)
            let check = try cli.run(["ledger", "check", "--db", url])
            #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        }
    }

    @Test func theDemoBuildsItsWorldInAnEmptyDatabaseOnlyAndNeverPrintsThePassword() throws {
        try CLIRunner.withPostgresDatabase { url in
            var cli = try CLIRunner()
            cli.environment["PGPASSWORD"] = "unused-by-trust"
            var components = try #require(URLComponents(string: url))
            components.password = "s3cret-in-url"
            let withPassword = try #require(components.string)
            let demo = try cli.run(["demo", "--db", withPassword, "--jobs-dir", BillingCLITests.root + "/Jobs"])
            #expect(demo.status == 0, "\(demo.stderr)")
            #expect(demo.stdout.contains("ledger check: ok"))
            #expect(!demo.stdout.contains("s3cret-in-url") && !demo.stderr.contains("s3cret-in-url"))
            // Its reports went to its own folder, not the current one.
            #expect(!FileManager.default.fileExists(atPath: cli.directory.appendingPathComponent("reports").path))
            // The world is there now: a second demo refuses it (exit 1) and changes nothing.
            let admin = try PostgresConnection(url: url)
            let transactions = try admin.int("SELECT count(*) FROM ledger_transactions")
            let again = try cli.run(["demo", "--db", url, "--jobs-dir", BillingCLITests.root + "/Jobs"])
            #expect(again.status == 1, "\(again.stderr)")
            #expect(again.stderr.contains("holds data"))
            #expect(try admin.int("SELECT count(*) FROM ledger_transactions") == transactions)
        }
    }
}
