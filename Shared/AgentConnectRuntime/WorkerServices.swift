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
        let lag = runtime.voiceLeases == nil ? [(runtime.bus, [])] : [(runtime.bus, Self.mainRedis), (runtime.voiceBus, Self.callsRedis)]
        return ServiceMain.group(
            services: connections.redis.services + [
                connections.postgres, DatabaseCheckService(configuration: runtime.common.database, logger: logger),
            ] + turnServices(for: tac, on: runtime)
                + lag.map { bus, dimensions in
                    StreamLagReporter(bus: bus, group: "agents", dimensions: dimensions, logger: logger) {
                        (0..<partitions).map(Streams.inboundPartition)
                    } as any Service
                } + [runtime.httpServer(health: health, connections: connections)],
            health: health, logger: logger)
    }

    /// The services that turn inbound events into `tac`'s callbacks on `runtime`: the inbound
    /// consumer (on the runtime's partition leases), one more for the voice partitions when calls are
    /// on a Redis of their own, and the TwiML hook.
    package static func turnServices(for tac: TAC, on runtime: WorkerRuntime) -> [any Service] {
        let handler = TurnHandler(tac: tac, runtime: runtime)
        // `AGENT_MAX_CONCURRENT_TURNS` is the worker's, whichever Redis a turn came from.
        let permits = TurnPermits(tac.configuration.maxConcurrentTurns)
        var consumers = [consumer(for: tac, on: runtime, bus: runtime.bus, leases: runtime.leases, permits: permits, handler: handler)]
        if let voiceLeases = runtime.voiceLeases {
            consumers[0].metricDimensions = mainRedis
            var calls = consumer(for: tac, on: runtime, bus: runtime.voiceBus, leases: voiceLeases, permits: permits, handler: handler)
            calls.metricDimensions = callsRedis
            consumers.append(calls)
        }
        return consumers + [TwiMLHookService(tac: tac, requests: runtime.twimlHookRequests)]
    }

    /// The `redis` label of the partitions' metrics when calls are on a Redis of their own (a metric's
    /// series must all have the same labels).
    private static let mainRedis = [("redis", "main")]
    private static let callsRedis = [("redis", "calls")]

    private static func consumer(
        for tac: TAC, on runtime: WorkerRuntime, bus: any EventBus, leases: any PartitionLeases, permits: TurnPermits, handler: TurnHandler
    ) -> InboundConsumer {
        let configuration = tac.configuration
        return InboundConsumer(
            bus: bus, leases: leases, group: "agents",
            options: ConsumerOptions(
                batchSize: configuration.maxInFlight, blockMilliseconds: 1000,
                visibilityTimeoutMilliseconds: configuration.visibilityTimeoutMilliseconds,
                maxDeliveries: configuration.maxDeliveries, isTransient: { BusError.isUnavailable($0) || PostgresStore.isUnavailable($0) }),
            maxInFlight: configuration.maxInFlight, permits: permits,
            handoverDrainMilliseconds: configuration.handoverDrainMilliseconds,
            logger: runtime.logger, handler: { event, entry in try await handler.handle(event, entry: entry) })
    }
}
