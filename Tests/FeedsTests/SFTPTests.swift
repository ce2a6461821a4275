import Feeds
import Foundation
import QDTestSupport
import Testing

/// sftp against a real OpenSSH server: the host key is checked as OpenSSH's
/// StrictHostKeyChecking=yes does (ssh_config(5)): an unknown or changed key is refused, and
/// so is a connection with no key to check against.
@Suite(.serialized, .enabled(if: SSHServer.shouldRun))
struct SFTPTests {
    static let feed = "<Feed>sftp test \(UUID().uuidString)</Feed>\n"

    func fetcher(_ environment: [String: String]) -> FeedFetcher {
        var limits = FetchLimits()
        limits.connectTimeoutSeconds = 2
        limits.totalTimeoutSeconds = 3
        limits.lowSpeedSeconds = 2
        limits.attemptsMax = 2
        limits.backoffInitialMillis = 1
        limits.backoffMaxMillis = 2
        return FeedFetcher(limits: limits, environment: environment, sleepMillis: { _ in })
    }

    func fixture(_ server: SSHServer) throws -> (remote: String, local: String) {
        let remote = server.directory + "/feed.xml"
        try Self.feed.write(toFile: remote, atomically: false, encoding: .utf8)
        return (remote, server.directory + "/downloaded.xml")
    }

    func hostKeyRefusal(_ body: () throws -> Void) -> FeedError? {
        do { try body(); return nil } catch let error as FeedError { return error } catch { return nil }
    }

    @Test func aPinnedHostKeyFetchesAndUploadsWithAnEd25519UserKey() throws {
        #expect(SSHServer.available, "install openssh-server: CI must run these tests")
        let server = try SSHServer()
        let (remote, local) = try fixture(server)
        let fetcher = fetcher(["QDWALLET_SSH_KEY": server.userKey])
        let result = try fetcher.fetch(url: server.url(remote), to: local, sshHostKeySHA256: server.hostKeyFingerprint)
        #expect(result.bytes == Int64(Self.feed.utf8.count))
        #expect(try String(contentsOfFile: local, encoding: .utf8) == Self.feed)
        // Upload of a payment report to the same server.
        let report = server.directory + "/report.xml"
        try "<PaymentReport/>\n".write(toFile: report, atomically: false, encoding: .utf8)
        try fetcher.upload(file: report, to: server.url(server.directory + "/uploaded.xml"), sshHostKeySHA256: server.hostKeyFingerprint)
        #expect(try String(contentsOfFile: server.directory + "/uploaded.xml", encoding: .utf8) == "<PaymentReport/>\n")
        // The fingerprint also works without its "SHA256:" prefix.
        try FileManager.default.removeItem(atPath: local)
        _ = try fetcher.fetch(url: server.url(remote), to: local, sshHostKeySHA256: String(server.hostKeyFingerprint.dropFirst(7)))
        #expect(try String(contentsOfFile: local, encoding: .utf8) == Self.feed)
    }

    @Test func aKnownHostsFileWithTheServersKeyFetches() throws {
        let server = try SSHServer()
        let (remote, local) = try fixture(server)
        _ = try fetcher(["QDWALLET_SSH_KEY": server.userKey, "QDWALLET_SSH_KNOWN_HOSTS": server.knownHosts]).fetch(url: server.url(remote), to: local)
        #expect(try String(contentsOfFile: local, encoding: .utf8) == Self.feed)
    }

