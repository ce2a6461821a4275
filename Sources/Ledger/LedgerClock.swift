import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the ledger reads the time; injected so tests control it.
public protocol LedgerClock: Sendable {
    /// Microseconds since the Unix epoch.
    func nowMicros() -> TimestampMicros
}

/// The machine's real-time clock.
public struct SystemClock: LedgerClock {
    public init() {}

    public func nowMicros() -> TimestampMicros {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1_000
    }
}

/// A clock that moves only when told to.
public final class ManualClock: LedgerClock {
    private let current: Mutex<TimestampMicros>

    public init(_ start: TimestampMicros) {
        current = Mutex(start)
    }

    public func nowMicros() -> TimestampMicros {
        current.withLock { $0 }
    }

    /// Moves the clock forward.
    public func advance(micros: Int64) {
        current.withLock { $0 += micros }
    }

    /// Sets the clock.
    public func set(_ value: TimestampMicros) {
        current.withLock { $0 = value }
    }
}
