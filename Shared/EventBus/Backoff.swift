/// Exponential backoff with full jitter.
package struct Backoff: Sendable {
    private let initial: Duration
    private let maximum: Duration
    private var attempt = 0

    package init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(2)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The next delay: a random duration up to `initial · 2^attempt`, capped at `maximum`.
    package mutating func next() -> Duration {
        let ceiling = min(maximum, initial * (1 << min(attempt, 16)))
        attempt += 1
        let nanos = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        return .nanoseconds(Int64.random(in: (nanos / 2)...max(nanos / 2, nanos)))
    }

    /// Starts over after a success.
    package mutating func reset() { attempt = 0 }
}
