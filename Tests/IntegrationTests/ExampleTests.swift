import AgentConnectCore
import Foundation
import RelayCaller
import Testing

/// Each example is an agent worker of its own, run against twilio-sim in place of agent-worker.
@Suite("Examples against twilio-sim", .serialized)
struct ExampleTests {
    func stack(_ relays: Int = 0) -> TestStack.Options {
        TestStack.Options(workers: 0, relays: relays)
    }

    @Test("example-sms-bot answers an SMS")
    func smsBot() async throws {
        try await withStack(stack()) { stack in
            try await stack.launch("example-sms-bot", port: TestEnvironment.freePort(), extra: ["INSTANCE_ID": "sms-bot"])
            let sent = try await stack.customerSays("What are your hours?", from: "+15552220001")
            let id = try #require(sent["conversationId"]?.string)
            #expect(try await stack.replyTexts(conversationId: id, count: 1) == ["We're open 9am to 5pm, Monday to Friday."])
            try await stack.customerSays("great, thanks", from: "+15552220001")
            #expect(try await stack.replyTexts(conversationId: id, count: 2).last == "Thanks for your message! You wrote: great, thanks")
        }
    }

    @Test("example-voice-assistant streams word by word and acknowledges an interruption on the next turn")
    func voiceAssistant() async throws {
        try await withStack(stack(1)) { stack in
            try await stack.launch("example-voice-assistant", port: TestEnvironment.freePort(), extra: ["INSTANCE_ID": "voice-assistant"])
            let transcript = try await stack.call([.sayAndInterrupt("tell me about my bill", afterTokens: 3), .say("just the total please")])
            let interrupted = try #require(transcript.turns.first)
            #expect(interrupted.acknowledged)
            #expect(interrupted.lateTokens.isEmpty)
            #expect(interrupted.tokens.count >= 3 && interrupted.tokens.count < 12)
            let next = try #require(transcript.turns.last)
            #expect(next.tokens.count > 10)
            #expect(next.text.hasPrefix("Sorry, I'll stop there (you heard: I heard you"))
            #expect(next.text.hasSuffix("I heard you say just the total please. Is there anything else I can help you with today? "))
        }
    }

    @Test("example-channel-replies: one callback, a different answer per channel, turn numbers per conversation")
    func channelReplies() async throws {
        try await withStack(stack(1)) { stack in
            try await stack.launch("example-channel-replies", port: TestEnvironment.freePort(), extra: ["INSTANCE_ID": "channels"])
            let sms = try #require(try await stack.customerSays("hi", from: "+15552220002")["conversationId"]?.string)
            _ = try await stack.replyTexts(conversationId: sms, count: 1)
            try await stack.customerSays("again", from: "+15552220002")
            #expect(try await stack.replyTexts(conversationId: sms, count: 2) == [
                "SMS reply #1: hi (I remember 0 things about you)", "SMS reply #2: again (I remember 0 things about you)",
            ])
            let whatsapp = try #require(try await stack.customerSays("hola", channel: "whatsapp", from: "whatsapp:+15552220002")["conversationId"]?.string)
            #expect(try await stack.replyTexts(conversationId: whatsapp, count: 1) == ["*WhatsApp* reply #1: hola"])
            let call = try await stack.call([.say("what time is it")])
            #expect(call.turns.map(\.text) == ["You said what time is it."])
        }
    }

    @Test("example-appointment-reminder starts an SMS conversation and answers the customer's YES")
    func appointmentReminder() async throws {
        try await withStack(stack()) { stack in
            let customer = "+15552220003"
            try await stack.launch("example-appointment-reminder", port: TestEnvironment.freePort(), extra: ["INSTANCE_ID": "reminder", "REMINDER_TO": customer])
            let first = try await stack.agentMessages(to: customer, count: 1)
            #expect(first.first?["text"]?.string?.hasPrefix("Hi! This is Acme Dental") == true)
            let conversationId = try #require(first.first?["conversationId"]?.string)
            let created = try await stack.simRequests(path: "/v2/Conversations")
            #expect(created.contains { $0["method"]?.string == "POST" && $0["body"]?["metadata"]?["campaign"]?.string == "reminders" })
            let reply = try await stack.customerSays("yes", from: customer)
            #expect(reply["conversationId"]?.string == conversationId)
            #expect(try await stack.replyTexts(conversationId: conversationId, count: 2).last == "Thanks, you're confirmed. See you tomorrow at 10:00!")
        }
    }

    @Test("example-memory-agent remembers across conversations; with two workers each conversation's end is handled once")
    func memoryAgent() async throws {
        try await withStack(stack()) { stack in
            for index in 0..<2 {
                try await stack.launch("example-memory-agent", port: TestEnvironment.freePort(), extra: ["INSTANCE_ID": "memory-\(index)"])
            }
            let customer = "+15552220004"
            let first = try #require(try await stack.customerSays("remember I drink a flat white coffee every morning", from: customer)["conversationId"]?.string)
            _ = try await stack.replyTexts(conversationId: first, count: 1)
            try await stack.customerSays("remember my dog is called Rex", from: customer)
            _ = try await stack.replyTexts(conversationId: first, count: 2)
            try await stack.customerSays("what coffee do I like?", from: customer)
            #expect(try await stack.replyTexts(conversationId: first, count: 3) == [
                "Noted, I'll remember that.", "Noted, I'll remember that.", "From what I remember: I drink a flat white coffee every morning",
            ])

            // More conversations, so both workers own some; each is closed twice.
            var conversations = [first]
            for index in 0..<5 {
                let id = try #require(try await stack.customerSays("hello \(index)", from: "+1555222010\(index)")["conversationId"]?.string)
                _ = try await stack.replyTexts(conversationId: id, count: 1)
                conversations.append(id)
            }
            for id in conversations {
                _ = try await stack.sim(.POST, "/sim/conversations/\(id)/close")
                _ = try await stack.sim(.POST, "/sim/conversations/\(id)/close")
            }
            let list = conversations.map { "'\($0)'" }.joined(separator: ",")
            let all = await eventually(timeout: .seconds(15)) {
                (try? await stack.count("SELECT count(DISTINCT conversation_id)::int FROM conversation_summaries WHERE conversation_id IN (\(list))")) == 6
            }
            #expect(all)
            try await Task.sleep(for: .milliseconds(700))
            #expect(try await stack.count("SELECT count(*)::int FROM conversation_summaries WHERE conversation_id IN (\(list))") == 6)
            let workers = try await stack.strings("SELECT DISTINCT source FROM conversation_summaries")
            #expect(workers == ["agent"])

            // A new conversation of the same customer finds the earlier memory.
            let second = try #require(try await stack.customerSays("anything about my dog?", from: customer)["conversationId"]?.string)
            #expect(second != first)
            #expect(try await stack.replyTexts(conversationId: second, count: 1) == ["From what I remember: my dog is called Rex"])
        }
    }
}
