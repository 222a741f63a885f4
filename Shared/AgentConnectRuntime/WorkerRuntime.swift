import AgentConnect
import AgentConnectCore
import EventBus
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle
import ServiceSupport
package import Store
import TwilioKit

/// The connections a running worker uses: Redis (bus and leases) and PostgreSQL (history, memory),
/// and the runtime's own settings, read from the author's ``TACConfiguration/environment``.
package struct WorkerRuntime: Sendable {
    let configuration: TACConfiguration
    /// Bind address, port, Redis, PostgreSQL, instance id, partitions.
    let common: CommonConfiguration
    /// The agent's own addresses per channel.
    let senders: Senders
    let logger: Logger
    let redis: RedisClient
    let bus: RedisStreamsEventBus
    let postgres: PostgresClient
    package let store: PostgresStore
    let conversations = ConversationCache()
    let onceMemory = ConversationValues<TACMemoryResponse>()
    /// The id of each call's last reply recorded whole: an interrupt that lands after the reply was
    /// recorded replaces its text with what the caller heard.
    let lastVoiceReply = ConversationValues<String>()
    let pendingHandoffs = PendingHandoffs()

    init(configuration: TACConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        common = try CommonConfiguration(environment: configuration.environment, defaultPort: 8084)
        senders = try Senders(environment: configuration.environment)
        redis = RedisClient(configuration: common.redis, logger: logger)
        bus = RedisStreamsEventBus(client: redis, retentionSeconds: common.streamRetentionSeconds)
        postgres = PostgresClient(configuration: common.database.clientConfiguration, backgroundLogger: logger)
        store = PostgresStore(client: postgres, logger: logger)
    }

    /// `/health/*` and `/metrics` on the worker's port.
    func httpServer(health: HealthState) -> some Service {
        let router = Router()
        OperationalRoutes.add(to: router, health: health, readiness: DependencyProbe(redis: redis, postgres: postgres).check)
        return ServiceHTTPServer.make(router: router, common: common, name: "agent-worker", health: health, logger: logger)
    }

    /// The voice-relay instance holding a call's socket, from its registration in Redis.
    func relayInstance(of conversationId: String) async throws -> String? {
        try await redis.command("GET", .string(RedisKeys.call(conversationId))).string
    }
}
