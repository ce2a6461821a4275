import CCurl
import Dispatch
import Foundation
import Ledger
import Logging
import Synchronization

/// Bounds on every transfer.
public struct FetchLimits: Sendable, Hashable {
    public var connectTimeoutSeconds = 15
    public var totalTimeoutSeconds = 600
    /// Largest feed accepted; a larger one is refused while it streams.
    public var bytesMax: Int64 = 512 * 1_024 * 1_024
    /// A transfer slower than this many bytes/s for `lowSpeedSeconds` is abandoned.
    public var lowSpeedBytesPerSecond = 1_024
    public var lowSpeedSeconds = 30
    /// Tries for transient faults (timeouts, 5xx, resets, truncated bodies).
    public var attemptsMax = 4
    public var backoffInitialMillis = 500
    public var backoffMaxMillis = 30_000

    public init() {}
}

/// What a fetch did.
public struct FetchResult: Sendable, Hashable {
    public var bytes: Int64
    public var attempts: Int
    public var responseCode: Int
}

/// Moves feeds and reports over https, http (loopback tests), sftp and file with libcurl:
/// bounded in time and size, streamed to disk, retried only when a retry can help, TLS
/// verification always on, credentials from a netrc file or the environment and never logged.
public struct FeedFetcher: Sendable {
    public let limits: FetchLimits
    let logger: Logger
    let sleepMillis: @Sendable (Int) -> Void
    /// netrc file for user names and passwords (`QDWALLET_NETRC`), and the SSH key and
    /// known-hosts files for sftp (`QDWALLET_SSH_KEY`, `QDWALLET_SSH_KNOWN_HOSTS`).
    let environment: [String: String]
    /// Asked during every transfer (about once a second and on every block): true stops it at
    /// once, so SIGTERM ends a run within seconds even in the middle of a slow download.
    public let shouldStop: @Sendable () -> Bool

    public init(limits: FetchLimits = FetchLimits(), logger: Logger = Logger(label: "qdwallet.fetch"), environment: [String: String] = [:],
                sleepMillis: @escaping @Sendable (Int) -> Void = { usleep(useconds_t($0) * 1_000) }, shouldStop: @escaping @Sendable () -> Bool = { false }) {
        self.limits = limits
        self.logger = logger
        self.environment = environment
        self.sleepMillis = sleepMillis
        self.shouldStop = shouldStop
        _ = FeedFetcher.globalInit
    }

    /// The same fetcher with other bounds.
    public func with(limits: FetchLimits) -> FeedFetcher {
        FeedFetcher(limits: limits, logger: logger, environment: environment, sleepMillis: sleepMillis, shouldStop: shouldStop)
    }

    /// The same fetcher, stopped by `shouldStop` (the run's stop signal).
    public func stopping(when shouldStop: @escaping @Sendable () -> Bool) -> FeedFetcher {
        FeedFetcher(limits: limits, logger: logger, environment: environment, sleepMillis: sleepMillis, shouldStop: shouldStop)
    }

