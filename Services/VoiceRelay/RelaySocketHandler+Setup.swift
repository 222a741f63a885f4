import AgentConnectCore
import EventBus
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import ServiceSupport
import TwilioKit

/// Admission and `setup`: what a socket must show before it is a call (each runs on its own stack,
/// ``RelaySocketHandler/handle(_:_:_:)``).
extension RelaySocketHandler {
    /// The first frame: it must be a `setup` this socket's token allows. nil: refused (closed, counted).
    func begin(type: String, frame: JSONValue, grant: RelayCallTokens.Grant, token: String, _ outbound: WebSocketOutboundWriter) async
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
    func admit(_ outbound: WebSocketOutboundWriter, _ request: Request) async -> (RelayCallTokens.Grant, String)? {
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

    /// How long `setup` may spend finding the orchestrator conversation: half the setup deadline, at
    /// most 5 s, so the CallSid fallback happens well before the socket would be closed for it.
    var lookupBudget: Duration {
        .milliseconds(min(5000, max(50, configuration.setupTimeoutMilliseconds / 2)))
    }
}
