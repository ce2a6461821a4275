import Foundation
import NIOCore
import NIOPosix

/// The database code of qdwallet is synchronous: a request runs it on a pool of threads of its
/// own (never on the server's event loops, nor on Dispatch's shared threads, which anything
/// else in the process may be holding), and waits at most `deadline`, timed by an event loop.
/// A call that outlives its deadline is left to finish on its thread (a database call cannot
/// be interrupted from outside); the request is answered at once.
public enum Blocking {
    /// Threads for database calls: as many as calls may wait on the database at once.
    static let threads = 16
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
        return pool
    }()

    struct DeadlineExceeded: Error {}
    struct PoolStopped: Error {}

    public static func run<T: Sendable>(deadline: Duration, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        let once = Once<T>()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let (seconds, attoseconds) = deadline.components
        return try await withCheckedThrowingContinuation { continuation in
            once.continuation = continuation
            let timer = loop.scheduleTask(in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)) {
                once.resume(with: .failure(DeadlineExceeded()))
            }
            pool.submit { state in
                guard state == .active else {
                    once.resume(with: .failure(PoolStopped()))
                    return
                }
                once.resume(with: Result { try body() })
                timer.cancel()
            }
        }
    }

    /// Resumes its continuation once, whichever comes first.
    private final class Once<T: Sendable>: @unchecked Sendable {
        private let lock = NSLock()
        var continuation: CheckedContinuation<T, any Error>?

        func resume(with result: Result<T, any Error>) {
            lock.lock()
            let waiting = continuation
            continuation = nil
            lock.unlock()
            waiting?.resume(with: result)
        }
    }
}
