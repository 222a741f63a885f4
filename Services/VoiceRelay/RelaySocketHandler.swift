import AgentConnectCore
import EventBus
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceSupport

/// Drives one ConversationRelay socket (tac-python-spec §4.2).
///
/// Signature checked on the upgrade (1008 when missing or wrong); the first frame must be `setup`;
/// a final `prompt` becomes `message.received`; `interrupt` stops the turn's frames at once, acks and
/// publishes `voice.interrupted`; `dtmf` becomes `voice.dtmf`. On close nothing is left behind and a
/// relay-only call's `conversation.ended` is published once.
struct RelaySocketHandler: Sendable {
    let configuration: VoiceConfiguration
    let registry: CallRegistry
    let bus: any EventBus
    let verifier: TwilioRequestVerifier
    let lookup: ConversationLookup?
    let logger: Logger

    func handle(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, _ request: Request) async {
        guard registry.isAccepting else {
            try? await outbound.close(.goingAway, reason: "draining")
            return
        }
        guard verifier.verifyWebSocket(request) else {
            let missing = TwilioRequestVerifier.signatureHeader(request) == nil
            count("rejected_signature")
            logger.warning("ConversationRelay socket with a bad signature", metadata: ["missing": "\(missing)"])
            try? await outbound.close(.policyViolation, reason: missing ? "Missing Twilio signature" : "Invalid Twilio signature")
            await finishClosing(inbound)
            return
        }
        let setupSeen = NIOLockedValueBox(false)
        var session: CallSession?
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: .milliseconds(configuration.setupTimeoutMilliseconds))
                if !setupSeen.withLockedValue({ $0 }) {
                    count("setup_timeout")
                    try? await outbound.close(.policyViolation, reason: "no setup message")
                }
            }
            do {
                for try await message in inbound.messages(maxSize: configuration.maxFrameBytes) {
                    guard case .text(let text) = message,
                        let frame = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), let type = frame["type"]?.string
                    else {
                        count("malformed")
                        continue
                    }
                    guard let current = session else {
                        guard type == "setup", let started = await setup(frame, outbound) else {
                            count("no_setup")
                            logger.warning("first ConversationRelay message is not a valid setup", metadata: ["type": "\(type)"])
                            try? await outbound.close(.policyViolation, reason: "first message must be setup")
                            break
                        }
                        setupSeen.withLockedValue { $0 = true }
                        session = started
                        continue
                    }
                    await handle(type: type, frame: frame, session: current)
                }
            } catch {
                logger.debug("socket ended with an error", metadata: ["error": "\(error)"])
            }
            group.cancelAll()
        }
        if let session { await teardown(session) }
    }

    /// After sending a close, reads until the caller answers it (bounded), so frames it already sent
    /// are consumed and the socket is not reset before the close frame reaches it.
    private func finishClosing(_ inbound: WebSocketInboundStream) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for try await _ in inbound.messages(maxSize: configuration.maxFrameBytes) {}
                } catch {}
            }
            group.addTask { try? await Task.sleep(for: .seconds(2)) }
            await group.next()
            group.cancelAll()
        }
    }

    private func setup(_ frame: JSONValue, _ outbound: WebSocketOutboundWriter) async -> CallSession? {
        guard let callSid = frame["callSid"]?.string, !callSid.isEmpty else { return nil }
        let direction = frame["direction"]?.string?.lowercased() ?? "inbound"
        let from = frame["from"]?.string ?? ""
        let to = frame["to"]?.string ?? ""
        var conversationId = frame["customParameters"]?["conversationId"]?.string ?? callSid
        if let lookup, frame["customParameters"]?["conversationId"]?.string == nil {
            conversationId = await lookup.conversationId(forCall: callSid) ?? callSid
        }
        let session = CallSession(
            conversationId: conversationId, callSid: callSid, caller: direction == "outbound" ? to : from,
            called: direction == "outbound" ? from : to, direction: direction, customParameters: frame["customParameters"]?.stringMap ?? [:],
            writer: outbound)
        do {
            try await registry.register(session)
        } catch {
            logger.error("could not register the call", metadata: ["call.sid": "\(callSid)", "error": "\(error)"])
            return nil
        }
        count("setup")
        logger.info("call connected", metadata: ["call.sid": "\(callSid)", "conversation.id": "\(conversationId)"])
        return session
    }

    private func handle(type: String, frame: JSONValue, session: CallSession) async {
        switch type {
        case "prompt":
            // Partial prompts (`last: false`) are not turns.
            guard frame["last"]?.bool ?? true, frame["final"]?.bool ?? true else { return }
            await prompt(frame, session: session)
        case "interrupt":
            session.interrupt()
            try? await session.writer.write(.text(#"{"type":"text","token":"","last":true}"#))
            await publish(
                EventType.voiceInterrupted, session: session,
                payload: [
                    "utteranceUntilInterrupt": .string(frame["utteranceUntilInterrupt"]?.string ?? ""),
                    "durationUntilInterruptMs": .number(frame["durationUntilInterruptMs"]?.double ?? 0),
                ])
            count("interrupt")
        case "dtmf":
            await publish(EventType.voiceDTMF, session: session, payload: ["digit": .string(frame["digit"]?.string ?? "")])
            count("dtmf")
        case "error", "info":
            count(type)
            logger.log(level: type == "error" ? .warning : .debug, "ConversationRelay \(type)", metadata: ["call.sid": "\(session.callSid)", "description": "\(frame["description"]?.string ?? "")"])
        default:
            count("unknown")
        }
    }

    private func prompt(_ frame: JSONValue, session: CallSession) async {
        let text = frame["voicePrompt"]?.string ?? ""
        let agent = configuration.senders.owns(session.called, on: .voice) ? session.called : configuration.senders.defaultSender(for: .voice)
        var payload: [String: JSONValue] = [
            "text": .string(text), "relayInstance": .string(registry.instance), "callSid": .string(session.callSid),
            "authorAddress": .string(session.caller), "agentAddress": JSONValue(agent), "direction": .string(session.direction),
            "lang": JSONValue(frame["lang"]?.string), "mode": .string(lookup == nil ? "relay" : "orchestrator"),
        ]
        if !session.customParameters.isEmpty { payload["customParameters"] = JSONValue(session.customParameters) }
        let event = BusEvent(type: EventType.messageReceived, conversationId: session.conversationId, channel: .voice, payload: .object(payload))
        session.promptSent(eventId: event.id)
        do {
            _ = try await bus.publish(event, to: stream(for: session))
            count("prompt")
        } catch {
            logger.error("could not publish a prompt", metadata: ["call.sid": "\(session.callSid)", "error": "\(error)"])
            try? await session.writer.write(.text(#"{"type":"text","token":"Sorry, I am having trouble right now. Please try again.","last":true}"#))
        }
    }

    private func publish(_ type: String, session: CallSession, payload: JSONValue) async {
        var fields = payload.object ?? [:]
        fields["callSid"] = .string(session.callSid)
        fields["relayInstance"] = .string(registry.instance)
        let event = BusEvent(type: type, conversationId: session.conversationId, channel: .voice, payload: .object(fields))
        do {
            _ = try await bus.publish(event, to: stream(for: session))
        } catch {
            logger.error("could not publish", metadata: ["event.type": "\(type)", "error": "\(error)"])
        }
    }

    private func teardown(_ session: CallSession) async {
        await registry.unregister(session.conversationId)
        if lookup == nil {
            // Relay-only: the socket closing is the end of the conversation (once, whoever notices first).
            let event = BusEvent(
                type: EventType.conversationEnded, conversationId: session.conversationId, channel: .voice,
                payload: ["reason": "hangup", "callSid": .string(session.callSid)])
            _ = try? await bus.publish(
                event, to: stream(for: session), dedupKey: "tac:dedup:ended:\(session.conversationId)", ttlSeconds: 86_400)
        }
        Timer(label: "agentconnect_call_duration_seconds").recordNanoseconds((ContinuousClock.now - session.startedAt).nanoseconds)
        logger.info("call ended", metadata: ["call.sid": "\(session.callSid)"])
    }

    private func stream(for session: CallSession) -> String {
        Partitioner.inboundStream(for: session.conversationId, partitions: configuration.common.inboundPartitions)
    }

    private func count(_ kind: String) {
        Counter(label: "agentconnect_voice_frames_total", dimensions: [("kind", kind)]).increment()
    }
}
