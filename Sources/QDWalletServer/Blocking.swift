import Dispatch
import Foundation

/// The database code of qdwallet is synchronous: a request runs it on a queue of its own, never
/// on the server's event loops, and waits at most `deadline`. A call that outlives its deadline
/// is left to finish on its thread (a database call cannot be interrupted from outside); the
/// request is answered at once.
enum Blocking {
    static let queue = DispatchQueue(label: "qdwallet.server.database", attributes: .concurrent)

    struct DeadlineExceeded: Error {}

    static func run<T: Sendable>(deadline: Duration, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        let once = Once<T>()
        return try await withCheckedThrowingContinuation { continuation in
            once.continuation = continuation
            queue.async {
                once.resume(with: Result { try body() })
            }
            let (seconds, attoseconds) = deadline.components
            let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
            queue.asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) {
                once.resume(with: .failure(DeadlineExceeded()))
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
