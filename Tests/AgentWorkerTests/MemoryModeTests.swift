import AgentConnect
import AgentConnectCore
import AgentConnectRuntime
import EventBus
import Foundation
import Store
import Testing

@Suite("Agent worker in-process: memory modes")
struct MemoryModeTests {
    /// A worker whose callback records the observations in the memory it is given (nil: no memory).
    private static func worker(_ environment: [String: String]) throws -> (WorkerHarness, Recorder<[String]?>) {
        let worker = try WorkerHarness(environment)
        let memories = Recorder<[String]?>()
        worker.tac.onMessageReady { _, _, memory in
            memories.append(memory.map { $0.observations.map(\.content) })
            return "ok"
        }
        return (worker, memories)
    }

    @Test("always: memory on every message, with what was added since; never: none")
    func alwaysAndNever() async throws {
        let (worker, memories) = try Self.worker(["TAC_SMS_MEMORY_MODE": "always", "TAC_WHATSAPP_MEMORY_MODE": "never"])
        let profile = try #require(try await worker.store.profileId(for: .phone("+15550001111"), create: true))
        try await worker.store.addObservation(profileId: profile, content: "Likes coffee", source: "test", conversationId: nil, id: nil)
        try await worker.deliver(try WorkerHarness.message("first", conversationId: "conv-m1"))
        try await worker.store.addObservation(profileId: profile, content: "Lives in Lyon", source: "test", conversationId: nil, id: nil)
        try await worker.deliver(try WorkerHarness.message("second", conversationId: "conv-m1"))
        #expect(memories.all.map { $0.map { Set($0) } } == [["Likes coffee"], ["Likes coffee", "Lives in Lyon"]])

        try await worker.deliver(try WorkerHarness.message("third", conversationId: "conv-m2", channel: .whatsapp, from: "whatsapp:+15550001111"))
        #expect(memories.count == 3)
        #expect(memories.all.last == .some(nil))
    }

    @Test("once on a call: read on the first prompt and kept until the conversation goes INACTIVE; runs as always on messaging")
    func once() async throws {
        let (worker, memories) = try Self.worker(["TAC_VOICE_MEMORY_MODE": "once", "TAC_CHAT_MEMORY_MODE": "once"])
        let profile = try #require(try await worker.store.profileId(for: .phone("+15550002222"), create: true))
        try await worker.store.addObservation(profileId: profile, content: "Likes coffee", source: "test", conversationId: nil, id: nil)
        try await worker.deliver(try WorkerHarness.prompt("one", conversationId: "conv-m3"))
        try await worker.store.addObservation(profileId: profile, content: "Lives in Lyon", source: "test", conversationId: nil, id: nil)
        try await worker.deliver(try WorkerHarness.prompt("two", conversationId: "conv-m3"))
        try await worker.deliver(try BusEvent(ConversationInactive(), conversationId: "conv-m3", channel: .voice))
        try await worker.deliver(try WorkerHarness.prompt("three", conversationId: "conv-m3"))
        #expect(memories.all.map { $0.map { Set($0) } } == [["Likes coffee"], ["Likes coffee"], ["Likes coffee", "Lives in Lyon"]])
        #expect(try await worker.store.conversation(id: "conv-m3")?.status == "INACTIVE")

        // Chat identities have no profile: memory falls back to the conversation's history, on every message.
        try await worker.deliver(try WorkerHarness.message("a", conversationId: "conv-m4", channel: .chat, from: "chat-customer"))
        try await worker.deliver(try WorkerHarness.message("b", conversationId: "conv-m4", channel: .chat, from: "chat-customer"))
        #expect(memories.count == 5)
        #expect(memories.all.suffix(2).allSatisfy { $0 == [] })
    }

    @Test("retrieveMemory in a callback reads the customer's traits and observations for the query")
    func retrieveMemory() async throws {
        let worker = try WorkerHarness()
        let profile = try #require(try await worker.store.profileId(for: .phone("+15550001111"), create: true))
        try await worker.store.setTraits(profileId: profile, group: "Preferences", values: ["drink": "flat white"])
        try await worker.store.addObservation(
            profileId: profile, content: "Drinks coffee every morning", source: "test", conversationId: nil, id: nil)
        try await worker.store.addObservation(profileId: profile, content: "Lives in Lyon", source: "test", conversationId: nil, id: nil)
        let recalled = Recorder<TACMemoryResponse>()
        worker.tac.onMessageReady { text, session, memory in
            #expect(memory == nil)
            recalled.append(try await worker.tac.retrieveMemory(session, query: text))
            return "ok"
        }
        try await worker.deliver(try WorkerHarness.message("what coffee do I like", conversationId: "conv-m5"))

        let memory = try #require(recalled.all.first)
        #expect(memory.profileId == profile)
        #expect(memory.traits["Preferences"] == ["drink": "flat white"])
        #expect(memory.observations.first?.content == "Drinks coffee every morning")
    }

    @Test(
        "a memory read that never answers falls back to the conversation's history within its bound; the turn is answered",
        .timeLimit(.minutes(1)))
    func stuckMemoryRead() async throws {
        let worker = try WorkerHarness()
        _ = try #require(try await worker.store.profileId(for: .phone("+15550001111"), create: true))
        let recalled = Recorder<TACMemoryResponse>()
        worker.tac.onMessageReady { text, session, _ in
            recalled.append(try await worker.tac.retrieveMemory(session, query: text))
            return "ok"
        }
        try await worker.deliver(try WorkerHarness.message("I like flat whites", conversationId: "conv-m6"))
        #expect(recalled.all.last?.profileId != nil)
        worker.store.recallStall.withLockedValue { $0 = .seconds(3600) }
        let started = ContinuousClock.now
        try await worker.deliver(try WorkerHarness.message("what coffee do I like", conversationId: "conv-m6"))
        #expect(ContinuousClock.now - started < .seconds(10))  // the 5 s bound, not the hour
        let memory = try #require(recalled.all.last)
        // The history instead of the profile's memory: no profile id, the conversation's earlier message.
        #expect(memory.profileId == nil)
        #expect(memory.communications.contains { $0.text == "I like flat whites" })
    }
}
