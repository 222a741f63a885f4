import AgentConnectCore
import EventBus
import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// `/health/ready`'s look at the dependencies a service cannot work without: Redis answers `PING`,
/// PostgreSQL answers `SELECT 1`, each within a second. The answer is cached for a second so probes
/// cost nothing under load.
package final class DependencyProbe: Sendable {
    private let redis: RedisClient?
    private let postgres: PostgresClient?
    private static let logger = Logger(label: "agentconnect.readiness")
    private let cached = NIOLockedValueBox<(at: ContinuousClock.Instant, ok: Bool)?>(nil)

    package init(redis: RedisClient?, postgres: PostgresClient? = nil) {
        self.redis = redis
        self.postgres = postgres
    }

    /// Whether every dependency answered.
    package func check() async -> Bool {
        if let cached = cached.withLockedValue({ $0 }), ContinuousClock.now - cached.at < .seconds(1) { return cached.ok }
        var ok = true
        if let redis {
            let answered = (try? await withTimeout(.seconds(1), "Redis PING") { try await redis.command("PING") }) != nil
            ok = answered
        }
        if ok, let postgres {
            let answered =
                (try? await withTimeout(.seconds(1), "PostgreSQL SELECT 1") {
                    try await postgres.query("SELECT 1", logger: Self.logger)
                    return true
                }) != nil
            ok = answered
        }
        cached.withLockedValue { $0 = (.now, ok) }
        return ok
    }
}
