import AgentConnectCore
import EventBus
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import ServiceSupport
import Store

/// The agent author's entry point: register callbacks and channels, then ``run()``.
///
/// ```swift
/// let tac = try TAC(configuration: .fromEnvironment())
/// let sms = SMSChannel(tac)
/// tac.onMessageReady { message, session, memory in "You said: \(message)" }
/// try await tac.run()
/// ```
///
/// A `TAC` program is an agent worker: it consumes the events voice-relay and messaging-ingress put
/// on the bus, runs the callbacks, and sends replies back through the bus. Run as many copies as
/// the load needs; each conversation's turns still run in order, on one worker at a time.
public final class TAC: Sendable {
    /// `onMessageReady`: the customer's text, the session, memory (per `memoryMode`); return text to
    /// reply on the same channel, or `nil` when you replied with `sendResponse` yourself.
    public typealias MessageReadyCallback = @Sendable (String, ConversationSession, TACMemoryResponse?) async throws -> String?

    struct Callbacks: Sendable {
        var messageReady: MessageReadyCallback?
        var interrupt: (@Sendable (ConversationSession, InterruptMessage) async -> Void)?
        var conversationEnded: (@Sendable (ConversationSession) async -> Void)?
        var dtmf: (@Sendable (ConversationSession, DTMFMessage) async -> Void)?
        var callStatus: (@Sendable (ConversationSession, CallStatusEvent) async -> Void)?
        var error: (@Sendable (any Error, [String: String]) async -> Void)?
        var deliveryStatus: (@Sendable (ConversationSession, DeliveryStatusUpdate) async -> Void)?
        var relayMessage: (@Sendable (ConversationSession, ConversationRelayMessage) async -> Void)?
        var twimlHook: (@Sendable (TwiMLRequest) async throws -> VoiceTwiMLOptions?)?
    }

    /// The configuration read at start-up.
    public let configuration: TACConfiguration
    /// The worker's logger.
    public let logger: Logger
    let callbacks = NIOLockedValueBox(Callbacks())
    let channels = NIOLockedValueBox<[ChannelKind: MemoryMode]>([:])
    let runtimeBox = NIOLockedValueBox<WorkerRuntime?>(nil)

    /// A worker with `configuration`. Without a `logger`, logging and metrics are set up from
    /// `LOG_LEVEL`/`LOG_FORMAT` as in the built-in services.
    public init(configuration: TACConfiguration, logger: Logger? = nil) {
        self.configuration = configuration
        self.logger = logger ?? (try? ServiceMain.bootstrap(service: "agent-worker", environment: configuration.environment)) ?? Logger(label: "agent-worker")
    }

    /// Registers the one message callback (a second call replaces the first).
    public func onMessageReady(_ callback: @escaping MessageReadyCallback) {
        callbacks.withLockedValue { $0.messageReady = callback }
    }

    /// Called when a caller interrupts; the interrupted turn's task is already cancelled.
    public func onInterrupt(_ callback: @escaping @Sendable (ConversationSession, InterruptMessage) async -> Void) {
        callbacks.withLockedValue { $0.interrupt = callback }
    }

    /// Called once per conversation when it ends (closed, hung up, handed off), whatever the number of workers.
    public func onConversationEnded(_ callback: @escaping @Sendable (ConversationSession) async -> Void) {
        callbacks.withLockedValue { $0.conversationEnded = callback }
    }

    /// Called when a caller presses a key.
    public func onDtmf(_ callback: @escaping @Sendable (ConversationSession, DTMFMessage) async -> Void) {
        callbacks.withLockedValue { $0.dtmf = callback }
    }

    /// Called for call status, AMD, recording and ConversationRelay session callbacks.
    public func onCallStatus(_ callback: @escaping @Sendable (ConversationSession, CallStatusEvent) async -> Void) {
        callbacks.withLockedValue { $0.callStatus = callback }
    }

