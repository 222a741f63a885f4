import AgentConnect
import AgentConnectCore
import AgentConnectRuntime
import EventBus
import Foundation
import Store
import Testing

@Suite("Agent worker in-process: messaging turns")
struct MessagingTurnTests {
    @Test("a message gets one reply.ready on tac:outbound with its conversation, channel, customer and text; history records both sides")
    func messageGetsOneReply() async throws {
        let worker = try WorkerHarness()
        let seen = Recorder<String>()
        worker.tac.onMessageReady { text, session, _ in
            seen.append("\(session.channel.rawValue):\(session.authorInfo.address ?? "")")
            return "You said: \(text)"
        }
        try await worker.deliver(try WorkerHarness.message("hello", conversationId: "conv-1", channel: .whatsapp, from: "whatsapp:+15550001111"))

        #expect(seen.all == ["whatsapp:whatsapp:+15550001111"])
        let replies = worker.replies
        try #require(replies.count == 1)
        #expect(replies[0].conversationId == "conv-1")
        #expect(replies[0].channel == .whatsapp)
        let reply = try replies[0].decode(ReplyReady.self)
        #expect(reply.text == "You said: hello")
        #expect(reply.customerAddress == "whatsapp:+15550001111")
        #expect(reply.agentAddress == "+15559990000")
        let history = try await worker.store.history(conversationId: "conv-1", limit: 10)
        #expect(history.map(\.direction) == [.inbound, .outbound])
        #expect(history.map(\.body) == ["hello", "You said: hello"])
        #expect(history.last?.id == replies[0].id)
    }

    @Test("sendResponse inside the callback is the turn's reply; a callback returning nil sends nothing more")
    func sendResponseInsideTheTurn() async throws {
        let worker = try WorkerHarness()
        let sms = SMSChannel(worker.tac)
        worker.tac.onMessageReady { text, session, _ in
            try await sms.sendResponse(conversationId: session.conversationId, response: "first to \(text)")
            try await sms.sendResponse(conversationId: session.conversationId, response: "second")
            return nil
        }
        let event = try WorkerHarness.message("hi", conversationId: "conv-2")
        try await worker.deliver(event)

        let texts = try worker.replies.map { try $0.decode(ReplyReady.self).text }
        #expect(texts == ["first to hi", "second"])
        // The reply ids derive from the event: a redone turn publishes the same replies again.
        #expect(Set(worker.replies.map(\.id)).count == 2)
        #expect(worker.replies.allSatisfy { $0.id.hasPrefix(event.id) })
    }

    @Test("sendResponse outside a turn uses the stored conversation; an unknown conversation throws")
    func sendResponseOutsideATurn() async throws {
        let worker = try WorkerHarness()
        worker.tac.onMessageReady { _, _, _ in "ok" }
        try await worker.deliver(try WorkerHarness.message("hi", conversationId: "conv-3"))
        let sms = SMSChannel(worker.tac)
        try await sms.sendResponse(conversationId: "conv-3", response: "a reminder")

        let last = try #require(worker.replies.last)
        #expect(try last.decode(ReplyReady.self).text == "a reminder")
        #expect(try last.decode(ReplyReady.self).customerAddress == "+15550001111")
        await #expect(throws: TACError.self) { try await sms.sendResponse(conversationId: "conv-unknown", response: "x") }
    }

    @Test("a callback that throws reaches onError with the conversation and the source; no reply, and the turn fails (to be retried)")
    func throwingCallback() async throws {
        struct ModelDown: Error {}
        let worker = try WorkerHarness()
        let errors = Recorder<[String: String]>()
        worker.tac.onMessageReady { _, _, _ in throw ModelDown() }
        worker.tac.onError { error, context in
            if error is ModelDown { errors.append(context) }
        }
        await #expect(throws: ModelDown.self) { try await worker.deliver(try WorkerHarness.message("hi", conversationId: "conv-4")) }

        #expect(errors.count == 1)
        #expect(errors.all.first?["conversation.id"] == "conv-4")
        #expect(errors.all.first?["source"] == "turn")
        #expect(worker.replies.isEmpty)
    }

