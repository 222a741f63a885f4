import Logging
import Metrics

/// Settings of a ``GroupConsumer``.
package struct ConsumerOptions: Sendable {
    /// Entries read per call.
    package var batchSize = 64
    /// How long one blocking read waits (bounds how fast shutdown is noticed).
    package var blockMilliseconds = 1000
    /// An entry pending this long is considered abandoned and is reclaimed.
    package var visibilityTimeoutMilliseconds = 30_000
    /// Deliveries after which a failing entry moves to the dead-letter stream.
    package var maxDeliveries = 5
    /// Failures that mean a dependency is down (Redis, PostgreSQL) rather than that the entry is bad:
    /// the handler is retried in place, with backoff, and the entry is never dead-lettered for them.
    package var isTransient: @Sendable (any Error) -> Bool

    package init(
        batchSize: Int = 64, blockMilliseconds: Int = 1000, visibilityTimeoutMilliseconds: Int = 30_000, maxDeliveries: Int = 5,
        isTransient: @escaping @Sendable (any Error) -> Bool = BusError.isUnavailable
    ) {
        self.batchSize = batchSize
        self.blockMilliseconds = blockMilliseconds
        self.visibilityTimeoutMilliseconds = visibilityTimeoutMilliseconds
        self.maxDeliveries = maxDeliveries
        self.isTransient = isTransient
    }

    /// Runs `body`; while it fails with a transient error, waits (100 ms doubling to 2 s) and runs it
    /// again, until it succeeds, fails otherwise, or the task is cancelled.
    package func retryingTransient<T: Sendable>(logger: Logger, _ body: () async throws -> T) async throws -> T {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2))
        while true {
            do {
                return try await body()
            } catch let error where isTransient(error) && !Task.isCancelled {
                let delay = backoff.next()
                Counter(label: "agentconnect_transient_retries_total").increment()
                logger.warning(
                    "a dependency is unavailable; retrying in place", metadata: ["error": "\(error)", "retry.ms": "\(delay.milliseconds)"])
                try await Task.sleep(for: delay)
            }
        }
    }
}
