import AgentConnectCore
import EventBus
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import ServiceSupport
import TwilioKit

/// `POST /twiml`, `POST /conversation-relay-callback`, `POST /twilio/call-events/{status,amd,recording}`:
/// signed forms from Twilio.
///
/// - `/twiml` answers with a socket URL carrying a fresh single-use token bound to the request's
///   CallSid (``RelayCallTokens``), and the `<ConversationRelay>` settings of the environment with the
///   agent's per-call TwiML hook applied when a worker has one (``TwiMLHookChannel``).
/// - `/conversation-relay-callback` (the `<Connect action>`): after the agent's `end` frame with
///   `handoffData`, answers the TwiML that transfers the call (``HandoffDestination``); otherwise empty.
/// - Every callback is published on the call's conversation (``CallConversations``), not the CallSid's.
struct VoiceCallbackRoutes: Sendable {
    let configuration: VoiceConfiguration
    let bus: any EventBus
    let verifier: TwilioRequestVerifier
    let tokens: RelayCallTokens
    let logger: Logger
    /// The call → conversation map written at `setup` (nil: callbacks use the CallSid).
    var calls: CallConversations?
    /// Redis for the per-call TwiML hook (nil: no hook is asked).
    var hookRedis: RedisClient?

    func add<Context: RequestContext>(to router: Router<Context>) {
        router.post("/twiml") { request, _ in await twiml(request) }
        router.post("/conversation-relay-callback") { request, _ in await relayCallback(request) }
        for kind in [VoiceCallStatus.Kind.status, .amd, .recording] {
            router.post("/twilio/call-events/\(kind.rawValue)") { request, _ in await callEvent(request, kind: kind) }
        }
    }

    /// The signed form, or the response to send instead (403 / 400 / 413).
    private func form(_ request: Request) async -> Result<[(String, String)], ResponseError> {
        guard let buffer = try? await request.body.collect(upTo: 256 << 10) else {
            return .failure(ResponseError(JSONResponse.error(.contentTooLarge, "body too large")))
        }
        guard let text = String(validating: Array(buffer: buffer), as: UTF8.self), let fields = FormCoding.decodeStrict(text) else {
            if TwilioRequestVerifier.signatureHeader(request) == nil { return .failure(ResponseError(forbidden())) }
            return .failure(ResponseError(JSONResponse.error(.badRequest, "malformed form body")))
        }
        guard verifier.verifyForm(request, params: fields) else { return .failure(ResponseError(forbidden())) }
        return .success(fields)
    }

    private func twiml(_ request: Request) async -> Response {
        let fields: [(String, String)]
        switch await form(request) {
        case .success(let parsed): fields = parsed
        case .failure(let error): return error.response
        }
        guard let callSid = fields.first(where: { $0.0 == "CallSid" })?.1, !callSid.isEmpty else {
            return JSONResponse.error(.badRequest, "CallSid is required")
        }
        var settings = configuration.relay
        if let hookRedis {
            let started = ContinuousClock.now
            let answer = await TwiMLHookChannel.ask(
                redis: hookRedis, fields: Dictionary(fields, uniquingKeysWith: { first, _ in first }),
                timeout: .milliseconds(configuration.twimlHookTimeoutMilliseconds))
            if let options = answer?.options {
                // The conversation id is the relay's to decide (below), never the hook's.
                var options = options
                options.parameters?["conversationId"] = nil
                settings = settings.applying(options)
            } else if let error = answer?.error {
                logger.warning("the TwiML hook failed; using the environment's settings", metadata: ["call.sid": "\(callSid)", "error": "\(error)"])
            }
            Timer(label: "agentconnect_twiml_hook_seconds").recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        }
        if let configurationId = configuration.conversationConfigurationId {
            settings.set("conversationConfiguration", configurationId)
        }
        // A conversation id is trusted only from what was signed: the webhook URL's query
        // (`/twiml?conversationId=…`) or `CONVERSATION_RELAY_PARAMETERS`; it travels in the token.
        let query = FormCoding.decode(request.uri.query ?? "")
        let conversationId = query.first { $0.0 == "conversationId" }?.1 ?? configuration.relay.parameters.first { $0.0 == "conversationId" }?.1
        settings.parameters.removeAll { $0.0 == "conversationId" }
        if let conversationId, !conversationId.isEmpty { settings.setParameter("conversationId", conversationId) }
        let token: String
        do {
            token = try await tokens.mint(callSid: callSid, conversationId: conversationId.flatMap { $0.isEmpty ? nil : $0 })
        } catch {
            logger.error("could not mint the call's socket token", metadata: ["call.sid": "\(callSid)", "error": "\(error)"])
            return JSONResponse.error(.serviceUnavailable, "temporarily unavailable")
        }
        let builder = TwiMLBuilder(
            settings: settings, actionURL: "https://\(configuration.publicDomain)/conversation-relay-callback",
            websocketURL: "wss://\(configuration.publicDomain)/ws?token=\(token)")
        logger.info("incoming call", metadata: ["call.sid": "\(callSid)"])
        return Response(status: .ok, headers: [.contentType: "application/xml"], body: .init(byteBuffer: ByteBuffer(string: builder.build())))
    }

