@_exported public import AgentConnectCore
public import Logging
package import NIOConcurrencyHelpers

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
///
/// This module is the author's face only; the worker runtime (module `AgentConnectRuntime`, linked
/// in by the `AgentConnect` product) does the work behind ``TACBackend``.
public final class TAC: Sendable {
    /// `onMessageReady`: the customer's text, the session, memory (per `memoryMode`); return text to
    /// reply on the same channel, or `nil` when you replied with `sendResponse` yourself.
    public typealias MessageReadyCallback = @Sendable (String, ConversationSession, TACMemoryResponse?) async throws -> String?

    /// The callbacks the author registered, as the runtime reads them.
    package struct Callbacks: Sendable {
        package var messageReady: MessageReadyCallback?
        package var interrupt: (@Sendable (ConversationSession, InterruptMessage) async -> Void)?
        package var conversationEnded: (@Sendable (ConversationSession) async -> Void)?
        package var dtmf: (@Sendable (ConversationSession, DTMFMessage) async -> Void)?
        package var callStatus: (@Sendable (ConversationSession, CallStatusEvent) async -> Void)?
        package var error: (@Sendable (any Error, [String: String]) async -> Void)?
        package var deliveryStatus: (@Sendable (ConversationSession, DeliveryStatusUpdate) async -> Void)?
        package var relayMessage: (@Sendable (ConversationSession, ConversationRelayMessage) async -> Void)?
        package var twimlHook: (@Sendable (TwiMLRequest) async throws -> VoiceTwiMLOptions?)?
    }

    /// The configuration read at start-up.
    public let configuration: TACConfiguration
    /// The registered callbacks.
    package let callbacks = NIOLockedValueBox(Callbacks())
    private let channels = NIOLockedValueBox<[ChannelKind: MemoryMode]>([:])
    private let loggerBox: NIOLockedValueBox<Logger>
    /// Whether the author passed a logger (else the runtime sets up logging and metrics when it starts).
    package let hasOwnLogger: Bool
    /// The runtime behind this worker: connections, the consumer, replies.
    package let backend: any TACBackend

    /// The worker's logger (after ``run()``, the one set up from `LOG_LEVEL`/`LOG_FORMAT` unless you passed one).
    public var logger: Logger { loggerBox.withLockedValue { $0 } }

    /// A worker with `configuration`. Without a `logger`, logging and metrics are set up from
    /// `LOG_LEVEL`/`LOG_FORMAT` as in the built-in services when ``run()`` starts the worker.
    public init(configuration: TACConfiguration, logger: Logger? = nil) {
        self.configuration = configuration
        self.loggerBox = NIOLockedValueBox(logger ?? Logger(label: "agent-worker"))
        self.hasOwnLogger = logger != nil
        self.backend = makeTACBackend()
    }

    /// Replaces the logger (the runtime, once it has set up process-wide logging).
    package func setLogger(_ logger: Logger) {
        loggerBox.withLockedValue { $0 = logger }
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
    package func reportError(_ error: any Error, context: [String: String]) async {
        logger.warning("reported to onError", metadata: context.mapValues { .string($0) }.merging(["error": "\(error)"]) { $1 })
        await callbacks.withLockedValue(\.error)?(error, context)
    }

    /// The memory mode of a channel: the registered channel's, else the environment's.
    package func memoryMode(for channel: ChannelKind) -> MemoryMode {
        channels.withLockedValue { $0[channel] } ?? configuration.memoryModes[channel] ?? .never
    }

    func register(_ channel: ChannelKind, memoryMode: MemoryMode) {
        channels.withLockedValue { $0[channel] = memoryMode }
    }

    /// Runs the worker until SIGTERM/SIGINT, then drains: stops reading, finishes the turns in hand.
    public func run() async throws {
        try await backend.run(self)
    }
}

/// A misuse of the SDK or a failure it reports to the author.
public struct TACError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
