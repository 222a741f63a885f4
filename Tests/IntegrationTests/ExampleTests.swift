import AgentConnectCore
import AgentConnectTesting
import Foundation
import PostgresNIO
import Testing

/// Each example is an agent worker of its own, scripted with the test kit (AgentConnectTesting)
/// against twilio-sim and the real services.
@Suite("Examples against twilio-sim", .serialized)
struct ExampleTests {
    @Test("example-sms-bot answers an SMS")
    func smsBot() async throws {
        try await AgentHarness.run(agent: "example-sms-bot") { harness in
            let sms = harness.conversation(from: "+15552220001")
            try await sms.send("What are your hours?")
            #expect(try await sms.reply() == "We're open 9am to 5pm, Monday to Friday.")
            try await sms.send("great, thanks")
            #expect(try await sms.reply() == "Thanks for your message! You wrote: great, thanks")
        }
    }

    @Test("example-voice-assistant streams word by word and acknowledges an interruption on the next turn")
    func voiceAssistant() async throws {
        try await AgentHarness.run(agent: "example-voice-assistant") { harness in
            let call = try await harness.call(from: "+15552220005")
            try await call.say("tell me about my bill")
            let heard = try await call.interrupt(afterTokens: 3)
            #expect(heard.hasPrefix("I heard you"))
            try await call.say("just the total please")
            let next = try await call.replyTokens()
            #expect(next.count > 3)  // streamed in pieces (tokens read together arrive joined)
            #expect(next.joined().hasPrefix("Sorry, I'll stop there (you heard: I heard you"))
            #expect(next.joined().hasSuffix("I heard you say just the total please. Is there anything else I can help you with today? "))
            try await call.hangUp()
        }
    }

    @Test("example-channel-replies: one callback, a different answer per channel, turn numbers per conversation")
    func channelReplies() async throws {
        try await AgentHarness.run(agent: "example-channel-replies") { harness in
            let sms = harness.conversation(from: "+15552220002")
            try await sms.send("hi")
            #expect(try await sms.reply() == "SMS reply #1: hi (I remember 0 things about you)")
            try await sms.send("again")
            #expect(try await sms.reply() == "SMS reply #2: again (I remember 0 things about you)")
            let whatsapp = harness.conversation(from: "whatsapp:+15552220002", channel: "whatsapp")
            try await whatsapp.send("hola")
            #expect(try await whatsapp.reply() == "*WhatsApp* reply #1: hola")
            let call = try await harness.call(from: "+15552220002")
            try await call.say("what time is it")
            #expect(try await call.reply() == "You said what time is it.")
        }
    }

    @Test("example-appointment-reminder starts an SMS conversation and answers the customer's YES")
    func appointmentReminder() async throws {
        let customer = "+15552220003"
        try await AgentHarness.run(agent: "example-appointment-reminder", environment: ["REMINDER_TO": customer]) { harness in
            let first = try await harness.messages(to: customer)
            #expect(first.first?.hasPrefix("Hi! This is Acme Dental") == true)
            let created = try await harness.simRequests(path: "/v2/Conversations")
            #expect(created.contains { $0["method"]?.string == "POST" && $0["body"]?["metadata"]?["campaign"]?.string == "reminders" })
            let sms = harness.conversation(from: customer)
            try await sms.send("yes")
            // Replies come in order, the reminder that started the conversation first.
            #expect(try await sms.reply().hasPrefix("Hi! This is Acme Dental"))
            #expect(try await sms.reply() == "Thanks, you're confirmed. See you tomorrow at 10:00!")
        }
    }

    @Test("example-memory-agent remembers across conversations; with two workers each conversation's end is handled once")
    func memoryAgent() async throws {
        try await AgentHarness.run(.init(agent: "example-memory-agent", agents: 2)) { harness in
            let customer = "+15552220004"
            let first = harness.conversation(from: customer)
            try await first.send("remember I drink a flat white coffee every morning")
            #expect(try await first.reply() == "Noted, I'll remember that.")
            try await first.send("remember my dog is called Rex")
            #expect(try await first.reply() == "Noted, I'll remember that.")
            try await first.send("what coffee do I like?")
            #expect(try await first.reply() == "From what I remember: I drink a flat white coffee every morning")

            // More conversations, so both workers own some; each is closed twice.
            var conversations = [first]
            for index in 0..<5 {
                let other = harness.conversation(from: "+1555222010\(index)")
                try await other.send("hello \(index)")
                _ = try await other.reply()
                conversations.append(other)
            }
            for conversation in conversations {
                try await conversation.close()
                try await conversation.close()
            }
            let list = conversations.compactMap(\.conversationId).map { "'\($0)'" }.joined(separator: ",")
            func summaries(_ what: String) async throws -> Int {
                try await harness.withStore { store in
                    var value = 0
                    for try await count in try await store.client.query(
                        PostgresQuery(unsafeSQL: "SELECT count(\(what))::int FROM conversation_summaries WHERE conversation_id IN (\(list))"),
                        logger: .init(label: "test")
                    ).decode(Int.self) { value = count }
                    return value
                }
            }
            let deadline = ContinuousClock.now + .seconds(15)
            while try await summaries("DISTINCT conversation_id") < 6, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await summaries("DISTINCT conversation_id") == 6)
            try await Task.sleep(for: .milliseconds(700))
            #expect(try await summaries("*") == 6)

            // A new conversation of the same customer finds the earlier memory.
            let second = harness.conversation(from: customer)
            try await second.send("anything about my dog?")
            #expect(second.conversationId != nil && second.conversationId != first.conversationId)
            #expect(try await second.reply() == "From what I remember: my dog is called Rex")
        }
    }
}
