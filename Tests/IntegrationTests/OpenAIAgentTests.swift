import AgentConnectCore
import Foundation
import RelayCaller
import Store
import Testing

@Suite("The openai agent against a local fake model", .serialized)
struct OpenAIAgentTests {
    @Test("messaging: memory, history and the system prompt reach the model; a failing model gets an apology, not silence")
    func messaging() async throws {
        let model = try await FakeModel.start(.init(tokens: ["Hello", " there", "!"]))
        defer { model.stop() }
        var options = TestStack.Options()
        options.extra = [
            "TAC_AGENT": "openai", "OPENAI_BASE_URL": model.baseURL, "OPENAI_MODEL": "fake-model", "OPENAI_API_KEY": "sk-test",
            "OPENAI_SYSTEM_PROMPT": "You are Acme's assistant.", "OPENAI_TIMEOUT_MS": "4000", "TAC_SMS_MEMORY_MODE": "always",
            "AGENT_LEASE_TTL_MS": "10000",  // no turn is redone on a slow machine: the model's requests are counted
        ]
        try await withStack(options) { stack in
            let customer = "+15551110001"
            try await stack.database.withClient { client in
                let store = PostgresStore(client: client, logger: TestEnvironment.logger)
                let profile = try #require(try await store.profileId(for: .phone(customer), create: true))
                try await store.addObservation(profileId: profile, content: "Likes jazz", source: "test", conversationId: nil, id: nil)
            }
            let id = try #require(try await stack.customerSays("hi", from: customer)["conversationId"]?.string)
            #expect(try await stack.replyTexts(conversationId: id, count: 1) == ["Hello there!"])
            _ = await eventually { (try? await stack.count("SELECT count(*)::int FROM messages WHERE conversation_id = '\(id)'")) == 2 }
            try await stack.customerSays("how are you?", from: customer)
            _ = try await stack.replyTexts(conversationId: id, count: 2)

            let requests = model.requests
            #expect(requests.count == 2)
            let last = try #require(requests.last)
            #expect(last["model"]?.string == "fake-model")
            #expect(last["stream"]?.bool == true)
            let messages = last["messages"]?.array ?? []
            #expect(messages.first?["role"]?.string == "system")
            #expect(messages.first?["content"]?.string?.hasPrefix("You are Acme's assistant.") == true)
            #expect(messages.contains { $0["role"]?.string == "system" && ($0["content"]?.string ?? "").contains("- Likes jazz") })
            let dialogue = messages.filter { $0["role"]?.string != "system" }.map { "\($0["role"]?.string ?? ""): \($0["content"]?.string ?? "")" }
            #expect(dialogue == ["user: hi", "assistant: Hello there!", "user: how are you?"])

            model.setScript(.init(tokens: [], status: 500))
            try await stack.customerSays("are you there?", from: customer)
            #expect(try await stack.replyTexts(conversationId: id, count: 3).last?.hasPrefix("Sorry, I'm having trouble answering") == true)
            model.setScript(.init(tokens: ["late"], delay: .seconds(8)))
            try await stack.customerSays("still there?", from: customer)
            #expect(try await stack.replyTexts(conversationId: id, count: 4).last?.hasPrefix("Sorry, I'm having trouble answering") == true)
        }
    }

    @Test("voice: tokens reach the caller as the model writes them; an interrupt stops the upstream request")
    func voice() async throws {
        let words = ["Sure", ",", " I", " can", " help", " with", " that", "."]
        let model = try await FakeModel.start(.init(tokens: words, delay: .milliseconds(400)))
        defer { model.stop() }
        var options = TestStack.Options(relays: 1)
        options.extra = ["TAC_AGENT": "openai", "OPENAI_BASE_URL": model.baseURL, "OPENAI_TIMEOUT_MS": "5000", "AGENT_LEASE_TTL_MS": "10000"]
        try await withStack(options) { stack in
            let streamed = try await stack.call([.say("can you help me?")])
            let turn = try #require(streamed.turns.first)
            // Tokens the relay reads together may reach the caller as one message: the text, and when it came, count.
            #expect(turn.text == words.joined())
            let first = try #require(turn.firstToken)
            let done = try #require(turn.completed)
            // The first word is spoken while the model still has ~3 s of writing left (bounds loose
            // enough for a loaded machine, still far from "all at once at the end").
            #expect(first < .milliseconds(2000))
            #expect(done - first > .milliseconds(1200))
            let system = model.requests.first?["messages"]?.array?.first?["content"]?.string ?? ""
            #expect(system.contains("phone call"))
            #expect(model.requests.first?["max_tokens"]?.double == 200)

            model.setScript(.init(tokens: (0..<60).map { " word\($0)" }, delay: .milliseconds(100)))
            let interrupted = try await stack.call([.sayAndInterrupt("tell me everything", afterTokens: 2, settle: .milliseconds(500))])
            #expect(interrupted.turns.first?.acknowledged == true)
            #expect(interrupted.turns.first?.lateTokens.isEmpty == true)
            #expect(await eventually(timeout: .seconds(10)) { model.aborted == 1 })
            #expect(model.completed == 1)
        }
    }
}
