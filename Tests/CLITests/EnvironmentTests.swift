import Foundation
import Testing
@testable import QDWalletCLI

/// The composition root reads the environment once and hands each part only its variables.
@Suite struct EnvironmentTests {
    let environment = QDEnvironment([
        "QDWALLET_DB": "/srv/qdwallet/city.sqlite",
        "QDWALLET_JOBS_DIR": "",
        "QDWALLET_DATA_KEY_FILE": "/etc/qdwallet/key",
        "QDWALLET_SSH_KEY": "/etc/qdwallet/id_ed25519",
        "QDWALLET_NETRC": "/etc/qdwallet/netrc",
        "QDWALLET_WEBHOOK_SECRET": "s3cret",
        "QDWALLET_LOG_LEVEL": "loud",
        "HOME": "/root",
        "PGPASSWORD": "not ours",
    ])

    @Test func onlyOurVariablesAreKeptAndAnEmptyOneIsUnset() {
        #expect(environment.values.keys.sorted() == ["QDWALLET_DATA_KEY_FILE", "QDWALLET_DB", "QDWALLET_LOG_LEVEL", "QDWALLET_NETRC", "QDWALLET_SSH_KEY", "QDWALLET_WEBHOOK_SECRET"])
        #expect(environment.database == "/srv/qdwallet/city.sqlite")
        #expect(environment.jobsDirectory == nil)
        #expect(environment.webhookSecret == Array("s3cret".utf8))
        // A level that is not one falls back to info rather than silencing the logs.
        #expect(environment.logLevel == .info)
    }

    @Test func eachPartGetsOnlyWhatItReads() {
        #expect(environment.fetcherEnvironment == ["QDWALLET_SSH_KEY": "/etc/qdwallet/id_ed25519", "QDWALLET_NETRC": "/etc/qdwallet/netrc"])
        #expect(environment.dataKeyEnvironment == ["QDWALLET_DATA_KEY_FILE": "/etc/qdwallet/key"])
        #expect(environment.hasDataKey)
        #expect(!QDEnvironment(["QDWALLET_DATA_KEY": ""]).hasDataKey)
    }

    @Test func everyVariableTheCommandReadsIsListed() throws {
        let listed = Set(QDEnvironment.variables.map(\.name))
        #expect(listed.count == QDEnvironment.variables.count)
        // The README names the same variables as the list.
        let readme = try String(contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("README.md").path, encoding: .utf8)
        for name in listed {
            #expect(readme.contains("`\(name)`"), "README does not name \(name)")
        }
    }
}
