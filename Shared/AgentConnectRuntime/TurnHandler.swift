import AgentConnect
import AgentConnectCore
import EventBus
import Foundation
import Logging
import Metrics
import ServiceSupport
import Store
import TwilioKit
import NIOConcurrencyHelpers
import Tracing

/// Turns inbound events into the author's callbacks.
struct TurnHandler: Sendable {
    let tac: TAC
    let runtime: WorkerRuntime
    private var logger: Logger { runtime.logger }

    func handle(_ event: BusEvent, entry: BusEntry) async throws {
        switch event.type {
        case EventType.messageReceived:
            // The `turn` span, a child of the hop that published the event (the webhook, a voice prompt).
            try await Traces.withSpan("turn", continuing: event.traceparent, kind: .consumer, attributes: ["channel": event.channel.rawValue]) { _ in
                try await message(event)
            }
        case EventType.voiceInterrupted:
            let session = try await session(for: event)
            let interrupt = InterruptMessage(
                utteranceUntilInterrupt: event.payload["utteranceUntilInterrupt"]?.string ?? "",
                durationUntilInterruptMs: event.payload["durationUntilInterruptMs"]?.int ?? 0)
            await tac.callbacks.withLockedValue(\.interrupt)?(session, interrupt)
            // History keeps what the caller heard of the cut reply: the reply's text is replaced when it
            // was recorded whole (it finished streaming before the caller stopped listening), else what
            // was heard is recorded (the turn was cancelled and recorded nothing).
            let recorded = runtime.lastVoiceReply.take(event.conversationId)
            if !interrupt.utteranceUntilInterrupt.isEmpty {
                await Uncancellable.run { await recordHeard(interrupt.utteranceUntilInterrupt, replacing: recorded, event: event, session: session) }
            }
        case EventType.voiceRelayMessage:
            let session = try await session(for: event)
            let frame = event.payload["frame"] ?? .null
            let type = event.payload["frameType"]?.string ?? frame["type"]?.string ?? ""
            if type == "error" {
                await tac.reportError(
                    ConversationRelayError(description: frame["description"]?.string ?? "", frame: frame),
                    context: [
                        "conversation.id": event.conversationId, "channel": "voice", "source": "conversation-relay",
                        "call.sid": event.payload["callSid"]?.string ?? "",
                    ])
            } else {
                await tac.callbacks.withLockedValue(\.relayMessage)?(session, ConversationRelayMessage(type: type, frame: frame))
            }
        case EventType.voiceDTMF:
            let session = try await session(for: event)
            await tac.callbacks.withLockedValue(\.dtmf)?(session, DTMFMessage(digit: event.payload["digit"]?.string ?? ""))
        case EventType.voiceCallStatus:
            let session = try await session(for: event)
            let status = CallStatusEvent(kind: event.payload["kind"]?.string ?? "status", fields: event.payload["fields"]?.stringMap ?? [:])
            await tac.callbacks.withLockedValue(\.callStatus)?(session, status)
        case EventType.conversationEnded:
            try await ended(event)
        case EventType.conversationInactive:
            // Memory is written when a conversation goes INACTIVE: a call's `once` memory is read again.
            runtime.onceMemory[event.conversationId] = nil
            try await runtime.store.setStatus(conversationId: event.conversationId, status: "INACTIVE")
        case EventType.intelligenceResult:
            try await IntelligenceResults(configuration: tac.configuration, store: runtime.store, logger: logger).apply(event)
        case EventType.messageStatus:
            try await deliveryStatus(event)
        case EventType.conversationStarted:
            try await runtime.store.upsertConversation(ConversationRecord(id: event.conversationId, channel: event.channel))
        default:
            logger.debug("event type not handled by agents", metadata: ["event.type": "\(event.type)"])
        }
    }