    @Test("STOP records the opt-out and gets neither a callback nor a reply; START lifts it and is answered")
    func optOut() async throws {
        let worker = try WorkerHarness()
        let seen = worker.recordingMessages()
        try await worker.deliver(try WorkerHarness.message("STOP", conversationId: "conv-5", optOut: "stop"))
        #expect(seen.all.isEmpty)
        #expect(worker.replies.isEmpty)
        #expect(worker.store.isOptedOut(agent: "+15559990000", customer: "+15550001111"))

        try await worker.deliver(try WorkerHarness.message("START", conversationId: "conv-5", optOut: "start"))
        #expect(seen.all == ["START"])
        #expect(worker.replies.count == 1)
        #expect(!worker.store.isOptedOut(agent: "+15559990000", customer: "+15550001111"))
    }

    @Test("conversation.ended calls onConversationEnded once with the conversation's channel, however often it comes")
    func conversationEndedOnce() async throws {
        let worker = try WorkerHarness()
        let ended = Recorder<ConversationSession>()
        worker.tac.onMessageReady { _, _, _ in "ok" }
        worker.tac.onConversationEnded { ended.append($0) }
        try await worker.deliver(try WorkerHarness.message("hi", conversationId: "conv-6", channel: .chat, from: "chat-customer"))
        // Two producers noticing the end (Orchestrator names no channel): two events, one callback.
        for _ in 0..<2 {
            try await worker.deliver(try ConversationEnded.event(conversationId: "conv-6", channel: nil, reason: .orchestrator))
        }

        #expect(ended.count == 1)
        #expect(ended.all.first?.conversationId == "conv-6")
        #expect(ended.all.first?.channel == .chat)
        #expect(ended.all.first?.authorInfo.address == "chat-customer")
    }

    @Test("a message authored by the agent's own participant gets no callback and no reply")
    func agentsOwnMessage() async throws {
        let worker = try WorkerHarness()
        let seen = worker.recordingMessages()
        try await worker.store.upsertConversation(ConversationRecord(id: "conv-9", channel: .chat, agentParticipantId: "agent-participant"))
        let own = try BusEvent(
            MessageReceived(mode: .orchestrator, text: "from the agent", authorAddress: "agent", authorParticipantId: "agent-participant"),
            conversationId: "conv-9", channel: .chat)
        try await worker.deliver(own)
        try await worker.deliver(try WorkerHarness.message("from the customer", conversationId: "conv-9", channel: .chat, from: "customer"))
        #expect(seen.all == ["from the customer"])
        #expect(worker.replies.count == 1)
    }

    @Test("Twilio's delivery statuses reach onDeliveryStatus with the reply id, in order only; a failure also reaches onError with its code")
    func deliveryStatuses() async throws {
        let worker = try WorkerHarness()
        let updates = Recorder<DeliveryStatusUpdate>()
        let errors = Recorder<[String: String]>()
        worker.tac.onDeliveryStatus { _, update in updates.append(update) }
        worker.tac.onError { _, context in errors.append(context) }
        worker.store.recordSent(replyId: "reply-1", providerId: "SM1")
        func status(_ status: String, errorCode: String? = nil) throws -> BusEvent {
            try BusEvent(
                MessageStatus(messageSid: "SM1", status: status, errorCode: errorCode, agentAddress: "+15559990000", customerAddress: "+15550001111"),
                conversationId: "conv-10", channel: .sms)
        }
        try await worker.deliver(try status("sent"))
        try await worker.deliver(try status("queued"))  // overtaken: stale, not offered
        try await worker.deliver(try status("undelivered", errorCode: "30003"))

        #expect(updates.all.map(\.status) == ["sent", "undelivered"])
        #expect(updates.all.allSatisfy { $0.replyId == "reply-1" && $0.messageSid == "SM1" })
        #expect(updates.all.last?.errorCode == 30003)
        #expect(errors.all.map { $0["error.code"] } == ["30003"])
        #expect(errors.all.first?["reply.id"] == "reply-1")
        #expect(worker.store.deliveryReport(providerId: "SM1") == "undelivered")
    }

    @Test("the same event delivered twice through the inbound consumer: one callback, one reply; the next message is answered")
    func duplicateDelivery() async throws {
        let worker = try WorkerHarness()
        let seen = worker.recordingMessages { "You said: \($0)" }
        let first = try WorkerHarness.message("one", conversationId: "conv-7")
        try await worker.running {
            try await worker.publishInbound(first)
            try await worker.publishInbound(first)
            try await worker.publishInbound(try WorkerHarness.message("two", conversationId: "conv-7"))
            // The conversation's events run in order: once "two" is answered, the duplicate was handled.
            #expect(await eventually { worker.replies.count >= 2 })
        }
        #expect(seen.all == ["one", "two"])
        #expect(try worker.replies.map { try $0.decode(ReplyReady.self).text } == ["You said: one", "You said: two"])
        let stream = Partitioner.inboundStream(for: "conv-7", partitions: worker.partitions)
        #expect(try await worker.bus.pendingCount("agents", stream: stream) == 0)
        #expect(worker.leaseTable.holder(of: Partitioner.partition(of: "conv-7", partitions: worker.partitions)) == nil)
    }

