import AgentConnectCore
import EventBus
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle
import ServiceSupport
import Store
import TwilioKit

/// outbound: delivers agent replies through Twilio's REST APIs and serves the app-facing API.
@main
struct Outbound {
    static func main() async {
        await ServiceMain.run(service: "outbound") { environment, logger in
            try buildServiceGroup(configuration: OutboundConfiguration(environment: environment), logger: logger)
        }
    }

    /// The composition root: clients, then the reply consumer, then HTTP.
    static func buildServiceGroup(configuration: OutboundConfiguration, logger: Logger) throws -> ServiceGroup {
        let health = HealthState()
        let clients = RedisClients(common: configuration.common, logger: logger)
        let redis = clients.main
        let bus = RedisStreamsEventBus(client: redis, retentionSeconds: configuration.common.streamRetentionSeconds)
        let postgres = PostgresClient(configuration: configuration.common.database.clientConfiguration, backgroundLogger: logger)
        let store = PostgresStore(client: postgres, logger: logger, preparedStatements: configuration.common.database.preparedStatements)
        var httpConfiguration = HTTP1Client.Configuration()
        httpConfiguration.tracing = Traces.service != nil
        let http = HTTP1Client(configuration: httpConfiguration)
        let api = makeAPI(configuration: configuration, httpClient: http)
        let deliverer = makeDeliverer(
            configuration: configuration, api: api, store: store, logger: logger,
            owner: "\(configuration.common.instanceId)/\(UInt32.random(in: 0...UInt32.max))")
        let consumer = GroupConsumer(
            bus: bus, group: "outbound", consumer: configuration.common.instanceId, streams: [Streams.outbound],
            options: ConsumerOptions(
                batchSize: 128, visibilityTimeoutMilliseconds: configuration.visibilityTimeoutMilliseconds, maxDeliveries: 10,
                isTransient: { BusError.isUnavailable($0) || PostgresStore.isUnavailable($0) }), logger: logger
        ) { event, entry in
            try await deliverer.deliver(event, entry: entry)
        }
        let router = makeRouter(
            configuration: configuration, api: api, store: store, keys: RedisIdempotencyRecords(redis: redis),
            callTokens: RelayCallTokens(redis: clients.calls), health: health, readiness: DependencyProbe(redis: redis, postgres: postgres).check,
            logger: logger)
        let app = ServiceHTTPServer.make(router: router, common: configuration.common, name: "outbound", health: health, logger: logger)
        let lag = StreamLagReporter(bus: bus, group: "outbound", logger: logger) { [Streams.outbound] }
        var services: [any Service] =
            clients.services + [
                postgres, DatabaseCheckService(configuration: configuration.common.database, logger: logger),
                HTTPClientService(client: http), consumer, lag, app,
            ]
        if configuration.deliveryRetentionSeconds > 0 {
            services.append(DeliveryRetention(store: store, retentionSeconds: configuration.deliveryRetentionSeconds, logger: logger))
        }
        return ServiceMain.group(
            services: services, health: health,
            logger: logger)
    }

    /// Twilio's REST APIs through `httpClient`, each call bounded by `TWILIO_HTTP_TIMEOUT_MS`.
    static func makeAPI(configuration: OutboundConfiguration, httpClient: HTTP1Client) -> ConversationsAPI {
        ConversationsAPI(
            rest: TwilioRESTClient(
                configuration: configuration.twilio, httpClient: httpClient,
                timeout: .milliseconds(Int64(configuration.twilioTimeoutMilliseconds))))
    }

    /// The `reply.ready` deliverer on `store` (``PostgresStore`` in the service, ``InMemoryStore`` in
    /// tests), its participant reconciler on the same store; `owner` names this process on the rows it claims.
    static func makeDeliverer(
        configuration: OutboundConfiguration, api: ConversationsAPI, store: any OutboundStore, logger: Logger, owner: String
    ) -> ReplyDeliverer {
        ReplyDeliverer(
            configuration: configuration, api: api, reconciler: ParticipantReconciler(api: api, store: store, logger: logger), store: store,
            logger: logger, owner: owner)
    }

    /// The routes: `/health/*` and `/metrics`, and the app-facing API on `store`, `keys` and
    /// `callTokens` (PostgreSQL and Redis in the service, twins in tests).
    /// - Parameter readiness: the dependency check behind `/health/ready` (Redis and PostgreSQL reachable).
    static func makeRouter(
        configuration: OutboundConfiguration, api: ConversationsAPI, store: any OutboundStore, keys: any IdempotencyRecords,
        callTokens: any CallTokenIssuer, health: HealthState, readiness: (@Sendable () async -> Bool)?, logger: Logger
    ) -> Router<BasicRequestContext> {
        let router = Router()
        OperationalRoutes.add(to: router, health: health, readiness: readiness)
        OutboundAPI(configuration: configuration, api: api, store: store, keys: keys, callTokens: callTokens, logger: logger).add(to: router)
        return router
    }
}
