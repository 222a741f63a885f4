package import AgentConnect
package import AgentConnectCore
import EventBus
package import ServiceLifecycle
import ServiceSupport
import Store

/// The worker's service group: Redis, PostgreSQL, the inbound consumer, the TwiML hook, HTTP health/metrics.
package enum WorkerServices {
    /// The service group that runs `tac` (agent-worker runs it under `ServiceMain.run`, `tac.run()` directly).
    package static func group(for tac: TAC) throws -> ServiceGroup {
        guard let backend = tac.backend as? WorkerBackend else { throw TACError("this TAC does not run on the worker runtime") }
        let runtime = try backend.start(tac)
        let configuration = tac.configuration
        let logger = runtime.logger
        let handler = TurnHandler(tac: tac, runtime: runtime)
        let consumer = InboundConsumer(
            bus: runtime.bus,
            leases: PartitionLeases(
                redis: runtime.redis, group: "agents", worker: runtime.common.instanceId,
                partitions: runtime.common.inboundPartitions, ttlMilliseconds: configuration.leaseTTLMilliseconds),
            group: "agents",
            options: ConsumerOptions(
                batchSize: configuration.maxInFlight, blockMilliseconds: 1000,
                visibilityTimeoutMilliseconds: configuration.visibilityTimeoutMilliseconds,
                maxDeliveries: configuration.maxDeliveries, isTransient: { BusError.isUnavailable($0) || PostgresStore.isUnavailable($0) }),
            maxInFlight: configuration.maxInFlight, maxConcurrentTurns: configuration.maxConcurrentTurns,
            handoverDrainMilliseconds: configuration.handoverDrainMilliseconds,
            logger: logger, handler: { event, entry in try await handler.handle(event, entry: entry) })
        let health = HealthState()
        let partitions = runtime.common.inboundPartitions
        let lag = StreamLagReporter(bus: runtime.bus, group: "agents", logger: logger) { (0..<partitions).map(Streams.inboundPartition) }
        return ServiceMain.group(
            services: [
                RedisClientService(client: runtime.redis), runtime.postgres,
                DatabaseCheckService(configuration: runtime.common.database, logger: logger),
                consumer, lag, TwiMLHookService(tac: tac, redis: runtime.redis), runtime.httpServer(health: health),
            ],
            health: health, logger: logger)
    }
}
