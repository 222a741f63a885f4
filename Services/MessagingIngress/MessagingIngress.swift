import AgentConnectCore
import EventBus
import Hummingbird
import Logging
import ServiceLifecycle
import ServiceSupport

/// messaging-ingress: receives Twilio messaging webhooks and puts them on the bus.
@main
struct MessagingIngress {
    static func main() async {
        await ServiceMain.run(service: "messaging-ingress") { environment, logger in
            try buildServiceGroup(configuration: MessagingConfiguration(environment: environment), logger: logger)
        }
    }

    /// The composition root: Redis client, then HTTP.
    static func buildServiceGroup(configuration: MessagingConfiguration, logger: Logger) throws -> ServiceGroup {
        let health = HealthState()
        let redis = RedisClient(configuration: configuration.common.redis, logger: logger)
        let bus = RedisStreamsEventBus(
            client: redis, retentionSeconds: configuration.common.streamRetentionSeconds, durability: configuration.common.busDurability)
        let router = buildRouter(
            configuration: configuration, bus: bus, health: health, readiness: DependencyProbe(redis: redis).check, logger: logger)
        let app = ServiceHTTPServer.make(
            router: router, common: configuration.common, name: "messaging-ingress", health: health, logger: logger,
            limits: configuration.httpLimits)
        return ServiceMain.group(services: [RedisClientService(client: redis), app], health: health, logger: logger)
    }

    /// The routes: `/health/*` and `/metrics`, and the webhooks, which publish on `bus` (the Redis
    /// Streams bus in the service, ``InMemoryEventBus`` in tests).
    /// - Parameter readiness: the dependency check behind `/health/ready` (Redis reachable).
    static func buildRouter(
        configuration: MessagingConfiguration, bus: any EventBus, health: HealthState, readiness: (@Sendable () async -> Bool)?, logger: Logger
    ) -> Router<BasicRequestContext> {
        let router = Router()
        OperationalRoutes.add(to: router, health: health, readiness: readiness)
        WebhookController(configuration: configuration, bus: bus, logger: logger).addRoutes(to: router)
        return router
    }
}