    private static let globalInit: Bool = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        return true
    }()

    /// The curl library's version, for diagnostics.
    public static var curlVersion: String {
        _ = globalInit
        return String(cString: qdw_curl_version_text())
    }

    /// The same fetcher (environment, clock of retries) with another size bound and logger.
    public func with(bytesMax: Int64, logger: Logger) -> FeedFetcher {
        var limits = self.limits
        limits.bytesMax = bytesMax
        return FeedFetcher(limits: limits, logger: logger, environment: environment, sleepMillis: sleepMillis, shouldStop: shouldStop)
    }

    /// A URL fit for logs: user name and password removed.
    public static func redact(_ url: String) -> String { Redaction.url(url) }

    /// Downloads `url` into `destination` (written as `destination.partial`, renamed when
    /// complete, mode 0600), retrying transient faults with backoff and jitter. An sftp URL
    /// needs the server's host key: `sshHostKeySHA256` (a pinned key, as OpenSSH prints its
    /// fingerprint) or a known-hosts file in `QDWALLET_SSH_KNOWN_HOSTS`.
    public func fetch(url: String, to destination: String, sshHostKeySHA256: String? = nil) throws(FeedError) -> FetchResult {
        var attempt = 1
        while true {
            logger.debug("fetch attempt", metadata: ["url": "\(Self.redact(url))", "attempt": "\(attempt)"])
            do {
                var result = try fetchOnce(url: url, to: destination, attempt: attempt, sshHostKeySHA256: sshHostKeySHA256)
                result.attempts = attempt
                return result
            } catch let error where error.isTransient && attempt < limits.attemptsMax {
                let base = min(limits.backoffMaxMillis, limits.backoffInitialMillis << min(attempt - 1, 16))
                let wait = Int.random(in: max(1, base / 2)...max(1, base))
                logger.warning("fetch retry", metadata: ["url": "\(Self.redact(url))", "attempt": "\(attempt + 1)", "wait_ms": "\(wait)", "error": "\(error.code.rawValue)"])
                sleepMillis(wait)
                attempt += 1
            }
        }
    }

    private func fetchOnce(url: String, to destination: String, attempt: Int, sshHostKeySHA256: String?) throws(FeedError) -> FetchResult {
        if url.hasPrefix("file://") { try Self.requireRegularFile(url: url, shown: Self.redact(url)) }
        // Each attempt writes its own file: a process that hung and wakes later can never
        // write into a download another attempt or run already completed.
        let partial = "\(destination).\(getpid())-\(attempt)-\(UInt32.random(in: 0...UInt32.max)).partial"
        let descriptor = open(partial, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw FeedError(.io, "cannot write the download", cause: String(cString: strerror(errno)), context: partial)
        }
        let sink = WriteSink(descriptor: descriptor, bytesMax: limits.bytesMax)
        defer { close(descriptor) }
        let responseCode: Int
        do {
            responseCode = try perform(url: url, sshHostKeySHA256: sshHostKeySHA256) { handle in
                qdw_curl_setopt_write_function(handle, writeToSink)
                qdw_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque())
                qdw_curl_setopt_off_t(handle, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(limits.bytesMax))
            } sinkState: { sink.state }
        } catch {
            unlink(partial)
            throw error
        }
        guard fsync(descriptor) == 0, rename(partial, destination) == 0 else {
            unlink(partial)
            throw FeedError(.io, "cannot store the download", cause: String(cString: strerror(errno)), context: destination)
        }
        return FetchResult(bytes: sink.written, attempts: 1, responseCode: responseCode)
    }

    /// POSTs `body` to an http(s) URL once (the caller decides about retries); returns the
    /// HTTP status. A 4xx or 5xx answer is returned, not thrown; transport faults are thrown.
    public func post(url: String, body: Data, headers: [String]) throws(FeedError) -> Int {
        guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
            throw FeedError(.transport, "a webhook must be an http(s) URL", context: Self.redact(url))
        }
        var list: UnsafeMutablePointer<curl_slist>? = curl_slist_append(nil, "Expect:")
        for header in headers + ["Content-Type: application/json"] { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }
        // curl copies the fields (COPYPOSTFIELDS), so the bytes need not outlive this call.
        let bytes = [UInt8](body) + [0]
        return try perform(url: url, failOnError: false) { handle in
            qdw_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, list)
            qdw_curl_setopt_long(handle, CURLOPT_POST, 1)
            qdw_curl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            bytes.withUnsafeBytes { raw in
                _ = qdw_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress))
            }
            qdw_curl_setopt_write_function(handle, discardBody)
        } sinkState: { .ok }
    }

    /// Uploads a local file to `url` (https PUT, sftp or file), with the same bounds and the
    /// same host key rule for sftp as `fetch`.
    public func upload(file: String, to url: String, sshHostKeySHA256: String? = nil) throws(FeedError) {
        if url.hasPrefix("file://") {
            let directory = (String(url.dropFirst(7)) as NSString).deletingLastPathComponent
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var attempt = 1
        while true {
            do {
                try uploadOnce(file: file, to: url, sshHostKeySHA256: sshHostKeySHA256)
                return
            } catch let error where error.isTransient && attempt < limits.attemptsMax {
                let base = min(limits.backoffMaxMillis, limits.backoffInitialMillis << min(attempt - 1, 16))
                sleepMillis(Int.random(in: max(1, base / 2)...max(1, base)))
                attempt += 1
            }
        }
    }

    private func uploadOnce(file: String, to url: String, sshHostKeySHA256: String?) throws(FeedError) {
        if url.hasPrefix("file://") { try Self.requireRegularFile(url: url, shown: Self.redact(url), mayBeMissing: true) }
        guard let input = fopen(file, "rb") else {
            throw FeedError(.io, "cannot read the file to upload", cause: String(cString: strerror(errno)), context: file)
        }
        defer { fclose(input) }
        var info = stat()
        fstat(fileno(input), &info)
        // No "Expect: 100-continue" round trip: servers that do not answer it would stall the upload.
        let headers = curl_slist_append(nil, "Expect:")
        defer { curl_slist_free_all(headers) }
        _ = try perform(url: url, sshHostKeySHA256: sshHostKeySHA256) { handle in
            qdw_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headers)
            qdw_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            qdw_curl_setopt_read_function(handle, readFromFile)
            qdw_curl_setopt_pointer(handle, CURLOPT_READDATA, UnsafeMutableRawPointer(input))
            qdw_curl_setopt_off_t(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(info.st_size))
            qdw_curl_setopt_long(handle, CURLOPT_FTP_CREATE_MISSING_DIRS, 1)
        } sinkState: { .ok }
    }

    /// One transfer with the common options; returns the protocol's response code.
    private func perform(url: String, failOnError: Bool = true, sshHostKeySHA256: String? = nil, configure: (UnsafeMutableRawPointer) -> Void, sinkState: () -> WriteSink.State) throws(FeedError) -> Int {
        let shown = Self.redact(url)
        guard url.hasPrefix("https://") || url.hasPrefix("http://") || url.hasPrefix("sftp://") || url.hasPrefix("file://") else {
            throw FeedError(.transport, "only https, http, sftp and file URLs are supported", context: shown)
        }
        if shouldStop() { throw FeedError(.stopped, "the transfer was not started: the run was asked to stop", context: shown) }
        let isSFTP = url.hasPrefix("sftp://")
        let pinnedHostKey = try sshHostKeySHA256.map { key throws(FeedError) in try Self.hostKeyFingerprint(key) }
        let knownHosts = environment["QDWALLET_SSH_KNOWN_HOSTS"].flatMap { $0.isEmpty ? nil : $0 }
        if isSFTP {
            // Fail closed, as OpenSSH's StrictHostKeyChecking does: without a host key to check
            // against, anyone on the path could serve a feed.
            if pinnedHostKey == nil && knownHosts == nil {
                throw FeedError(.hostKey, "an sftp server's SSH host key must be known before connecting: pin it with ssh_host_key_sha256 for the biller in Jobs/billers.toml, or name a known-hosts file in QDWALLET_SSH_KNOWN_HOSTS", context: shown)
            }
            if pinnedHostKey == nil, let knownHosts, !FileManager.default.isReadableFile(atPath: knownHosts) {
                throw FeedError(.hostKey, "the SSH known-hosts file of QDWALLET_SSH_KNOWN_HOSTS cannot be read, so the server's host key cannot be checked", context: knownHosts)
            }
        }
        guard let handle = curl_easy_init() else {
            throw FeedError(.transport, "libcurl could not create a handle")
        }
        defer { curl_easy_cleanup(handle) }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        return try errorBuffer.withUnsafeMutableBufferPointer { buffer throws(FeedError) -> Int in
            qdw_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, buffer.baseAddress)
            qdw_curl_setopt_string(handle, CURLOPT_URL, url)
            qdw_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "https,http,sftp,file")
            qdw_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
            qdw_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            qdw_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1)
            qdw_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2)
            qdw_curl_setopt_long(handle, CURLOPT_FAILONERROR, failOnError ? 1 : 0)
            qdw_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, limits.connectTimeoutSeconds)
            qdw_curl_setopt_long(handle, CURLOPT_TIMEOUT, limits.totalTimeoutSeconds)
            qdw_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, limits.lowSpeedBytesPerSecond)
            qdw_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, limits.lowSpeedSeconds)
            qdw_curl_setopt_string(handle, CURLOPT_USERAGENT, "qdwallet")
            if let netrc = environment["QDWALLET_NETRC"], !netrc.isEmpty {
                qdw_curl_setopt_long(handle, CURLOPT_NETRC, Int(CURL_NETRC_OPTIONAL.rawValue))
                qdw_curl_setopt_string(handle, CURLOPT_NETRC_FILE, netrc)
            }
            if let key = environment["QDWALLET_SSH_KEY"], !key.isEmpty {
                qdw_curl_setopt_string(handle, CURLOPT_SSH_PRIVATE_KEYFILE, key)
            }
            if isSFTP {
                if let pinnedHostKey {
                    qdw_curl_setopt_string(handle, CURLOPT_SSH_HOST_PUBLIC_KEY_SHA256, pinnedHostKey)
                } else if let knownHosts {
                    qdw_curl_setopt_string(handle, CURLOPT_SSH_KNOWNHOSTS, knownHosts)
                }
            }
            configure(handle)
            // The progress callback stops the transfer when the run is asked to stop.
            let watch = TransferWatch(shouldStop: shouldStop)
            qdw_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
            qdw_curl_setopt_progress_function(handle, watchTransfer)
            qdw_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, Unmanaged.passUnretained(watch).toOpaque())
            let code = withExtendedLifetime(watch) { curl_easy_perform(handle) }
            if code == CURLE_ABORTED_BY_CALLBACK && watch.stopped {
                throw FeedError(.stopped, "the transfer was stopped: the run was asked to stop", context: shown)
            }
            var response = 0
            qdw_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &response)
            if code == CURLE_OK { return response }
            let detail = String(cString: buffer.baseAddress!)
            let cause = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            switch sinkState() {
            case .tooLarge:
                throw FeedError(.tooLarge, "the feed is larger than the limit of \(limits.bytesMax) bytes", context: shown)
            case .writeFailed:
                throw FeedError(.io, "the download could not be written to disk", context: shown)
            case .ok:
                break
            }
            if isSFTP && code == CURLE_PEER_FAILED_VERIFICATION {
                throw FeedError(.hostKey, pinnedHostKey != nil
                    ? "the sftp server's SSH host key is not the one pinned for this biller (ssh_host_key_sha256): refused, as the server may not be the biller's"
                    : "the sftp server's SSH host key is not in the known-hosts file (QDWALLET_SSH_KNOWN_HOSTS) or differs from it: refused, as the server may not be the biller's",
                    cause: cause, context: shown)
            }
            throw Self.classify(code, response: response, cause: cause, url: shown, bytesMax: limits.bytesMax)
        }
    }

    /// A file:// URL names a regular file, or nothing is read: a FIFO or a device would block
    /// the open beyond every deadline.
    static func requireRegularFile(url: String, shown: String, mayBeMissing: Bool = false) throws(FeedError) {
        guard let path = URL(string: url)?.path, !path.isEmpty else {
            throw FeedError(.transport, "the file URL has no path", context: shown)
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            if mayBeMissing && errno == ENOENT { return }
            throw FeedError(.notFound, "there is no feed at this location", cause: String(cString: strerror(errno)), context: shown)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw FeedError(.transport, "only regular files are read from file:// URLs (this is a FIFO, a device or a folder)", context: shown)
        }
    }

    /// A pinned SSH host key: the base64 SHA-256 of the key, as `ssh-keygen -l -E sha256`
    /// prints it (with or without its "SHA256:" prefix and padding).
    public static func hostKeyFingerprint(_ text: String) throws(FeedError) -> String {
        var value = text.hasPrefix("SHA256:") ? String(text.dropFirst(7)) : text
        while value.hasSuffix("=") { value.removeLast() }
        var padded = value
        while padded.count % 4 != 0 { padded += "=" }
        guard value.count == 43, let bytes = Data(base64Encoded: padded), bytes.count == 32 else {
            throw FeedError(.hostKey, "a pinned SSH host key is the base64 SHA-256 fingerprint of 43 characters that ssh-keygen -l -E sha256 prints (SHA256:...)")
        }
        return padded
    }

    static func classify(_ code: CURLcode, response: Int, cause: String, url: String, bytesMax: Int64) -> FeedError {
        switch code {
        case CURLE_HTTP_RETURNED_ERROR:
            switch response {
            case 404, 410: return FeedError(.notFound, "the server has no feed at this URL (HTTP \(response))", context: url)
            case 401, 403: return FeedError(.authentication, "the server refused the credentials (HTTP \(response)); check the netrc entry", context: url)
            case 408, 429, 500...599: return FeedError(.unreachable, "the server failed (HTTP \(response))", context: url)
            default: return FeedError(.transport, "the server refused the request (HTTP \(response))", context: url)
            }
        case CURLE_OPERATION_TIMEDOUT:
            return FeedError(.timeout, "the transfer timed out", cause: cause, context: url)
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_SSH:
            return FeedError(.unreachable, "the transfer broke off", cause: cause, context: url)
        case CURLE_FILESIZE_EXCEEDED:
            return FeedError(.tooLarge, "the feed is larger than the limit of \(bytesMax) bytes", context: url)
        case CURLE_REMOTE_FILE_NOT_FOUND, CURLE_FILE_COULDNT_READ_FILE:
            return FeedError(.notFound, "there is no feed at this location", cause: cause, context: url)
        case CURLE_LOGIN_DENIED, CURLE_REMOTE_ACCESS_DENIED:
            return FeedError(.authentication, "the server refused the credentials", cause: cause, context: url)
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            return FeedError(.tls, "the TLS connection could not be verified; the server's certificate is not trusted", cause: cause, context: url)
        case CURLE_UNSUPPORTED_PROTOCOL:
            return FeedError(.transport, "the URL's protocol is not allowed", cause: cause, context: url)
        default:
            return FeedError(.transport, "the transfer failed", cause: cause, context: url)
        }
    }
}

