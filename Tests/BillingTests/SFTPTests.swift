import Feeds
import Foundation
import Testing

/// An OpenSSH server (Debian's openssh-server) on a loopback port, with its own
/// configuration, host key and one authorised ed25519 user key; stopped when released.
final class SSHServer {
    static let sshd = "/usr/sbin/sshd"
    static var available: Bool { FileManager.default.isExecutableFile(atPath: sshd) }
    /// Where sshd is installed, and always in CI (where its absence is a failure).
    static var shouldRun: Bool { available || ProcessInfo.processInfo.environment["CI"] == "true" }

    let directory: String
    let port: Int
    let process = Process()
    let user: String

    var hostKeyFingerprint: String
    var otherHostKeyFingerprint: String
    var userKey: String { directory + "/userkey" }
    var knownHosts: String { directory + "/known_hosts" }
    var otherKnownHosts: String { directory + "/known_hosts.other" }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-sshd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        user = String(cString: getpwuid(getuid())!.pointee.pw_name)
        for name in ["hostkey", "otherhostkey", "userkey"] {
            try Self.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", directory + "/" + name])
        }
        try FileManager.default.copyItem(atPath: directory + "/userkey.pub", toPath: directory + "/authorized_keys")
        port = try Self.freePort()
        let hostPublic = try String(contentsOfFile: directory + "/hostkey.pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
        let otherPublic = try String(contentsOfFile: directory + "/otherhostkey.pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
        try "[127.0.0.1]:\(port) \(hostPublic)\n".write(toFile: directory + "/known_hosts", atomically: true, encoding: .utf8)
        try "[127.0.0.1]:\(port) \(otherPublic)\n".write(toFile: directory + "/known_hosts.other", atomically: true, encoding: .utf8)
        hostKeyFingerprint = try Self.fingerprint(directory + "/hostkey.pub")
        otherHostKeyFingerprint = try Self.fingerprint(directory + "/otherhostkey.pub")
        try """
            Port \(port)
            ListenAddress 127.0.0.1
            HostKey \(directory)/hostkey
            PidFile \(directory)/sshd.pid
            AuthorizedKeysFile \(directory)/authorized_keys
            StrictModes no
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            PermitRootLogin prohibit-password
            AllowUsers \(user)
            Subsystem sftp internal-sftp
            LogLevel ERROR

            """.write(toFile: directory + "/sshd_config", atomically: true, encoding: .utf8)
        // sshd run as root wants its privilege separation folder.
        if getuid() == 0 { try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755]) }
        process.executableURL = URL(fileURLWithPath: Self.sshd)
        process.arguments = ["-D", "-e", "-f", directory + "/sshd_config"]
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        var waited = 0
        while !Self.accepts(port: port) {
            guard waited < 100, process.isRunning else { throw FeedError(.unreachable, "the test sshd did not start") }
            usleep(50_000)
            waited += 1
        }
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func url(_ path: String) -> String { "sftp://\(user)@127.0.0.1:\(port)\(path)" }

    static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw FeedError(.io, "\(executable) failed") }
    }

    /// `ssh-keygen -l -E sha256`: "256 SHA256:base64 comment (ED25519)".
    static func fingerprint(_ publicKey: String) throws -> String {
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        process.arguments = ["-l", "-E", "sha256", "-f", publicKey]
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return String(text.split(separator: " ")[1])
    }

    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        guard bound else { throw FeedError(.io, "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// A TCP listener that completes the handshake (the kernel does) and never says a word: a
/// stalled server.
final class SilentServer {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ready = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        guard ready, listen(descriptor, 8) == 0 else { throw FeedError(.io, "cannot listen") }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}

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
        try Self.feed.write(toFile: remote, atomically: true, encoding: .utf8)
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
        try "<PaymentReport/>\n".write(toFile: report, atomically: true, encoding: .utf8)
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
        try "<PaymentReport/>\n".write(toFile: report, atomically: true, encoding: .utf8)
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
