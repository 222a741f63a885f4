import AgentConnectCore
import EventBus
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOWebSocket
import ServiceSupport
import TwilioKit

/// Drives one ConversationRelay socket (as TAC does it: docs/architecture.md §6.2).
///
/// On the upgrade (each refusal closes with 1008 and is counted): the signature must match the
/// configured public URL, query included; the URL's single-use `token` must exist and is consumed at
/// once (``RelayCallTokens``). The first frame must be `setup`, for the CallSid the token was minted
/// for; the call is registered with `SET NX`, so a second socket for a live call is refused. A final
/// `prompt` becomes `message.received`; `interrupt` stops the turn's frames at once, acks and
/// publishes `voice.interrupted`; `dtmf` becomes `voice.dtmf`. A socket idle past
/// `VOICE_IDLE_TIMEOUT_SECONDS` is closed, and past `VOICE_MAX_SOCKETS` new ones are refused (1013).
/// On close nothing is left behind and a relay-only call's `conversation.ended` is published once.
///
/// A class: every live call's async frames hold a reference to it, not a copy of it. As a struct
/// (the configuration alone is a large value) each call's handler frames carried their own copies:
/// with 1,200 idle calls under heaptrack, its socket closure's frame was 5.5 KiB a call.
final class RelaySocketHandler: Sendable {
    let configuration: VoiceConfiguration
    let registry: CallRegistry
    let bus: any EventBus
    let verifier: TwilioRequestVerifier
    let tokens: RelayCallTokens
    let lookup: ConversationLookup?
    let logger: Logger
    /// Where Twilio's call callbacks find the call's conversation (set at `setup`).
    let calls: CallConversations?
    /// Sockets open on this relay (for `VOICE_MAX_SOCKETS`).
    private let open = NIOLockedValueBox(0)
    /// How long a `setup` waits for the outbound service to bind the CallSid of a call it placed.
    let bindingWait: Duration
    /// Where the sockets' setup and idle deadlines run (``SocketDeadlines``).
    let eventLoops: any EventLoopGroup

    init(
        configuration: VoiceConfiguration, registry: CallRegistry, bus: any EventBus, verifier: TwilioRequestVerifier, tokens: RelayCallTokens,
        lookup: ConversationLookup?, calls: CallConversations?, logger: Logger, bindingWait: Duration = .seconds(10),
        eventLoops: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.registry = registry
        self.bus = bus
        self.verifier = verifier
        self.tokens = tokens
        self.lookup = lookup
        self.calls = calls
        self.logger = logger
        self.bindingWait = bindingWait
        self.eventLoops = eventLoops
    }

    /// Serves one socket for the life of its call. Kept small on purpose: this task lives as long as the
    /// call and keeps the largest async stack it ever had, so everything that is not the read loop
    /// (refusals, admission, setup, each frame's work) runs in functions kept out of its frame or on a
    /// child task's stack (``onOwnStack(_:)``).
    func handle(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, _ request: Request) async {
        guard registry.isAccepting else {
            await refuse(outbound, inbound: nil, code: .goingAway, reason: "draining")
            return
        }
        let admitted = open.withLockedValue { count -> Bool in
            guard count < configuration.maxSockets else { return false }
            count += 1
            return true
        }
        guard admitted else {
            await refuse(
                outbound, inbound: inbound, code: .unknown(1013), reason: "relay at capacity, try again later",
                counted: ("rejected_capacity", "ConversationRelay socket refused: relay at capacity"))
            return
        }
        defer { open.withLockedValue { $0 -= 1 } }
        guard let (grant, token) = await onOwnStack({ [self] in await self.admit(outbound, request) }) else {
            await finishClosing(inbound)
            return
        }
        let deadlines = makeDeadlines(outbound)
        var session: CallSession?
        do {
            for try await message in inbound.messages(maxSize: configuration.maxFrameBytes) {
                deadlines.frameSeen()
                guard let (frame, type) = Self.parse(message) else {
                    count("malformed")
                    continue
                }
                if let current = session {
                    await onOwnStack { [self] in await self.handle(type: type, frame: frame, session: current) }
                    continue
                }
                session = await onOwnStack { [self] in await self.begin(type: type, frame: frame, grant: grant, token: token, outbound) }
                guard session != nil else { break }
                deadlines.setupDone()
            }
        } catch {
            ended(with: error)
        }
        await deadlines.finish()
        if let session { await teardown(session) }
    }

