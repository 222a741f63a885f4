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

    /// The first frame: it must be a `setup` this socket's token allows. nil: refused (closed, counted).
    private func begin(type: String, frame: JSONValue, grant: RelayCallTokens.Grant, token: String, _ outbound: WebSocketOutboundWriter) async
        -> CallSession?
    {
        guard type == "setup" else {
            count("no_setup")
            logger.warning("first ConversationRelay message is not a valid setup", metadata: ["type": "\(type)"])
            try? await outbound.close(.policyViolation, reason: "first message must be setup")
            return nil
        }
        switch await setup(frame, grant: grant, token: token, outbound) {
        case .started(let started):
            return started
        case .refused(let kind, let reason):
            count(kind)
            logger.warning("ConversationRelay setup refused", metadata: ["reason": "\(reason)"])
            try? await outbound.close(.policyViolation, reason: reason)
            return nil
        }
    }

    /// The signature and the single-use token, before the socket is served; nil: refused (and closed).
    private func admit(_ outbound: WebSocketOutboundWriter, _ request: Request) async -> (RelayCallTokens.Grant, String)? {
        guard verifier.verifyWebSocket(request) else {
            let missing = TwilioRequestVerifier.signatureHeader(request) == nil
            count("rejected_signature")
            logger.warning("ConversationRelay socket with a bad signature", metadata: ["missing": "\(missing)"])
            try? await outbound.close(.policyViolation, reason: missing ? "Missing Twilio signature" : "Invalid Twilio signature")
            return nil
        }
        let token = FormCoding.decode(request.uri.query ?? "").first { $0.0 == "token" }?.1 ?? ""
        let grant: RelayCallTokens.Grant?
        do {
            // A token already used by a live call opens its socket again when the call may reconnect (CallRegistry).
            let consumed = try await tokens.consume(token)
            grant = consumed == nil ? try await registry.resumeGrant(token) : consumed
        } catch {
            count("token_unavailable")
            logger.error("could not check the call token", metadata: ["error": "\(error)"])
            try? await outbound.close(.unexpectedServerError, reason: "temporarily unavailable")
            return nil
        }
        guard let grant else {
            count("rejected_token")
            logger.warning("ConversationRelay socket with an unknown or used call token", metadata: ["token.present": "\(!token.isEmpty)"])
            try? await outbound.close(.policyViolation, reason: "Unknown or already used call token")
            return nil
        }
        return (grant, token)
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

    private enum SetupOutcome {
        case started(CallSession)
        /// A counter kind and the close reason.
        case refused(String, String)
    }

    /// Checks `setup` against the token's grant and registers the call. The conversation id comes from
    /// the grant (our own signed TwiML), else the orchestrator lookup, else the CallSid: a
    /// `customParameters.conversationId` in the frame alone is never trusted.
    private func setup(_ frame: JSONValue, grant: RelayCallTokens.Grant, token: String, _ outbound: WebSocketOutboundWriter) async -> SetupOutcome {
        guard let callSid = frame["callSid"]?.string, !callSid.isEmpty else { return .refused("no_setup", "first message must be setup") }
        var expected = grant.callSid
        if expected == nil {
            expected = try? await tokens.boundCallSid(token, timeout: bindingWait)
        }
        guard let expected, expected == callSid else {
            return .refused("rejected_call", "setup is not for the call this socket was opened for")
        }
        let direction = frame["direction"]?.string?.lowercased() ?? "inbound"
        let from = frame["from"]?.string ?? ""
        let to = frame["to"]?.string ?? ""
        var customParameters = frame["customParameters"]?.stringMap ?? [:]
        customParameters["conversationId"] = grant.conversationId
        var conversationId = grant.conversationId ?? callSid
        if grant.conversationId == nil, let lookup {
            conversationId = await lookup.conversationId(forCall: callSid, within: lookupBudget) ?? callSid
        }
        let session = CallSession(
            conversationId: conversationId, callSid: callSid, caller: direction == "outbound" ? to : from,
            called: direction == "outbound" ? from : to, direction: direction, customParameters: customParameters, writer: outbound,
            generationTakeover: configuration.generationTakeover)
        do {
            guard try await registry.register(session, token: token) else {
                return .refused("rejected_duplicate_call", "the call is already connected")
            }
        } catch {
            logger.error("could not register the call", metadata: ["call.sid": "\(callSid)", "error": "\(error)"])
            return .refused("register_failed", "temporarily unavailable")
        }
        var details: [String: String] = [:]
        for key in ["callerName", "forwardedFrom", "parentCallSid", "callType", "sessionId", "accountSid", "callStatus"] {
            if let value = frame[key]?.string, !value.isEmpty { details[key] = value }
        }
        session.relayState.setup = details
        await calls?.record(callSid: callSid, conversationId: conversationId)
        count("setup")
        logger.info("call connected", metadata: ["call.sid": "\(callSid)", "conversation.id": "\(conversationId)"])
        return .started(session)
    }

    private func handle(type: String, frame: JSONValue, session: CallSession) async {
        switch type {
        case "prompt":
            // Partial prompts (`last: false`) are not turns.
            guard frame["last"]?.bool ?? true, frame["final"]?.bool ?? true else { return }
            await prompt(frame, session: session)
        case "interrupt":
            session.interrupt()
            await registry.interrupted(session)
            session.promptSpans.endAll(event: "interrupted")
            // Close the reply ConversationRelay stopped speaking, only when one was streaming: an empty
            // `last: true` with nothing before it would be an empty turn of its own.
            if session.relayState.stopStreaming() {
                try? await session.writer.write(.text(#"{"type":"text","token":"","last":true}"#))
            }
            await publish(
                VoiceInterrupted(
                    utteranceUntilInterrupt: frame["utteranceUntilInterrupt"]?.string ?? "",
                    durationUntilInterruptMs: frame["durationUntilInterruptMs"]?.double ?? 0, callSid: session.callSid,
                    relayInstance: registry.instance),
                session: session)
            count("interrupt")
        case "dtmf":
            await publish(
                VoiceDTMF(digit: frame["digit"]?.string ?? "", callSid: session.callSid, relayInstance: registry.instance), session: session)
            count("dtmf")
        case "error", "info", "configUpdated":
            count(type)
            logger.log(
                level: type == "error" ? .warning : .debug, "ConversationRelay \(type)",
                metadata: ["call.sid": "\(session.callSid)", "description": "\(frame["description"]?.string ?? "")"])
            await publish(
                VoiceRelayMessage(frameType: type, frame: frame, callSid: session.callSid, relayInstance: registry.instance), session: session)
        default:
            count("unknown")
        }
    }

    private func prompt(_ frame: JSONValue, session: CallSession) async {
        let agent = configuration.senders.owns(session.called, on: .voice) ? session.called : configuration.senders.defaultSender(for: .voice)
        let setup = session.relayState.setup
        // A prompt while a reply streams cuts it only when ConversationRelay interrupted it (the
        // interrupt came first and stopped the stream) or VOICE_PROMPT_INTERRUPTS_REPLY says so;
        // otherwise the reply goes on and this prompt's turn follows it.
        let supersedes = configuration.promptInterruptsReply || !session.relayState.isStreaming
        let received = MessageReceived(
            mode: lookup == nil ? .relay : .orchestrator, text: frame["voicePrompt"]?.string ?? "", authorAddress: session.caller,
            agentAddress: agent, relayInstance: registry.instance, callSid: session.callSid, direction: session.direction,
            lang: frame["lang"]?.string, customParameters: session.customParameters.isEmpty ? nil : session.customParameters,
            callSetup: setup.isEmpty ? nil : setup, supersedes: supersedes, framesInRow: true)
        var event: BusEvent
        do {
            event = try BusEvent(received, conversationId: session.conversationId, channel: .voice)
        } catch {
            logger.error("could not build a prompt event", metadata: ["call.sid": "\(session.callSid)", "error": "\(error)"])
            try? await session.writer.write(.text(#"{"type":"text","token":"Sorry, I am having trouble right now. Please try again.","last":true}"#))
            return
        }
        // The `prompt` span: open until the answer's last token is forwarded (VoiceFrameReader); the turn continues it.
        event.traceparent = session.promptSpans.start("prompt", key: event.id, attributes: ["call.sid": session.callSid], fallback: event.traceparent)
        if supersedes {
            session.relayState.stopStreaming()
            session.promptSent(eventId: event.id)
        } else {
            session.promptQueued(eventId: event.id)
        }
        await registry.promptSent(session, eventId: event.id)
        do {
            _ = try await bus.publish(event, to: stream(for: session))
            count("prompt")
        } catch {
            logger.error("could not publish a prompt", metadata: ["call.sid": "\(session.callSid)", "error": "\(error)"])
            try? await session.writer.write(.text(#"{"type":"text","token":"Sorry, I am having trouble right now. Please try again.","last":true}"#))
        }
    }

    private func publish(_ payload: some BusEventPayload, session: CallSession) async {
        do {
            let event = try BusEvent(payload, conversationId: session.conversationId, channel: .voice)
            _ = try await bus.publish(event, to: stream(for: session))
        } catch {
            logger.error("could not publish", metadata: ["event.type": "\(type(of: payload).type)", "error": "\(error)"])
        }
    }

    @inline(never)  // Not part of the frame every live call keeps (see onOwnStack).
    private func teardown(_ session: CallSession) async {
        await registry.unregister(session)
        session.promptSpans.endAll(event: "call ended")
        if lookup == nil, !session.isHandedOver {
            // Relay-only: the socket closing is the end of the conversation (once, whoever notices first).
            do {
                let event = try ConversationEnded.event(
                    conversationId: session.conversationId, channel: .voice, reason: .hangup, callSid: session.callSid)
                _ = try await bus.publishRetrying(
                    event, to: stream(for: session), dedupKey: ConversationEnded.dedupKey(conversationId: session.conversationId),
                    ttlSeconds: ConversationEnded.dedupTTLSeconds)
            } catch {
                // The status callback and the peers' sweep are the backups; say that this path failed.
                Counter(label: "agentconnect_publish_failures_total", dimensions: [("event", EventType.conversationEnded)]).increment()
                logger.error("could not publish the call's end", metadata: ["call.sid": "\(session.callSid)", "error": "\(error)"])
            }
        }
        Timer(label: "agentconnect_call_duration_seconds").recordNanoseconds((ContinuousClock.now - session.startedAt).nanoseconds)
        logger.info("call ended", metadata: ["call.sid": "\(session.callSid)"])
    }

    /// How long `setup` may spend finding the orchestrator conversation: half the setup deadline, at
    /// most 5 s, so the CallSid fallback happens well before the socket would be closed for it.
    var lookupBudget: Duration {
        .milliseconds(min(5000, max(50, configuration.setupTimeoutMilliseconds / 2)))
    }

    private func stream(for session: CallSession) -> String {
        Partitioner.inboundStream(for: session.conversationId, partitions: configuration.common.inboundPartitions)
    }

    /// How often a live socket is pinged (what WSCore's own pings did, by default, on a task of their own).
    static let pingIntervalSeconds = 30

    @inline(never)
    private func count(_ kind: String) {
        Counter(label: "agentconnect_voice_frames_total", dimensions: [("kind", kind)]).increment()
    }
}
