import Feeds
import Foundation
import Synchronization

/// The loopback feed server of Fixtures/feed_server.py, started for one test and stopped after.
public final class FeedServer {
    public let process = Process()
    public let port: Int
    public let root: String

    public init(root: String) throws {
        self.root = root
        let portFile = FileManager.default.temporaryDirectory.appendingPathComponent("qdwallet-port-\(UUID().uuidString)").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repositoryRoot + "/Tests/QDTestSupport/Fixtures/feed_server.py", root, portFile]
        try process.run()
        var waited = 0
        while !FileManager.default.fileExists(atPath: portFile) {
            guard waited < 100, process.isRunning else { throw FeedError(.unreachable, "the test feed server did not start") }
            usleep(50_000)
            waited += 1
        }
        port = Int(try String(contentsOfFile: portFile, encoding: .utf8)) ?? 0
        try? FileManager.default.removeItem(atPath: portFile)
    }

    public func url(_ mode: String, _ file: String) -> String { "http://127.0.0.1:\(port)/\(mode)/\(file)" }

    deinit {
        // SIGKILL: a child started from a worker thread may inherit a mask that blocks SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// An OpenSSH server (Debian's openssh-server) on a loopback port, with its own
/// configuration, host key and one authorised ed25519 user key; stopped when released.
public final class SSHServer {
    public static let sshd = "/usr/sbin/sshd"
    public static var available: Bool { FileManager.default.isExecutableFile(atPath: sshd) }
    /// Where sshd is installed, and always in CI (where its absence is a failure).
    public static var shouldRun: Bool { available || ProcessInfo.processInfo.environment["CI"] == "true" }

    public let directory: String
    public let port: Int
    public let process = Process()
    public let user: String

    public var hostKeyFingerprint: String
    public var otherHostKeyFingerprint: String
    public var userKey: String { directory + "/userkey" }
    public var knownHosts: String { directory + "/known_hosts" }
    public var otherKnownHosts: String { directory + "/known_hosts.other" }

    public init() throws {
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
        try "[127.0.0.1]:\(port) \(hostPublic)\n".write(toFile: directory + "/known_hosts", atomically: false, encoding: .utf8)
        try "[127.0.0.1]:\(port) \(otherPublic)\n".write(toFile: directory + "/known_hosts.other", atomically: false, encoding: .utf8)
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

            """.write(toFile: directory + "/sshd_config", atomically: false, encoding: .utf8)
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

    public func url(_ path: String) -> String { "sftp://\(user)@127.0.0.1:\(port)\(path)" }

    public static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw FeedError(.io, "\(executable) failed") }
    }

    /// `ssh-keygen -l -E sha256`: "256 SHA256:base64 comment (ED25519)".
    public static func fingerprint(_ publicKey: String) throws -> String {
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

    public static func freePort() throws -> Int {
        let (descriptor, port) = try loopbackSocket()
        close(descriptor)
        return port
    }

    public static func accepts(port: Int) -> Bool {
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

/// A TCP socket bound to a port of 127.0.0.1 the kernel chose, and that port.
func loopbackSocket() throws -> (Int32, Int) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
    }
    guard bound else {
        close(descriptor)
        throw FeedError(.io, "no free loopback port")
    }
    return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
}

/// A TCP listener that completes the handshake (the kernel does) and never says a word: a
/// stalled server.
public final class SilentServer {
    public let descriptor: Int32
    public let port: Int

    public init() throws {
        (descriptor, port) = try loopbackSocket()
        guard listen(descriptor, 8) == 0 else {
            close(descriptor)
            throw FeedError(.io, "cannot listen")
        }
    }

    deinit { close(descriptor) }
}

/// A flag another thread sets.
public final class StopFlag: Sendable {
    public init() {}
    private let flag = Mutex(false)
    public var isSet: Bool { flag.withLock { $0 } }
    public func set() { flag.withLock { $0 = true } }
}
