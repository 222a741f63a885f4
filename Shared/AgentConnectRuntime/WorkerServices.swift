package import AgentConnect
import AgentConnectCore
import EventBus
package import ServiceLifecycle
import ServiceSupport
import Store

/// The worker's service group: Redis, PostgreSQL, the inbound consumer, the TwiML hook, HTTP health/metrics.
package enum WorkerServices {
    /// The service group that runs `tac` (agent-worker runs it under `ServiceMain.run`, `tac.run()` directly).
    package static func group(for tac: TAC) throws -> ServiceGroup {
        let runtime = try tac.workerBackend().start(tac)
        guard let connections = runtime.connections else { throw TACError("the worker's service group runs on Redis and PostgreSQL") }
        let logger = runtime.logger
        let health = HealthState()
        let partitions = runtime.common.inboundPartitions
        let lag = StreamLagReporter(bus: runtime.bus, group: "agents", logger: logger) { (0..<partitions).map(Streams.inboundPartition) }
        return ServiceMain.group(
            services: [
                RedisClientService(client: connections.redis), connections.postgres,
                DatabaseCheckService(configuration: runtime.common.database, logger: logger),
            ] + turnServices(for: tac, on: runtime) + [lag, runtime.httpServer(health: health, connections: connections)],
            health: health, logger: logger)
    }

    /// The services that turn inbound events into `tac`'s callbacks on `runtime`: the inbound
    /// consumer (on the runtime's partition leases) and the TwiML hook.
    package static func turnServices(for tac: TAC, on runtime: WorkerRuntime) -> [any Service] {
        let configuration = tac.configuration
        let handler = TurnHandler(tac: tac, runtime: runtime)
        let consumer = InboundConsumer(
            bus: runtime.bus, leases: runtime.leases, group: "agents",
            options: ConsumerOptions(
                batchSize: configuration.maxInFlight, blockMilliseconds: 1000,
                visibilityTimeoutMilliseconds: configuration.visibilityTimeoutMilliseconds,
                maxDeliveries: configuration.maxDeliveries, isTransient: { BusError.isUnavailable($0) || PostgresStore.isUnavailable($0) }),
            maxInFlight: configuration.maxInFlight, maxConcurrentTurns: configuration.maxConcurrentTurns,
            handoverDrainMilliseconds: configuration.handoverDrainMilliseconds,
            logger: runtime.logger, handler: { event, entry in try await handler.handle(event, entry: entry) })
        return [consumer, TwiMLHookService(tac: tac, requests: runtime.twimlHookRequests)]
    }
}
