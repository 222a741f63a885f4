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
        let lag = [runtime.bus] + (runtime.voiceLeases == nil ? [] : [runtime.voiceBus])
        return ServiceMain.group(
            services: connections.redis.services + [
                connections.postgres, DatabaseCheckService(configuration: runtime.common.database, logger: logger),
            ] + turnServices(for: tac, on: runtime)
                + lag.map { bus in
                    StreamLagReporter(bus: bus, group: "agents", logger: logger) { (0..<partitions).map(Streams.inboundPartition) } as any Service
                } + [runtime.httpServer(health: health, connections: connections)],
            health: health, logger: logger)
    }

    /// The services that turn inbound events into `tac`'s callbacks on `runtime`: the inbound
    /// consumer (on the runtime's partition leases), one more for the voice partitions when calls are
    /// on a Redis of their own, and the TwiML hook.
    package static func turnServices(for tac: TAC, on runtime: WorkerRuntime) -> [any Service] {
        let handler = TurnHandler(tac: tac, runtime: runtime)
        let consumers = [(runtime.bus, runtime.leases)] + (runtime.voiceLeases.map { [(runtime.voiceBus, $0)] } ?? [])
        return consumers.map { bus, leases in consumer(for: tac, on: runtime, bus: bus, leases: leases, handler: handler) as any Service }
            + [TwiMLHookService(tac: tac, requests: runtime.twimlHookRequests)]
    }

    private static func consumer(
        for tac: TAC, on runtime: WorkerRuntime, bus: any EventBus, leases: any PartitionLeases, handler: TurnHandler
    ) -> InboundConsumer {
        let configuration = tac.configuration
        return InboundConsumer(
            bus: bus, leases: leases, group: "agents",
            options: ConsumerOptions(
                batchSize: configuration.maxInFlight, blockMilliseconds: 1000,
                visibilityTimeoutMilliseconds: configuration.visibilityTimeoutMilliseconds,
                maxDeliveries: configuration.maxDeliveries, isTransient: { BusError.isUnavailable($0) || PostgresStore.isUnavailable($0) }),
            maxInFlight: configuration.maxInFlight, maxConcurrentTurns: configuration.maxConcurrentTurns,
            handoverDrainMilliseconds: configuration.handoverDrainMilliseconds,
            logger: runtime.logger, handler: { event, entry in try await handler.handle(event, entry: entry) })
    }
}