    @Test func aKnownHostsFileWithAnotherKeyIsRefusedNamingTheSSHHostKey() throws {
        let server = try SSHServer()
        let (remote, local) = try fixture(server)
        let error = try #require(hostKeyRefusal {
            _ = try fetcher(["QDWALLET_SSH_KEY": server.userKey, "QDWALLET_SSH_KNOWN_HOSTS": server.otherKnownHosts]).fetch(url: server.url(remote), to: local)
        })
        #expect(error.code == .hostKey)
        #expect(error.message.contains("SSH host key"))
        #expect(!error.description.contains("TLS"))
        #expect(!FileManager.default.fileExists(atPath: local))
    }

    @Test func aWrongPinnedKeyIsRefused() throws {
        let server = try SSHServer()
        let (remote, local) = try fixture(server)
        let error = try #require(hostKeyRefusal {
            _ = try fetcher(["QDWALLET_SSH_KEY": server.userKey]).fetch(url: server.url(remote), to: local, sshHostKeySHA256: server.otherHostKeyFingerprint)
        })
        #expect(error.code == .hostKey)
        #expect(error.message.contains("pinned"))
        #expect(!FileManager.default.fileExists(atPath: local))
        // Nor does an upload go to a server with the wrong key.
        let report = server.directory + "/report.xml"
        try "<PaymentReport/>\n".write(toFile: report, atomically: false, encoding: .utf8)
        #expect(hostKeyRefusal { try fetcher(["QDWALLET_SSH_KEY": server.userKey]).upload(file: report, to: server.url(server.directory + "/up.xml"), sshHostKeySHA256: server.otherHostKeyFingerprint) }?.code == .hostKey)
        #expect(!FileManager.default.fileExists(atPath: server.directory + "/up.xml"))
    }

    /// With no host key to check against, nothing is fetched: the refusal comes before any
    /// connection (a port where nothing listens gives the same refusal, not "unreachable").
    @Test func noHostKeyConfiguredIsRefusedBeforeConnecting() throws {
        let server = try SSHServer()
        let (remote, local) = try fixture(server)
        for url in [server.url(remote), "sftp://nobody@127.0.0.1:1/feed.xml"] {
            let error = try #require(hostKeyRefusal { _ = try fetcher(["QDWALLET_SSH_KEY": server.userKey]).fetch(url: url, to: local) })
            #expect(error.code == .hostKey)
            #expect(error.message.contains("SSH host key"))
            #expect(error.message.contains("ssh_host_key_sha256"))
        }
        #expect(!FileManager.default.fileExists(atPath: local))
    }

    @Test func aMissingKnownHostsFileIsRefused() throws {
        let server = try SSHServer()
        let (remote, local) = try fixture(server)
        let error = try #require(hostKeyRefusal {
            _ = try fetcher(["QDWALLET_SSH_KEY": server.userKey, "QDWALLET_SSH_KNOWN_HOSTS": server.directory + "/no-such-file"]).fetch(url: server.url(remote), to: local)
        })
        #expect(error.code == .hostKey)
        #expect(error.message.contains("known-hosts"))
    }

    @Test func aPinnedKeyThatIsNoFingerprintIsRefused() {
        for text in ["", "SHA256:", "abc", "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48", String(repeating: "A", count: 44)] {
            #expect(throws: FeedError.self) { try FeedFetcher.hostKeyFingerprint(text) }
        }
    }

    /// A server that accepts the connection and never speaks: the fetch ends at its deadline,
    /// each try bounded, and nothing is left behind.
    @Test func aStalledServerHitsTheDeadline() throws {
        let silent = try SilentServer()
        let local = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-stalled-\(UUID().uuidString).xml").path
        let started = Date()
        let error = try #require(hostKeyRefusal {
            _ = try fetcher([:]).fetch(url: "sftp://nobody@127.0.0.1:\(silent.port)/feed.xml", to: local, sshHostKeySHA256: "SHA256:" + String(repeating: "A", count: 43))
        })
        #expect(error.code == .timeout || error.code == .unreachable, "\(error)")
        #expect(Date().timeIntervalSince(started) < 15)
        #expect(!FileManager.default.fileExists(atPath: local))
        #expect(try FileManager.default.contentsOfDirectory(atPath: (local as NSString).deletingLastPathComponent).allSatisfy { !$0.hasPrefix((local as NSString).lastPathComponent + ".") })
    }
}