    private func message(_ event: BusEvent) async throws {
        let started = ContinuousClock.now
        // A new turn: an interrupt from now on cuts this turn's reply, never the previous one.
        if event.channel == .voice { runtime.lastVoiceReply[event.conversationId] = nil }
        let payload = event.payload
        let text = payload["text"]?.string ?? ""
        let stored: ConversationRecord?
        do {
            stored = try await runtime.conversations.record(event.conversationId) {
                try await withTimeout(.seconds(3), "loading the conversation") { try await runtime.store.conversation(id: event.conversationId) }
            }
        } catch where PostgresStore.isUnavailable(error) {
            // The reply does not wait for PostgreSQL: the event carries what the turn needs.
            logger.warning("PostgreSQL unavailable; answering from the event", metadata: ["conversation.id": "\(event.conversationId)"])
            stored = nil
        }
        if let authorId = payload["authorParticipantId"]?.string, authorId == stored?.agentParticipantId {
            logger.debug("dropping the agent's own message", metadata: ["conversation.id": "\(event.conversationId)"])
            return
        }
        let session = buildSession(event, stored: stored)
        if let keyword = payload["optOut"]?.string.flatMap(MessageRules.OptKeyword.init(rawValue:)) {
            // STOP: Twilio answers the customer itself and would refuse a reply (21610); the agent records
            // the choice and does not reply. START/YES lift it, and the agent answers as usual.
            try await optKeyword(keyword, event: event, session: session)
            if keyword == .optOut {
                await Uncancellable.run { await recordInbound(event, session: session, stored: stored) }
                return
            }
        }
        let context = TurnContext(event: event, session: session, relayInstance: payload["relayInstance"]?.string)
        let callback = tac.callbacks.withLockedValue(\.messageReady)
        logger.info(
            "turn",
            metadata: [
                "event.id": "\(event.id)", "conversation.id": "\(event.conversationId)", "channel": "\(event.channel.rawValue)",
                "traceparent": "\(event.traceparent)",
            ])
        let reply: String?
        do {
            reply = try await TurnContext.$current.withValue(context) { () async throws -> String? in
                guard let callback else { return nil }
                let memory = try await memory(for: session, text: text)
                return try await callback(text, session, memory)
            }
        } catch where !(error is CancellationError) && !Task.isCancelled {
            await tac.reportError(
                error, context: ["conversation.id": event.conversationId, "channel": event.channel.rawValue, "source": "turn", "event.id": event.id])
            throw error
        }
        if let reply {
            try await TurnContext.$current.withValue(context) {
                if event.channel == .voice {
                    try await runtime.speak(conversationId: session.conversationId, reply)
                } else {
                    try await runtime.sendMessage(
                        channel: event.channel, conversationId: session.conversationId, response: reply, media: [], template: nil)
                }
            }
        }
        if event.channel == .voice {
            // A handoff during the turn: the `end` frame goes after the goodbye.
            try await TurnContext.$current.withValue(context) { try await runtime.finishHandoff(session) }
        }
        Timer(label: "agentconnect_agent_seconds", dimensions: [("channel", event.channel.rawValue)])
            .recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        // History is written after the reply went out, and a hang-up must not cut it short.
        await Uncancellable.run { await recordInbound(event, session: session, stored: stored) }
    }

    private func ended(_ event: BusEvent) async throws {
        let stored = try await runtime.store.conversation(id: event.conversationId)
        let channel = event.payload["channelKnown"]?.bool == false ? (stored?.channel ?? event.channel) : event.channel
        runtime.conversations.forget(event.conversationId)
        runtime.onceMemory[event.conversationId] = nil
        runtime.lastVoiceReply[event.conversationId] = nil
        guard try await runtime.store.markEnded(conversationId: event.conversationId, channel: channel) else {
            logger.debug("conversation already ended", metadata: ["conversation.id": "\(event.conversationId)"])
            return
        }
        var session = stored.map(ConversationSession.init(record:)) ?? ConversationSession(conversationId: event.conversationId, channel: channel)
        session.channel = channel
        if channel == .voice { session.callSid = event.payload["callSid"]?.string ?? stored?.metadata["call_sid"] }
        Counter(label: "agentconnect_conversations_ended_total", dimensions: [("channel", channel.rawValue)]).increment()
        logger.info("conversation ended", metadata: ["conversation.id": "\(event.conversationId)", "reason": "\(event.payload["reason"]?.string ?? "")"])
        await tac.callbacks.withLockedValue(\.conversationEnded)?(session)
    }

