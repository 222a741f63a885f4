import NIOConcurrencyHelpers

/// The phase a service reports on `/health/ready`: 503 while starting or draining.
package final class HealthState: Sendable {
    package enum Phase: String, Sendable { case starting, ready, draining }

    private let phase = NIOLockedValueBox(Phase.starting)

    package init() {}

    /// The current phase.
    package var current: Phase { phase.withLockedValue { $0 } }

    /// Moves to `ready` (only from `starting`).
    package func markReady() {
        phase.withLockedValue { if $0 == .starting { $0 = .ready } }
    }

    /// Moves to `draining`; the service no longer takes new work.
    package func markDraining() {
        phase.withLockedValue { $0 = .draining }
    }
}
