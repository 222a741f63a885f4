package import AgentConnect
package import AgentConnectCore
package import EventBus
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceSupport
import Store
import Tracing
import TwilioKit

/// Turns inbound events into the author's callbacks.
package struct TurnHandler: Sendable {
    let tac: TAC
    let runtime: WorkerRuntime
    private var logger: Logger { runtime.logger }
    /// `agentconnect_agent_seconds` by channel.
    private let agentSeconds: [ChannelKind: Timer]

    package init(tac: TAC, runtime: WorkerRuntime) {
        self.tac = tac
        self.runtime = runtime
        agentSeconds = Observability.timersByChannel("agentconnect_agent_seconds")
    }

    /// Runs one inbound event (the inbound consumer calls it in each conversation's order).
    package func handle(_ event: BusEvent, entry: BusEntry) async throws {
        switch event.type {
        case EventType.messageReceived:
            let message = try event.decode(MessageReceived.self)
            // The conversation's events run one at a time, so nothing answers it between the check and the mark.
            guard runtime.answeredMessages[event.conversationId]?.contains(event.id) != true else {
                logger.debug("message already answered", metadata: ["event.id": "\(event.id)", "conversation.id": "\(event.conversationId)"])
                return
            }
            // The `turn` span, a child of the hop that published the event (the webhook, a voice prompt).
            try await Traces.withSpan("turn", continuing: event.traceparent, kind: .consumer, attributes: ["channel": event.channel.rawValue]) { _ in
                try await self.message(event, message)
            }
            // A turn cut short (an interrupt, the partition lost) is not answered: its redo must run.
            if !Task.isCancelled {
                runtime.answeredMessages[event.conversationId] = Array(
                    ((runtime.answeredMessages[event.conversationId] ?? []) + [event.id]).suffix(32))
            }
        case EventType.voiceInterrupted:
            let interrupted = try event.decode(VoiceInterrupted.self)
            let session = try await session(for: event, callSid: interrupted.callSid)
            // A fractional duration reads as 0, as before the typed events.
            let interrupt = InterruptMessage(
                utteranceUntilInterrupt: interrupted.utteranceUntilInterrupt,
                durationUntilInterruptMs: Int(exactly: interrupted.durationUntilInterruptMs) ?? 0)
            await tac.callbacks.withLockedValue(\.interrupt)?(session, interrupt)
            // History keeps what the caller heard of the cut reply: the reply's text is replaced when it
            // was recorded whole (it finished streaming before the caller stopped listening), else what
            // was heard is recorded (the turn was cancelled and recorded nothing).
            let recorded = runtime.lastVoiceReply.take(event.conversationId)
            if !interrupt.utteranceUntilInterrupt.isEmpty {
                await Uncancellable.run { await recordHeard(interrupt.utteranceUntilInterrupt, replacing: recorded, event: event, session: session) }
            }
        case EventType.voiceRelayMessage:
            let relayMessage = try event.decode(VoiceRelayMessage.self)
            let session = try await session(for: event, callSid: relayMessage.callSid)
            let frame = relayMessage.frame
            let type = relayMessage.frameType
            if type == "error" {
                await tac.reportError(
                    ConversationRelayError(description: frame["description"]?.string ?? "", frame: frame),
                    context: [
                        "conversation.id": event.conversationId, "channel": "voice", "source": "conversation-relay",
                        "call.sid": relayMessage.callSid,
                    ])
            } else {
                await tac.callbacks.withLockedValue(\.relayMessage)?(session, ConversationRelayMessage(type: type, frame: frame))
            }
        case EventType.voiceDTMF:
            let dtmf = try event.decode(VoiceDTMF.self)
            let session = try await session(for: event, callSid: dtmf.callSid)
            await tac.callbacks.withLockedValue(\.dtmf)?(session, DTMFMessage(digit: dtmf.digit))
        case EventType.voiceCallStatus:
            let callStatus = try event.decode(VoiceCallStatus.self)
            let session = try await session(for: event, callSid: callStatus.callSid)
            let status = CallStatusEvent(kind: callStatus.kind.rawValue, fields: callStatus.fields)
            await tac.callbacks.withLockedValue(\.callStatus)?(session, status)
        case EventType.conversationEnded:
            try await ended(event, try event.decode(ConversationEnded.self))
        case EventType.conversationInactive:
            // Memory is written when a conversation goes INACTIVE: a call's `once` memory is read again.
            runtime.onceMemory[event.conversationId] = nil
            try await runtime.store.setStatus(conversationId: event.conversationId, status: "INACTIVE")
        case EventType.intelligenceResult:
            try await IntelligenceResults(configuration: tac.configuration, store: runtime.store, logger: logger).apply(event)
        case EventType.messageStatus:
            try await deliveryStatus(event, try event.decode(MessageStatus.self))
        case EventType.conversationStarted:
            try await runtime.store.upsertConversation(ConversationRecord(id: event.conversationId, channel: event.channel))
        default:
            logger.debug("event type not handled by agents", metadata: ["event.type": "\(event.type)"])
        }
    }

    private func message(_ event: BusEvent, _ message: MessageReceived) async throws {
        let started = ContinuousClock.now
        // A new turn: an interrupt from now on cuts this turn's reply, never the previous one.
        if event.channel == .voice { runtime.lastVoiceReply[event.conversationId] = nil }
        let text = message.text
        let stored: ConversationRecord?
        do {
            stored = try await runtime.conversations.record(event.conversationId) {
                try await withTimeout(.seconds(3), "loading the conversation") { try await runtime.store.conversation(id: event.conversationId) }
            }
        } catch let error where PostgresStore.isUnavailable(error) {
            // The reply does not wait for PostgreSQL: the event carries what the turn needs.
            logger.warning("PostgreSQL unavailable; answering from the event", metadata: ["conversation.id": "\(event.conversationId)"])
            stored = nil
        }
        if let authorId = message.authorParticipantId, authorId == stored?.agentParticipantId {
            logger.debug("dropping the agent's own message", metadata: ["conversation.id": "\(event.conversationId)"])
            return
        }
        let session = buildSession(event, stored: stored, message: message)
        if let keyword = message.optOut.flatMap(MessageRules.OptKeyword.init(rawValue:)) {
            // STOP: Twilio answers the customer itself and would refuse a reply (21610); the agent records
            // the choice and does not reply. START/YES lift it, and the agent answers as usual.
            try await optKeyword(keyword, event: event, session: session)
            if keyword == .optOut {
                await Uncancellable.run { await recordInbound(event, message, session: session, stored: stored) }
                return
            }
        }
        let context = TurnContext(
            event: event, session: session, mode: message.mode, relayInstance: message.relayInstance, framesInRow: message.framesInRow == true)
        let callback = tac.callbacks.withLockedValue(\.messageReady)
        logger.debug(
            "turn",
            metadata: [
                "event.id": "\(event.id)", "conversation.id": "\(event.conversationId)", "channel": "\(event.channel.rawValue)",
                "traceparent": "\(event.traceparent)",
            ])
        do {
            try await answer(event, text: text, session: session, context: context, callback: callback)
        } catch {
            // Replies already sent are in the history whatever happens to the rest of the turn.
            let replies = context.takeReplies()
            await Uncancellable.run { await runtime.recordOutbound(replies) }
            throw error
        }
        agentSeconds[event.channel]?.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        // History is written after the reply went out (the customer's message and the turn's replies
        // in one statement), and a hang-up must not cut it short.
        let replies = context.takeReplies()
        await Uncancellable.run { await recordInbound(event, message, session: session, stored: stored, replies: replies) }
    }

    /// Runs the author's callback for the turn and sends what it returns.
    private func answer(
        _ event: BusEvent, text: String, session: ConversationSession, context: TurnContext, callback: TAC.MessageReadyCallback?
    ) async throws {
        let reply: String?
        do {
            reply = try await TurnContext.$current.withValue(context) { () async throws -> String? in
                guard let callback else { return nil }
                let memory = try await memory(for: session, text: text)
                return try await callback(text, session, memory)
            }
        } catch let error where !(error is CancellationError) && !Task.isCancelled {
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
    }

    private func ended(_ event: BusEvent, _ ended: ConversationEnded) async throws {
        let stored = try await runtime.store.conversation(id: event.conversationId)
        let channel = ended.channelKnown == false ? (stored?.channel ?? event.channel) : event.channel
        runtime.conversations.forget(event.conversationId)
        runtime.onceMemory[event.conversationId] = nil
        runtime.lastVoiceReply[event.conversationId] = nil
        runtime.answeredMessages[event.conversationId] = nil
        guard try await runtime.store.markEnded(conversationId: event.conversationId, channel: channel) else {
            logger.debug("conversation already ended", metadata: ["conversation.id": "\(event.conversationId)"])
            return
        }
        var session = stored.map(ConversationSession.init(record:)) ?? ConversationSession(conversationId: event.conversationId, channel: channel)
        session.channel = channel
        if channel == .voice { session.callSid = ended.callSid ?? stored?.metadata["call_sid"] }
        Counter(label: "agentconnect_conversations_ended_total", dimensions: [("channel", channel.rawValue)]).increment()
        logger.info("conversation ended", metadata: ["conversation.id": "\(event.conversationId)", "reason": "\(ended.reason.rawValue)"])
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
    private func deliveryStatus(_ event: BusEvent, _ messageStatus: MessageStatus) async throws {
        let sid = messageStatus.messageSid
        let status = messageStatus.status
        let errorCode = messageStatus.errorCode
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
            replyId: replyId, messageSid: sid, status: status, errorCode: errorCode.flatMap { Int($0) }, errorMessage: messageStatus.errorMessage)
        let session = try await session(for: event, agentAddress: messageStatus.agentAddress)
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
                if try await withTimeout(
                    .seconds(10), "recording what the caller heard", { try await store.replaceMessageBody(id: replyId, body: heard) })
                {
                    return
                }
            } catch {
                logger.warning(
                    "could not record what the caller heard", metadata: ["conversation.id": "\(event.conversationId)", "error": "\(error)"])
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

    /// A session for non-message events: the stored conversation, else what the event carries (a
    /// voice event's call, a delivery status's sender).
    private func session(for event: BusEvent, callSid: String? = nil, agentAddress: String? = nil) async throws -> ConversationSession {
        buildSession(event, stored: try await runtime.store.conversation(id: event.conversationId), callSid: callSid, agentAddress: agentAddress)
    }

    /// The session of a turn: what the customer's message carries, else the stored conversation.
    private func buildSession(_ event: BusEvent, stored: ConversationRecord?, message: MessageReceived) -> ConversationSession {
        var metadata = stored?.metadata ?? [:]
        if let channelId = message.channelId { metadata["channel_id"] = channelId }
        var session = ConversationSession(
            conversationId: event.conversationId, channel: event.channel, callSid: message.callSid, profileId: stored?.profileId,
            authorInfo: ParticipantInfo(
                address: message.authorAddress, participantId: stored?.customerParticipantId ?? message.authorParticipantId),
            aiAgentInfo: ParticipantInfo(
                address: message.agentAddress ?? stored?.agentAddress, participantId: message.agentParticipantId ?? stored?.agentParticipantId),
            metadata: metadata,
            direction: Direction(rawValue: message.direction ?? stored?.direction ?? "inbound") ?? .inbound,
            media: MessageMedia.list(message.media))
        if event.channel == .voice { session.voice = VoiceCallDetails(message: message) }
        return session
    }

    /// The session of another event: the stored conversation with the event's call or sender.
    private func buildSession(_ event: BusEvent, stored: ConversationRecord?, callSid: String?, agentAddress: String?) -> ConversationSession {
        var session = ConversationSession(
            conversationId: event.conversationId, channel: event.channel, callSid: callSid, profileId: stored?.profileId,
            authorInfo: ParticipantInfo(address: stored?.customerAddress, participantId: stored?.customerParticipantId),
            aiAgentInfo: ParticipantInfo(address: agentAddress ?? stored?.agentAddress, participantId: stored?.agentParticipantId),
            metadata: stored?.metadata ?? [:],
            direction: Direction(rawValue: stored?.direction ?? "inbound") ?? .inbound)
        if event.channel == .voice { session.voice = VoiceCallDetails() }
        return session
    }

    /// History and the conversation row, written after the reply went out.
    private func recordInbound(
        _ event: BusEvent, _ message: MessageReceived, session: ConversationSession, stored: ConversationRecord?, replies: [MessageRecord] = []
    ) async {
        do {
            try await withDeadline(.seconds(10), "recording the inbound message") {
                try await writeInbound(event, message, session: session, stored: stored, replies: replies)
            }
        } catch {
            logger.warning("could not record inbound message", metadata: ["conversation.id": "\(event.conversationId)", "error": "\(error)"])
        }
    }

    private func writeInbound(
        _ event: BusEvent, _ message: MessageReceived, session: ConversationSession, stored: ConversationRecord?, replies: [MessageRecord]
    ) async throws {
        if stored == nil || stored?.customerAddress == nil {
            var metadata = session.metadata
            metadata["mode"] = message.mode.rawValue
            if let callSid = session.callSid { metadata["call_sid"] = callSid }
            let record = ConversationRecord(
                id: event.conversationId, channel: event.channel, direction: session.direction.rawValue,
                customerAddress: session.authorInfo.address, agentAddress: session.aiAgentInfo.address,
                customerParticipantId: session.authorInfo.participantId, agentParticipantId: session.aiAgentInfo.participantId,
                profileId: session.profileId, metadata: metadata)
            let store = runtime.store
            try await withinDeadline { try await store.upsertConversation(record) }
            runtime.conversations.store(event.conversationId, record)
        }
        let inbound = MessageRecord(
            id: event.id, conversationId: event.conversationId, channel: event.channel, direction: .inbound,
            authorAddress: session.authorInfo.address, body: message.text, createdAt: event.occurredDate ?? session.startedAt)
        _ = try await runtime.store.appendMessages([inbound] + replies)
    }
}
