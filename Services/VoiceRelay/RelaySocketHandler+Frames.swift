import AgentConnectCore
import EventBus
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import ServiceSupport
import TwilioKit

/// A live call's frames (`prompt`, `interrupt`, `dtmf`, relay messages) and its end: what each
/// becomes on the bus and in the registry.
extension RelaySocketHandler {
    func handle(type: String, frame: JSONValue, session: CallSession) async {
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

    func prompt(_ frame: JSONValue, session: CallSession) async {
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

    func publish(_ payload: some BusEventPayload, session: CallSession) async {
        do {
            let event = try BusEvent(payload, conversationId: session.conversationId, channel: .voice)
            _ = try await bus.publish(event, to: stream(for: session))
        } catch {
            logger.error("could not publish", metadata: ["event.type": "\(type(of: payload).type)", "error": "\(error)"])
        }
    }

    @inline(never)  // Not part of the frame every live call keeps (see onOwnStack).
    func teardown(_ session: CallSession) async {
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
}
