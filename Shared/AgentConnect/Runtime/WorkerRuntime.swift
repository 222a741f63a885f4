import AgentConnectCore
import EventBus
import Hummingbird
import Logging
import ServiceLifecycle
import PostgresNIO
import ServiceSupport
import Store

/// The connections a running worker uses: Redis (bus and leases) and PostgreSQL (history, memory).
struct WorkerRuntime: Sendable {
    let configuration: TACConfiguration
    let logger: Logger
    let redis: RedisClient
    let bus: RedisStreamsEventBus
    let postgres: PostgresClient
    let store: PostgresStore
    let conversations = ConversationCache()
    let onceMemory = ConversationValues<TACMemoryResponse>()
    /// The id of each call's last reply recorded whole: an interrupt that lands after the reply was
    /// recorded replaces its text with what the caller heard.
    let lastVoiceReply = ConversationValues<String>()
    let pendingHandoffs = PendingHandoffs()

    init(configuration: TACConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        redis = RedisClient(configuration: configuration.common.redis, logger: logger)
        bus = RedisStreamsEventBus(client: redis, retentionSeconds: configuration.common.streamRetentionSeconds)
        postgres = PostgresClient(configuration: configuration.common.database.clientConfiguration, backgroundLogger: logger)
        store = PostgresStore(client: postgres, logger: logger)
    }

    /// `/health/*` and `/metrics` on the worker's port.
    func httpServer(health: HealthState) -> some Service {
        let router = Router()
        OperationalRoutes.add(to: router, health: health, readiness: DependencyProbe(redis: redis, postgres: postgres).check)
        return ServiceHTTPServer.make(router: router, common: configuration.common, name: "agent-worker", health: health, logger: logger)
    }
}
