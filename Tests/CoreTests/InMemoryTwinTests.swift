import AgentConnectCore
import EventBus
import Store
import Testing

@Suite("In-memory twins behave like Redis and PostgreSQL")
struct InMemoryTwinTests {
    func event(_ n: Int, conversation: String = "c") -> BusEvent {
        BusEvent(type: EventType.messageReceived, conversationId: conversation, channel: .sms, payload: ["n": .number(Double(n))])
    }

    @Test("a group delivers each entry once, in order; unacked entries are reclaimed with their delivery count")
    func groupSemantics() async throws {
        let bus = InMemoryEventBus()
        try await bus.ensureGroup("g", on: "s")
        for n in 0..<3 { _ = try await bus.publish(event(n), to: "s") }
        let first = try await bus.readGroup("g", consumer: "a", streams: ["s"], count: 10, blockMilliseconds: 0)
        #expect(first.compactMap { $0.event?.payload["n"]?.double } == [0, 1, 2])
        #expect(try await bus.readGroup("g", consumer: "b", streams: ["s"], count: 10, blockMilliseconds: 0).isEmpty)
        try await bus.ack("g", stream: "s", ids: [first[0].id, first[1].id])
        let reclaimed = try await bus.reclaim("g", consumer: "b", stream: "s", minIdleMilliseconds: 0, count: 10)
        #expect(reclaimed.map(\.id) == [first[2].id])
        #expect(reclaimed.first?.deliveries == 2)
    }

    @Test("dedup publish appends once per key")
    func dedup() async throws {
        let bus = InMemoryEventBus()
        #expect(try await bus.publish(event(1), to: "s", dedupKey: "k", ttlSeconds: 60) != .duplicate)
        #expect(try await bus.publish(event(2), to: "s", dedupKey: "k", ttlSeconds: 60) == .duplicate)
        #expect(bus.events(on: "s").count == 1)
    }

    @Test("the in-memory store refuses a second delivery row and ends a conversation once")
    func store() async throws {
        let store = InMemoryStore()
        try await store.insertDelivery(replyId: "r", conversationId: "c", channel: .sms)
        await #expect(throws: StoreError.self) { try await store.insertDelivery(replyId: "r", conversationId: "c", channel: .sms) }
        #expect(try await store.markEnded(conversationId: "c", channel: .sms))
        #expect(try await !store.markEnded(conversationId: "c", channel: .sms))
        let message = MessageRecord(id: "m", conversationId: "c", channel: .sms, direction: .inbound, authorAddress: nil, body: "x")
        #expect(try await store.appendMessage(message))
        #expect(try await !store.appendMessage(message))
    }
}