/// Where curl's write callback puts the bytes.
final class WriteSink {
    enum State { case ok, tooLarge, writeFailed }
    let descriptor: Int32
    let bytesMax: Int64
    var written: Int64 = 0
    var state = State.ok

    init(descriptor: Int32, bytesMax: Int64) {
        self.descriptor = descriptor
        self.bytesMax = bytesMax
    }
}

private func writeToSink(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ user: UnsafeMutableRawPointer?) -> Int {
    guard let data, let user else { return 0 }
    let sink = Unmanaged<WriteSink>.fromOpaque(user).takeUnretainedValue()
    let length = size * count
    guard sink.written + Int64(length) <= sink.bytesMax else {
        sink.state = .tooLarge
        return 0
    }
    var offset = 0
    while offset < length {
        let done = write(sink.descriptor, data + offset, length - offset)
        if done <= 0 {
            sink.state = .writeFailed
            return 0
        }
        offset += done
    }
    sink.written += Int64(length)
    return length
}

private func discardBody(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ user: UnsafeMutableRawPointer?) -> Int {
    size * count
}

private func readFromFile(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ user: UnsafeMutableRawPointer?) -> Int {
    guard let data, let user else { return 0 }
    return fread(data, 1, size * count, user.assumingMemoryBound(to: FILE.self))
}

/// What curl's progress callback consults during a transfer.
final class TransferWatch {
    public let shouldStop: @Sendable () -> Bool
    var stopped = false

    init(shouldStop: @escaping @Sendable () -> Bool) {
        self.shouldStop = shouldStop
    }
}

private func watchTransfer(_ user: UnsafeMutableRawPointer?, _ downloadTotal: curl_off_t, _ downloaded: curl_off_t, _ uploadTotal: curl_off_t, _ uploaded: curl_off_t) -> Int32 {
    guard let user else { return 0 }
    let watch = Unmanaged<TransferWatch>.fromOpaque(user).takeUnretainedValue()
    if watch.shouldStop() {
        watch.stopped = true
        return 1
    }
    return 0
}
