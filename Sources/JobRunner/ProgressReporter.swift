import Dispatch
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Progress of a long step: a line redrawn in place on a terminal (items, items/s, elapsed,
/// ETA), periodic log lines otherwise.
public final class ProgressReporter: @unchecked Sendable {
    private let terminal: Bool
    private let logger: Logger
    private let logIntervalNanos: UInt64
    private var step = ""
    private var total: Int?
    private var startedAt: UInt64 = 0
    private var lastLoggedAt: UInt64 = 0
    private var drawn = false
    private var lastLine = ""

    /// `terminal` nil asks stderr whether it is a terminal.
    public init(logger: Logger, terminal: Bool? = nil, logIntervalSeconds: Int = 10) {
        self.logger = logger
        self.terminal = terminal ?? (isatty(STDERR_FILENO) == 1)
        self.logIntervalNanos = UInt64(max(1, logIntervalSeconds)) * 1_000_000_000
    }

    public func begin(step: String, total: Int?) {
        self.step = step
        self.total = total
        startedAt = DispatchTime.now().uptimeNanoseconds
        lastLoggedAt = startedAt
        drawn = false
    }

    /// The line for `done` items so far (also what the log says).
    public func line(done: Int) -> String {
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - startedAt) / 1e9
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        var text = "\(step): \(done)"
        if let total { text += "/\(total)" }
        text += " items  \(Int(rate))/s  elapsed \(Self.clock(elapsed))"
        if let total, rate > 0, done <= total {
            text += "  ETA \(Self.clock(Double(total - done) / rate))"
        }
        return text
    }

    public func update(done: Int) {
        let now = DispatchTime.now().uptimeNanoseconds
        if terminal {
            let text = line(done: done)
            let padding = String(repeating: " ", count: max(0, lastLine.count - text.count))
            FileHandle.standardError.write(Data(("\r" + text + padding).utf8))
            lastLine = text
            drawn = true
        } else if now - lastLoggedAt >= logIntervalNanos {
            lastLoggedAt = now
            logger.info("progress", metadata: ["step": "\(step)", "items": "\(done)", "line": "\(line(done: done))"])
        }
    }

    public func end(done: Int) {
        if terminal && drawn {
            FileHandle.standardError.write(Data(("\r" + line(done: done) + "\n").utf8))
        }
        drawn = false
        lastLine = ""
    }

    static func clock(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        let h = total / 3_600, m = (total % 3_600) / 60, s = total % 60
        let mm = m < 10 ? "0\(m)" : "\(m)", ss = s < 10 ? "0\(s)" : "\(s)"
        return h > 0 ? "\(h):\(mm):\(ss)" : "\(mm):\(ss)"
    }
}
