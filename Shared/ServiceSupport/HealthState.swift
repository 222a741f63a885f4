import NIOConcurrencyHelpers

/// The phase a service reports on `/health/ready`: 503 while starting or draining.
public final class HealthState: Sendable {
    public enum Phase: String, Sendable { case starting, ready, draining }

    private let phase = NIOLockedValueBox(Phase.starting)

    public init() {}

    /// The current phase.
    public var current: Phase { phase.withLockedValue { $0 } }

    /// Moves to `ready` (only from `starting`).
    public func markReady() {
        phase.withLockedValue { if $0 == .starting { $0 = .ready } }
    }

    /// Moves to `draining`; the service no longer takes new work.
    public func markDraining() {
        phase.withLockedValue { $0 = .draining }
    }
}
