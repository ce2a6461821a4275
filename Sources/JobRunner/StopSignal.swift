import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Set when the process is asked to stop (SIGTERM, SIGINT); long work checks it between
/// chunks and stops cleanly after the current one.
public final class StopSignal: Sendable {
    private let flag = Atomic<Bool>(false)
    /// A signal this one also answers to: a stop of the whole run stops any part of it.
    private let parent: StopSignal?

    public init(parent: StopSignal? = nil) {
        self.parent = parent
    }

    public var requested: Bool { flag.load(ordering: .acquiring) || parent?.requested == true }

    public func request() { flag.store(true, ordering: .releasing) }

    /// Routes SIGTERM and SIGINT to this flag instead of ending the process at once.
    public func installHandlers() {
        let queue = DispatchQueue(label: "qdwallet.signals")
        var installed: [DispatchSourceSignal] = []
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [weak self] in self?.request() }
            source.resume()
            installed.append(source)
        }
        // Installed once per process, from the main thread, before any work starts.
        signalSources = installed
    }
}

/// Keeps the signal sources alive for the life of the process.
nonisolated(unsafe) private var signalSources: [DispatchSourceSignal] = []
