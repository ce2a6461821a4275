/// The retry hook of the SQL layer: a transaction the engine aborted to stay serialisable (or
/// could not start for another writer's lock) is run again, whole, a bounded number of times.
/// Only what is inside `body` is repeated, so `body` must be the whole transaction and free
/// of effects outside the database.
public enum SQLRetry {
    public static let attemptsDefault = 5

    public static func run<T>(attempts: Int = attemptsDefault, _ body: () throws -> T) throws -> T {
        var attempt = 1
        while true {
            do {
                return try body()
            } catch let error as SQLError where error.isRetryable && attempt < attempts {
                attempt += 1
            }
        }
    }
}
