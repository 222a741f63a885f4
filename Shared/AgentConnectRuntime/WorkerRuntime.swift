package import AgentConnect
import AgentConnectCore
package import EventBus
import Hummingbird
package import Logging
import PostgresNIO
import ServiceLifecycle
import ServiceSupport
package import Store
import TwilioKit

/// What a running worker uses: the bus, the store, where calls are, the partition leases and the
/// TwiML hook's requests, and the runtime's own settings, read from the author's
/// ``TACConfiguration/environment``. In production they are Redis and PostgreSQL
/// (``init(configuration:logger:)``); tests pass in-memory twins (``init(configuration:logger:parts:)``).
package struct WorkerRuntime: Sendable {
    /// The parts a worker runs on.
    package struct Parts: Sendable {
        package var bus: any EventBus
        package var store: any AgentWorkerStore
        package var calls: any CallRegistry
        package var leases: any PartitionLeases
        package var twimlHookRequests: any TwiMLHookRequests
        /// Calls on a Redis of their own (`VOICE_REDIS_URL`): its bus, with the voice partitions and
        /// the relays' streams, and the leases of those partitions; nil when calls share `bus`.
        package var voice: (bus: any EventBus, leases: any PartitionLeases)?

        package init(
            bus: any EventBus, store: any AgentWorkerStore, calls: any CallRegistry, leases: any PartitionLeases,
            twimlHookRequests: any TwiMLHookRequests, voice: (bus: any EventBus, leases: any PartitionLeases)? = nil
        ) {
            self.bus = bus
            self.store = store
            self.calls = calls
            self.leases = leases
            self.twimlHookRequests = twimlHookRequests
            self.voice = voice
        }
    }

    /// The production connections, run as services and probed for readiness.
    struct Connections: Sendable {
        let redis: RedisClients
        let postgres: PostgresClient
    }

    let configuration: TACConfiguration
    /// Bind address, port, Redis, PostgreSQL, instance id, partitions.
    let common: CommonConfiguration
    /// The agent's own addresses per channel.
    let senders: Senders
    let logger: Logger
    let bus: any EventBus
    package let store: any AgentWorkerStore
    let calls: any CallRegistry
    let leases: any PartitionLeases
    let twimlHookRequests: any TwiMLHookRequests
    /// Where voice frames go (the relays' streams): `bus` unless calls are on a Redis of their own.
    let voiceBus: any EventBus
    /// ``LeaseFence/scope`` of `voiceBus`.
    let voiceScope: String
    /// The leases of the voice partitions on calls' own Redis; nil when calls share `bus`.
    let voiceLeases: (any PartitionLeases)?
    /// Nil with parts passed in (tests).
    let connections: Connections?
    let conversations = ConversationCache()
    let onceMemory = ConversationValues<TACMemoryResponse>()
    /// The id of each call's last reply recorded whole: an interrupt that lands after the reply was
    /// recorded replaces its text with what the caller heard.
    let lastVoiceReply = ConversationValues<String>()
    let pendingHandoffs = PendingHandoffs()
    /// The ids of each conversation's latest messages answered here: a message delivered again (a
    /// duplicate publish, an entry reclaimed after its acknowledgement was lost) is not answered twice.
    let answeredMessages = ConversationValues<[String]>()

    /// The production worker: Redis (bus, calls, leases, TwiML hook) and PostgreSQL (the store),
    /// connected when their services run.
    init(configuration: TACConfiguration, logger: Logger) throws {
        let common = try CommonConfiguration(environment: configuration.environment, defaultPort: 8084)
        let redis = RedisClients(common: common, logger: logger)
        let postgres = PostgresClient(configuration: common.database.clientConfiguration, backgroundLogger: logger)
        func leases(on client: RedisClient, scope: String) -> RedisPartitionLeases {
            RedisPartitionLeases(
                redis: client, group: "agents", worker: common.instanceId, partitions: common.inboundPartitions,
                ttlMilliseconds: configuration.leaseTTLMilliseconds, scope: scope)
        }
        let parts = Parts(
            bus: RedisStreamsEventBus(client: redis.main, retentionSeconds: common.streamRetentionSeconds),
            store: PostgresStore(client: postgres, logger: logger, preparedStatements: common.database.preparedStatements),
            calls: RedisCallRegistry(redis: redis.calls), leases: leases(on: redis.main, scope: ""),
            twimlHookRequests: RedisTwiMLHookRequests(redis: redis.calls),
            voice: redis.separate
                ? (
                    RedisStreamsEventBus(client: redis.calls, retentionSeconds: common.streamRetentionSeconds),
                    leases(on: redis.calls, scope: LeaseFence.voiceScope)
                ) : nil)
        try self.init(
            configuration: configuration, common: common, logger: logger, parts: parts, connections: Connections(redis: redis, postgres: postgres))
    }

    /// A worker on the given parts (tests: the in-memory twins).
    package init(configuration: TACConfiguration, logger: Logger, parts: Parts) throws {
        try self.init(
            configuration: configuration, common: try CommonConfiguration(environment: configuration.environment, defaultPort: 8084),
            logger: logger, parts: parts, connections: nil)
    }

    private init(configuration: TACConfiguration, common: CommonConfiguration, logger: Logger, parts: Parts, connections: Connections?) throws {
        self.configuration = configuration
        self.common = common
        self.logger = logger
        senders = try Senders(environment: configuration.environment)
        bus = parts.bus
        store = parts.store
        calls = parts.calls
        leases = parts.leases
        twimlHookRequests = parts.twimlHookRequests
        voiceBus = parts.voice?.bus ?? parts.bus
        voiceLeases = parts.voice?.leases
        voiceScope = parts.voice?.leases.fence(0).scope ?? ""
        self.connections = connections
    }

    /// `/health/*` and `/metrics` on the worker's port, ready when Redis and PostgreSQL answer.
    func httpServer(health: HealthState, connections: Connections) -> some Service {
        let router = Router()
        OperationalRoutes.add(
            to: router, health: health, readiness: DependencyProbe(redis: connections.redis.main, postgres: connections.postgres).check)
        return ServiceHTTPServer.make(router: router, common: common, name: "agent-worker", health: health, logger: logger)
    }
}