    private func relayCallback(_ request: Request) async -> Response {
        let fields: [(String, String)]
        switch await form(request) {
        case .success(let parsed): fields = parsed
        case .failure(let error): return error.response
        }
        let map = Dictionary(fields, uniquingKeysWith: { first, _ in first })
        guard let callSid = map["CallSid"], !callSid.isEmpty else { return empty(.ok) }
        if let accountSid = configuration.accountSid, let received = map["AccountSid"], received != accountSid { return empty(.ok) }
        let conversationId = await calls?.conversationId(forCall: callSid) ?? callSid
        await publish(VoiceCallStatus(kind: .session, callSid: callSid, fields: map), conversationId: conversationId)
        if map["CallStatus"] == "completed" || map["SessionStatus"] == "ended" || map["HandoffData"] != nil,
            configuration.conversationConfigurationId == nil
        {
            // A backup to the socket teardown: the same dedup key makes "ended" happen once.
            do {
                let ended = try ConversationEnded.event(
                    conversationId: conversationId, channel: .voice, reason: map["HandoffData"] == nil ? .hangup : .handoff, callSid: callSid,
                    handoffData: map["HandoffData"])
                _ = try await bus.publishRetrying(
                    ended, to: stream(conversationId), dedupKey: ConversationEnded.dedupKey(conversationId: conversationId),
                    ttlSeconds: ConversationEnded.dedupTTLSeconds, attempts: 3)
            } catch {
                Counter(label: "agentconnect_publish_failures_total", dimensions: [("event", EventType.conversationEnded)]).increment()
                logger.error("could not publish the call's end", metadata: ["call.sid": "\(callSid)", "error": "\(error)"])
                return empty(.serviceUnavailable)
            }
        }
        if let handoffData = map["HandoffData"], map["CallStatus"] != "completed" {
            return transfer(handoffData: handoffData, callSid: callSid, conversationId: conversationId)
        }
        return empty(.ok)
    }

    /// The TwiML that hands the call to a person (the call goes on with it), or an empty answer (the
    /// call ends) when no destination is configured.
    private func transfer(handoffData: String, callSid: String, conversationId: String) -> Response {
        guard let destination = configuration.handoff else {
            logger.warning(
                "a voice handoff with nowhere to go: set VOICE_HANDOFF_TO or TWILIO_STUDIO_HANDOFF_FLOW_SID; the call ends",
                metadata: ["call.sid": "\(callSid)"])
            return empty(.ok)
        }
        let parsed = try? JSONDecoder().decode(JSONValue.self, from: Data(handoffData.utf8))
        let reason = parsed?["attributes"]?["reason"]?.string ?? parsed?["reason"]?.string
        let twiml = destination.twiml(handoffData: handoffData, reason: reason, conversationId: conversationId)
        Counter(label: "agentconnect_voice_handoffs_total", dimensions: [("destination", destination.kind)]).increment()
        logger.info("call handed off", metadata: ["call.sid": "\(callSid)", "destination": "\(destination.kind)"])
        return Response(status: .ok, headers: [.contentType: "application/xml"], body: .init(byteBuffer: ByteBuffer(string: twiml)))
    }

    private func callEvent(_ request: Request, kind: VoiceCallStatus.Kind) async -> Response {
        let fields: [(String, String)]
        switch await form(request) {
        case .success(let parsed): fields = parsed
        case .failure(let error): return error.response
        }
        let map = Dictionary(fields, uniquingKeysWith: { first, _ in first })
        guard let callSid = map["CallSid"]?.trimmingCharacters(in: .whitespaces), !callSid.isEmpty else {
            return JSONResponse.error(.badRequest, "CallSid is required")
        }
        if let accountSid = configuration.accountSid, let received = map["AccountSid"], received != accountSid { return empty(.ok) }
        let conversationId = await calls?.conversationId(forCall: callSid) ?? callSid
        await publish(VoiceCallStatus(kind: kind, callSid: callSid, fields: map), conversationId: conversationId)
        return empty(.ok)
    }

    private func publish(_ payload: some BusEventPayload, conversationId: String) async {
        do {
            let event = try BusEvent(payload, conversationId: conversationId, channel: .voice)
            _ = try await bus.publish(event, to: stream(conversationId))
        } catch {
            logger.error("could not publish a call event", metadata: ["error": "\(error)"])
        }
    }

    private func stream(_ conversationId: String) -> String {
        Partitioner.inboundStream(for: conversationId, partitions: configuration.common.inboundPartitions)
    }

    private func empty(_ status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "text/plain"])
    }

    private func forbidden() -> Response {
        Counter(label: "agentconnect_webhooks_total", dimensions: [("outcome", "forbidden")]).increment()
        return JSONResponse.error(.forbidden, "invalid Twilio signature")
    }
}

/// A response carried as an error value.
struct ResponseError: Error {
    let response: Response

    init(_ response: Response) {
        self.response = response
    }
}

extension HandoffDestination {
    /// A metric label.
    var kind: String {
        switch self {
        case .studio: "studio"
        case .dial(let target): target.hasPrefix("sip:") ? "sip" : "number"
        case .workflow: "workflow"
        case .queue: "queue"
        }
    }
}