    /// A customer opted out (STOP: replies to them are recorded, not sent) or back in (START).
    private func optKeyword(_ keyword: MessageRules.OptKeyword, event: BusEvent, session: ConversationSession) async throws {
        guard let customer = session.authorInfo.address,
            let agent = session.aiAgentInfo.address ?? runtime.senders.defaultSender(for: event.channel)
        else {
            return
        }
        try await runtime.store.setOptedOut(keyword == .optOut, agent: agent, customer: customer)
        Counter(label: "agentconnect_opt_outs_total", dimensions: [("keyword", keyword.rawValue), ("channel", event.channel.rawValue)]).increment()
        logger.info("customer opted \(keyword == .optOut ? "out" : "in")", metadata: ["conversation.id": "\(event.conversationId)"])
    }

    /// Twilio's delivery status of a reply: recorded on its delivery row, offered to `onDeliveryStatus`,
    /// and a failure to `onError` with Twilio's error code.
    private func deliveryStatus(_ event: BusEvent) async throws {
        let payload = event.payload
        guard let sid = payload["messageSid"]?.string, let status = payload["status"]?.string else { return }
        let errorCode = payload["errorCode"]?.string
        var recording = try await runtime.store.recordDeliveryStatus(providerId: sid, status: status, errorCode: errorCode)
        // A status can overtake outbound's bookkeeping (Twilio answered, the row is not marked sent yet).
        var waits = 0
        while recording == .unknown, waits < 8 {
            waits += 1
            try await Task.sleep(for: .milliseconds(250))
            recording = try await runtime.store.recordDeliveryStatus(providerId: sid, status: status, errorCode: errorCode)
        }
        let replyId: String?
        switch recording {
        case .recorded(let id): replyId = id
        case .stale: return
        case .unknown: replyId = nil
        }
        let update = DeliveryStatusUpdate(
            replyId: replyId, messageSid: sid, status: status, errorCode: errorCode.flatMap { Int($0) }, errorMessage: payload["errorMessage"]?.string)
        let session = try await session(for: event)
        Counter(label: "agentconnect_delivery_statuses_total", dimensions: [("status", status), ("channel", event.channel.rawValue)]).increment()
        await tac.callbacks.withLockedValue(\.deliveryStatus)?(session, update)
        if update.isFailure {
            var context = [
                "conversation.id": event.conversationId, "channel": event.channel.rawValue, "source": "delivery_status", "message.sid": sid,
                "status": status,
            ]
            context["error.code"] = errorCode
            context["reply.id"] = replyId
            await tac.reportError(DeliveryFailure(update: update), context: context)
        }
    }

    /// Records what the caller heard of an interrupted reply: over the reply's recorded text when
    /// there is one, else as a message of its own.
    private func recordHeard(_ heard: String, replacing replyId: String?, event: BusEvent, session: ConversationSession) async {
        if let replyId {
            do {
                let store = runtime.store
                if try await withTimeout(.seconds(10), "recording what the caller heard", { try await store.replaceMessageBody(id: replyId, body: heard) }) {
                    return
                }
            } catch {
                logger.warning("could not record what the caller heard", metadata: ["conversation.id": "\(event.conversationId)", "error": "\(error)"])
                return
            }
        }
        await runtime.recordOutbound(heard, replyId: "\(event.id):heard", session: session)
    }