    /// A frame's JSON and its `type`; nil: not a JSON text frame with a type.
    @inline(never)
    private static func parse(_ message: WebSocketMessage) -> (JSONValue, String)? {
        guard case .text(let text) = message, let frame = try? JSONValue.parse(text.utf8), let type = frame["type"]?.string else { return nil }
        return (frame, type)
    }

    @inline(never)  // Not part of the frame every live call keeps.
    private func refuse(
        _ outbound: WebSocketOutboundWriter, inbound: WebSocketInboundStream?, code: WebSocketErrorCode, reason: String,
        counted: (kind: String, log: Logger.Message)? = nil
    ) async {
        if let counted {
            count(counted.kind)
            logger.warning(counted.log, metadata: ["max": "\(configuration.maxSockets)"])
        }
        try? await outbound.close(code, reason: reason)
        if let inbound { await finishClosing(inbound) }
    }

    /// The socket's setup and idle deadlines and its pings: an expiry closes the socket (the read loop then ends).
    @inline(never)
    private func makeDeadlines(_ outbound: WebSocketOutboundWriter) -> SocketDeadlines {
        SocketDeadlines(
            setupTimeout: .milliseconds(Int64(configuration.setupTimeoutMilliseconds)),
            idleTimeout: configuration.idleTimeoutSeconds > 0 ? .seconds(Int64(configuration.idleTimeoutSeconds)) : nil,
            pingInterval: .seconds(Int64(Self.pingIntervalSeconds)), loop: eventLoops.any()
        ) { [self] expiry in
            switch expiry {
            case .ping:
                try? await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer())))
            case .setup:
                count("setup_timeout")
                try? await outbound.close(.policyViolation, reason: "no setup message")
            case .idle:
                count("idle_timeout")
                logger.info("closing an idle ConversationRelay socket", metadata: ["idle.seconds": "\(configuration.idleTimeoutSeconds)"])
                try? await outbound.close(.normalClosure, reason: "idle timeout")
            }
        }
    }

    @inline(never)
    private func ended(with error: any Error) {
        logger.debug("socket ended with an error", metadata: ["error": "\(error)"])
    }

    /// Runs `body` as a child task and waits for it: what it allocates on its async stack is freed when
    /// it returns, instead of staying with the socket's long-lived task.
    @inline(never)  // Its task group is not part of the frame every live call keeps.
    private func onOwnStack<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
        await withTaskGroup(of: T.self) { group in
            group.addTask(operation: body)
            var result: T?
            for await value in group { result = value }
            // The group holds exactly one child, so it yielded exactly one value.
            guard let result else { preconditionFailure("a task group with one child yielded nothing") }
            return result
        }
    }

    /// After sending a close, reads until the caller answers it (bounded), so frames it already sent
    /// are consumed and the socket is not reset before the close frame reaches it.
    @inline(never)  // Not part of the frame every live call keeps (see onOwnStack).
    private func finishClosing(_ inbound: WebSocketInboundStream) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                do {
                    for try await _ in inbound.messages(maxSize: configuration.maxFrameBytes) {}
                } catch {}
            }
            group.addTask { try? await Task.sleep(for: .seconds(2)) }
            await group.next()
            group.cancelAll()
        }
    }

    func stream(for session: CallSession) -> String {
        Partitioner.inboundStream(for: session.conversationId, partitions: configuration.common.inboundPartitions)
    }

    /// How often a live socket is pinged (what WSCore's own pings did, by default, on a task of their own).
    static let pingIntervalSeconds = 30

    @inline(never)
    func count(_ kind: String) {
        Counter(label: "agentconnect_voice_frames_total", dimensions: [("kind", kind)]).increment()
    }
}