    /// Called for recoverable failures that are otherwise only logged.
    public func onError(_ callback: @escaping @Sendable (any Error, [String: String]) async -> Void) {
        callbacks.withLockedValue { $0.error = callback }
    }

    /// Called for ConversationRelay's `info` and `configUpdated` messages (errors go to ``onError(_:)``).
    public func onRelayMessage(_ callback: @escaping @Sendable (ConversationSession, ConversationRelayMessage) async -> Void) {
        callbacks.withLockedValue { $0.relayMessage = callback }
    }

    /// Hands a failure to the author's ``onError(_:)`` callback (and logs it): a relay `error` frame, a
    /// reply that could not be delivered, a turn that threw. `context` names what failed
    /// (`conversation.id`, `channel`, `source`, Twilio's `error.code`, …).
    func reportError(_ error: any Error, context: [String: String]) async {
        logger.warning("reported to onError", metadata: context.mapValues { .string($0) }.merging(["error": "\(error)"]) { $1 })
        await callbacks.withLockedValue(\.error)?(error, context)
    }

    /// The memory mode of a channel: the registered channel's, else the environment's.
    func memoryMode(for channel: ChannelKind) -> MemoryMode {
        channels.withLockedValue { $0[channel] } ?? configuration.memoryModes[channel] ?? .never
    }

    func register(_ channel: ChannelKind, memoryMode: MemoryMode) {
        channels.withLockedValue { $0[channel] = memoryMode }
    }

    /// The running worker's connections; throws when called before ``run()``.
    func runtime() throws -> WorkerRuntime {
        guard let runtime = runtimeBox.withLockedValue({ $0 }) else {
            throw TACError("the worker is not running: call tac.run() first")
        }
        return runtime
    }

    /// Runs the worker until SIGTERM/SIGINT, then drains: stops reading, finishes the turns in hand.
    public func run() async throws {
        ServiceMain.unblockTerminationSignals()
        try await buildServiceGroup().run()
    }

    /// The worker's service group (Redis, PostgreSQL, the inbound consumer, HTTP health/metrics).
    public func buildServiceGroup() throws -> ServiceGroup {
        let runtime = WorkerRuntime(configuration: configuration, logger: logger)
        runtimeBox.withLockedValue { $0 = runtime }
        let handler = TurnHandler(tac: self, runtime: runtime)
        let consumer = InboundConsumer(
            bus: runtime.bus,
            leases: PartitionLeases(
                redis: runtime.redis, group: "agents", worker: configuration.common.instanceId,
                partitions: configuration.common.inboundPartitions, ttlMilliseconds: configuration.leaseTTLMilliseconds),
            group: "agents",
            options: ConsumerOptions(
                batchSize: configuration.maxInFlight, blockMilliseconds: 1000, visibilityTimeoutMilliseconds: configuration.visibilityTimeoutMilliseconds,
                maxDeliveries: configuration.maxDeliveries, isTransient: { BusError.isUnavailable($0) || PostgresStore.isUnavailable($0) }),
            maxInFlight: configuration.maxInFlight, maxConcurrentTurns: configuration.maxConcurrentTurns,
            handoverDrainMilliseconds: configuration.handoverDrainMilliseconds,
            logger: logger, handler: { event, entry in try await handler.handle(event, entry: entry) })
        let health = HealthState()
        let partitions = configuration.common.inboundPartitions
        let lag = StreamLagReporter(bus: runtime.bus, group: "agents", logger: logger) { (0..<partitions).map(Streams.inboundPartition) }
        return ServiceMain.group(
            services: [
                RedisClientService(client: runtime.redis), runtime.postgres, DatabaseCheckService(configuration: configuration.common.database, logger: logger),
                consumer, lag, TwiMLHookService(tac: self, redis: runtime.redis), runtime.httpServer(health: health),
            ],
            health: health, logger: logger)
    }
}

/// A misuse of the SDK or a failure it reports to the author.
public struct TACError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
