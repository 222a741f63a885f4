import AgentConnect
import AgentConnectCore
import EventBus
import Foundation
import ServiceSupport
import Store
import TwilioKit

/// Replies, published by the runtime itself: the author's `sendResponse` calls and the turn's
/// returned text both end here.
extension WorkerRuntime {
    /// The longest a store read an author's call makes (memory, its fallback the history, and
    /// sendResponse's reads outside a turn) may take.
    static let storeReadTimeout = Duration.seconds(5)

    /// A store read an author's call makes, bounded (``storeReadTimeout``): a query that never
    /// answers (PostgreSQL caught in a crash) would hold the turn, and with it the conversation's
    /// partition, for good. Running out of time reaches the author as a ``TACError``.
    func authorRead<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await withTimeout(Self.storeReadTimeout, what, body)
        } catch let error as TimeoutError {
            throw TACError("the store did not answer: \(error)")
        }
    }

    /// Sends `response` to the customer of a messaging conversation, exactly once: inside a turn with
    /// the turn's session and reply ids, otherwise with the conversation's stored participants.
    /// Outside a turn, free text on WhatsApp more than 24 hours after the customer's last message is
    /// refused (Twilio would fail it with error 63016).
    func sendMessage(channel: ChannelKind, conversationId: String, response: String, media: [String], template: MessageTemplate?) async throws {
        let turn = TurnContext.current.flatMap { $0.session.conversationId == conversationId ? $0 : nil }
        let session: ConversationSession
        let mode: ConversationMode
        let replyId: String
        let traceparent: String
        if let turn {
            session = turn.session
            mode = turn.mode
            replyId = turn.nextReplyId()
            traceparent = turn.event.traceparent
        } else {
            guard let record = try await authorRead("loading the conversation", { try await self.store.conversation(id: conversationId) }) else {
                throw TACError("unknown conversation \(conversationId)")
            }
            session = ConversationSession(record: record)
            mode = record.metadata["mode"].flatMap(ConversationMode.init(rawValue:)) ?? .orchestrator
            replyId = BusEvent.newID()
            traceparent = Traceparent.random().description
        }
        guard media.count <= MessageRules.maxMediaPerMessage else {
            throw TACError("at most \(MessageRules.maxMediaPerMessage) media per message")
        }
        if channel == .whatsapp, template == nil, turn == nil, let customer = session.authorInfo.address {
            let last = try await authorRead("reading the customer's last message") {
                try await self.store.lastInboundMessageAt(customerAddress: customer, channel: .whatsapp)
            }
            guard let last, Date().timeIntervalSince(last) < MessageRules.whatsAppWindow else {
                throw TACError(
                    "WhatsApp's 24-hour customer-service window is closed for conversation \(conversationId) (no customer message in the last 24 hours): send an approved template (template:) instead; free text would fail with Twilio error 63016"
                )
            }
        }
        try await ReplyPublisher.publishMessage(
            response, replyId: replyId, session: session, mode: mode, traceparent: traceparent, bus: bus, media: media.isEmpty ? nil : media,
            contentSid: template?.contentSid, contentVariables: template.flatMap { $0.variables.isEmpty ? nil : $0.variables })
        let recorded = template.map { response.isEmpty ? "[template \($0.contentSid)]" : response } ?? response
        let record = Self.outboundRecord(recorded, replyId: replyId, session: session)
        // A reply of the turn being answered goes in the history with the customer's message, at the
        // turn's end (one statement for both); any other is recorded now.
        if turn?.recordAfterTurn(record) != true {
            let runtime = self
            await Uncancellable.run { await runtime.recordOutbound([record]) }
        }
    }

    /// Publishes the ConversationRelay frames `body` emits as one reply of the current turn (or a
    /// reply of its own outside a turn), to the relay holding the call.
    func sendFrames(conversationId: String, _ body: (_ emit: (JSONValue) async throws -> Void) async throws -> Void) async throws {
        let turn = TurnContext.current.flatMap { $0.session.conversationId == conversationId ? $0 : nil }
        let turnId = turn?.nextReplyId() ?? BusEvent.newID()
        let traceparent = turn?.event.traceparent ?? Traceparent.random().description
        var relay = turn?.relayInstance
        if relay == nil { relay = try await calls.relayInstance(of: conversationId) }
        guard let relay else {
            throw TACError("no live call for conversation \(conversationId)")
        }
        var spoken = ""
        // The author's stream does not wait for each frame's publish: frames that come while one is
        // on the way go out together (``FrameOutbox``), when the relay that sent the prompt reads
        // several from one event; outside a turn (no prompt to tell) one frame per event. The reply
        // is done when the last is published; after a failed publish the next frame handed in, and
        // the reply, fail with its error.
        let outbox = FrameOutbox(framesPerEvent: turn?.framesInRow == true ? FrameOutbox.maxFramesPerEvent : 1)
        let bus = voiceBus
        let scope = voiceScope
        try await withThrowingDiscardingTaskGroup { publishers in
            try await body { frame in
                if frame["type"]?.string == "text" { spoken += frame["token"]?.string ?? "" }
                guard try outbox.add(frame) else { return }
                publishers.addTask {
                    try await outbox.drain { frames, sequence in
                        try await ReplyPublisher.publishFrames(
                            frames, turnId: turnId, sequence: sequence, conversationId: conversationId, relayInstance: relay,
                            traceparent: traceparent, bus: bus, scope: scope)
                    }
                }
            }
        }
        // A cancelled turn (an interrupt) is recorded from the interrupt: what the caller heard of it.
        // A reply of the turn being answered goes in the history with the caller's prompt at the turn's
        // end (one statement for both; an interrupt is handled after the turn, so the row is there to
        // be corrected); one sent after the turn is recorded now.
        if let turn, !spoken.isEmpty, !Task.isCancelled {
            let record = Self.outboundRecord(spoken, replyId: turnId, session: turn.session)
            if !turn.recordAfterTurn(record) {
                let runtime = self
                await Uncancellable.run { await runtime.recordOutbound([record]) }
            }
            lastVoiceReply[conversationId] = turnId
        }
    }

    /// Speaks a whole reply on a call: one `text` frame with `last: true`.
    func speak(conversationId: String, _ text: String) async throws {
        try await sendFrames(conversationId: conversationId) { emit in
            try await emit(["type": "text", "token": .string(text), "last": true])
        }
    }
}
