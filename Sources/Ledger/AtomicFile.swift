import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file written whole or not at all: the bytes go to a new file beside it, are synced, and
/// the new file is renamed over the path (POSIX `rename` replaces in one step). Used instead
/// of Foundation's atomic write, which on Linux leaves an empty `TemporaryDirectory.*` folder
/// in the temporary directory after every write.
public enum AtomicFile {
    /// Writes `data` to `path`, readable by its owner only (mode 0600).
    /// On any failure the file at `path` is as it was, and nothing is left beside it.
    public static func write(_ data: Data, to path: String) throws {
        let name = (path as NSString).lastPathComponent
        let folder = (path as NSString).deletingLastPathComponent
        let partial = (folder.isEmpty ? "" : folder + "/") + ".\(name).\(getpid()).\(UUID().uuidString.prefix(8)).partial"
        func failure(_ what: String) -> LedgerError {
            LedgerError(.storage, "cannot write the file: \(what)", cause: String(cString: strerror(errno)), context: path)
        }
        let descriptor = openNew(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw failure("cannot create it beside its place") }
        var renamed = false
        defer {
            if !renamed { unlink(partial) }
        }
        do {
            defer { close(descriptor) }
            try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
                var offset = 0
                while offset < bytes.count {
                    let written = writeBytes(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        throw failure("a write failed")
                    }
                    offset += written
                }
            }
            guard fsync(descriptor) == 0 else { throw failure("it could not be synced to disk") }
        }
        guard rename(partial, path) == 0 else { throw failure("it could not replace the file at its place") }
        renamed = true
    }

    /// Writes `text` as UTF-8 to `path`, as `write(_:to:)` does.
    public static func write(_ text: String, to path: String) throws {
        try write(Data(text.utf8), to: path)
    }
}

#if canImport(Glibc)
private func openNew(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { Glibc.open(path, flags, mode) }
private func writeBytes(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { Glibc.write(descriptor, bytes, count) }
#else
private func openNew(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { Darwin.open(path, flags, mode) }
private func writeBytes(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { Darwin.write(descriptor, bytes, count) }
#endif