    /// Memory for the callback, as the channel's `memoryMode` says (as TAC: docs/architecture.md §6.5): `always` reads with the
    /// message as the query; `once` (voice) reads without a query on the first prompt of the call and
    /// again after the conversation went `INACTIVE`; on messaging `once` runs as `always`.
    private func memory(for session: ConversationSession, text: String) async throws -> TACMemoryResponse? {
        var mode = tac.memoryMode(for: session.channel)
        if session.channel != .voice, mode == .once { mode = .always }
        switch mode {
        case .never:
            return nil
        case .always:
            return try await runtime.retrieveMemory(session, query: text)
        case .once:
            if let cached = runtime.onceMemory[session.conversationId] { return cached }
            let memory = try await runtime.retrieveMemory(session, query: nil)
            runtime.onceMemory[session.conversationId] = memory
            return memory
        }
    }

    /// A session for non-message events: the stored conversation, else what the event carries.
    private func session(for event: BusEvent) async throws -> ConversationSession {
        buildSession(event, stored: try await runtime.store.conversation(id: event.conversationId))
    }

    private func buildSession(_ event: BusEvent, stored: ConversationRecord?) -> ConversationSession {
        let payload = event.payload
        var metadata = stored?.metadata ?? [:]
        if let channelId = payload["channelId"]?.string { metadata["channel_id"] = channelId }
        let customerAddress = payload["authorAddress"]?.string ?? stored?.customerAddress
        var session = ConversationSession(
            conversationId: event.conversationId, channel: event.channel, callSid: payload["callSid"]?.string,
            profileId: payload["profileId"]?.string ?? stored?.profileId,
            authorInfo: ParticipantInfo(
                address: customerAddress,
                participantId: stored?.customerParticipantId ?? payload["authorParticipantId"]?.string),
            aiAgentInfo: ParticipantInfo(
                address: payload["agentAddress"]?.string ?? stored?.agentAddress,
                participantId: payload["agentParticipantId"]?.string ?? stored?.agentParticipantId),
            metadata: metadata,
            direction: Direction(rawValue: payload["direction"]?.string ?? stored?.direction ?? "inbound") ?? .inbound,
            media: event.type == EventType.messageReceived ? MessageMedia.list(payload) : [])
        if event.channel == .voice { session.voice = VoiceCallDetails(payload: payload) }
        return session
    }

    /// History and the conversation row, written after the reply went out.
    private func recordInbound(_ event: BusEvent, session: ConversationSession, stored: ConversationRecord?) async {
        do {
            try await withTimeout(.seconds(10), "recording the inbound message") {
                try await writeInbound(event, session: session, stored: stored)
            }
        } catch {
            logger.warning("could not record inbound message", metadata: ["conversation.id": "\(event.conversationId)", "error": "\(error)"])
        }
    }

    private func writeInbound(_ event: BusEvent, session: ConversationSession, stored: ConversationRecord?) async throws {
        if stored == nil || stored?.customerAddress == nil {
            var metadata = session.metadata
            metadata["mode"] = event.payload["mode"]?.string
            if let callSid = session.callSid { metadata["call_sid"] = callSid }
            let record = ConversationRecord(
                id: event.conversationId, channel: event.channel, direction: session.direction.rawValue,
                customerAddress: session.authorInfo.address, agentAddress: session.aiAgentInfo.address,
                customerParticipantId: session.authorInfo.participantId, agentParticipantId: session.aiAgentInfo.participantId,
                profileId: session.profileId, metadata: metadata)
            try await runtime.store.upsertConversation(record)
            runtime.conversations.store(event.conversationId, record)
        }
        _ = try await runtime.store.appendMessage(
            MessageRecord(
                id: event.id, conversationId: event.conversationId, channel: event.channel, direction: .inbound,
                authorAddress: session.authorInfo.address, body: event.payload["text"]?.string ?? "",
                createdAt: event.occurredDate ?? session.startedAt))
    }
}