    @Test("Conversation Intelligence results become summaries and observations on the customer's profile, once; other configurations are skipped")
    func intelligenceResults() async throws {
        let worker = try WorkerHarness([
            "CONVERSATION_INTELLIGENCE_CONFIGURATION_ID": "GAtest", "CONVERSATION_INTELLIGENCE_SUMMARY_OPERATOR_SID": "LYsummary",
            "CONVERSATION_INTELLIGENCE_OBSERVATION_OPERATOR_SID": "LYobservation",
        ])
        worker.tac.onMessageReady { _, _, _ in "ok" }
        try await worker.deliver(try WorkerHarness.message("I want to change my plan", conversationId: "conv-8", from: "+15553330100"))
        func event(configuration: String) throws -> BusEvent {
            let body: JSONValue = [
                "conversationId": "conv-8", "intelligenceConfiguration": ["id": .string(configuration)],
                "operatorResults": [
                    [
                        "id": "result_1", "operator": ["id": "LYsummary"], "outputFormat": "JSON",
                        "result": ["payload": #"{"summary":"Customer wants to change their plan"}"#], "dateCreated": "2026-11-21T10:30:45Z",
                    ],
                    ["id": "result_2", "operator": ["id": "LYobservation"], "outputFormat": "TEXT", "result": ["result": "Is price sensitive"]],
                    ["id": "result_3", "operator": ["id": "LYother"], "outputFormat": "TEXT", "result": ["result": "ignored"]],
                ],
            ]
            return try BusEvent(IntelligenceResult(body: body), conversationId: "conv-8", channel: .sms)
        }
        for configuration in ["GAtest", "GAtest", "GAsomeoneelse"] { try await worker.deliver(try event(configuration: configuration)) }

        let profile = try #require(try await worker.store.profileId(for: .phone("+15553330100"), create: false))
        let recalled = try await worker.store.recall(profileId: profile, RecallRequest(query: nil))
        #expect(recalled.summaries.map { "\($0.content)|\($0.source)" } == ["Customer wants to change their plan|conversation-intelligence"])
        #expect(recalled.observations.map(\.content) == ["Is price sensitive"])
    }

    @Test(
        "a turn's replies go in the history with its message; a reply sent before the callback failed, or by a task it left running, is recorded too")
    func repliesInTheHistory() async throws {
        let worker = try WorkerHarness()
        let sms = SMSChannel(worker.tac)
        worker.tac.onMessageReady { text, session, _ in
            switch text {
            case "fail":
                try await sms.sendResponse(conversationId: session.conversationId, response: "sent before failing")
                throw TACError("the agent failed")
            case "later":
                Task {
                    try? await Task.sleep(for: .milliseconds(50))
                    try? await sms.sendResponse(conversationId: session.conversationId, response: "sent after the turn")
                }
                return "answered"
            default:
                try await sms.sendResponse(conversationId: session.conversationId, response: "one")
                return "two"
            }
        }
        try await worker.deliver(try WorkerHarness.message("hi", conversationId: "conv-h1"))
        let history = try await worker.store.history(conversationId: "conv-h1", limit: 10)
        #expect(history.map(\.body) == ["hi", "one", "two"])
        #expect(worker.store.historyWrites == [["hi", "one", "two"]], "the message and its replies in one write at the turn's end")

        await #expect(throws: (any Error).self) { try await worker.deliver(try WorkerHarness.message("fail", conversationId: "conv-h2")) }
        // The customer's message waits for the redelivered turn; the reply that went out is recorded now.
        #expect(try await worker.store.history(conversationId: "conv-h2", limit: 10).map(\.body) == ["sent before failing"])

        try await worker.deliver(try WorkerHarness.message("later", conversationId: "conv-h3"))
        let recorded = await eventually {
            (try? await worker.store.history(conversationId: "conv-h3", limit: 10).count) == 3
        }
        #expect(recorded)
        #expect(
            Set(try await worker.store.history(conversationId: "conv-h3", limit: 10).map(\.body)) == ["later", "answered", "sent after the turn"])
    }
}
