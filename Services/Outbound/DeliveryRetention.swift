import AgentConnectCore
import Logging
import Metrics
import ServiceLifecycle
import Store

/// Deletes finished delivery rows once they are older than `DELIVERY_RETENTION_SECONDS`, so the
/// table (one row per reply) stops growing with the traffic it has served.
///
/// A delivery row is what keeps a reply from being sent twice, and it is needed only while the
/// reply can come back: its entry on the outbound stream (or the inbound entry whose turn would
/// publish it again) lives at most `BUS_STREAM_RETENTION_SECONDS`, the retention must be at least a
/// day longer (``DeliveryRetentionSetting``), and `agentconnect dead-letters replay` refuses a dead
/// letter older than the margin between the two. Pending rows are never deleted. Every replica
/// sweeps; two sweeps at once skip each other's rows.
struct DeliveryRetention: Service {
    /// Deletes up to `limit` finished rows past the retention; returns how many went.
    typealias Prune = @Sendable (_ limit: Int) async throws -> Int

    let prune: Prune
    /// Time between sweeps.
    let interval: Duration
    /// Rows deleted per statement.
    let batch: Int
    let logger: Logger

    /// Sweeps `store` for finished rows older than `retentionSeconds`.
    init(store: PostgresStore, retentionSeconds: Int, logger: Logger) {
        self.init(logger: logger) { limit in
            // Bounded: a statement stuck on a lost connection must not hold up the service's shutdown.
            try await withTimeout(.seconds(60), "deleting old delivery rows") {
                try await store.pruneDeliveries(olderThanSeconds: retentionSeconds, limit: limit)
            }
        }
    }

    init(interval: Duration = .seconds(600), batch: Int = 5_000, logger: Logger, prune: @escaping Prune) {
        self.prune = prune
        self.interval = interval
        self.batch = batch
        self.logger = logger
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            // The first sweep a little after start-up, spread across replicas started together.
            try? await Task.sleep(for: .milliseconds(Int.random(in: 5_000...30_000)))
            while !Task.isCancelled {
                do {
                    let deleted = try await sweep()
                    if deleted > 0 {
                        logger.info("old delivery rows deleted", metadata: ["deliveries.deleted": "\(deleted)"])
                    }
                } catch is CancellationError {
                    break
                } catch {
                    logger.warning("deleting old delivery rows failed; next sweep retries", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// Deletes every finished row past the retention, a batch at a time; returns how many went.
    func sweep() async throws -> Int {
        var total = 0
        while !Task.isCancelled {
            let deleted = try await prune(batch)
            total += deleted
            Counter(label: "agentconnect_deliveries_pruned_total").increment(by: deleted)
            guard deleted == batch else { break }
            // A pause between bites, so a large first sweep does not crowd out the replies.
            try await Task.sleep(for: .milliseconds(50))
        }
        return total
    }
}
