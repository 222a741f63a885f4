import AgentConnect
import AgentConnectCore
import EventBus
import Testing

@testable import AgentConnectRuntime

/// The replies the runtime publishes as typed events are the payloads it built by hand before,
/// byte for byte once the hand-built payload's `null` members are left out (readers take a missing
/// member and `null` alike).
@Suite("Reply publisher: typed reply.ready and voice.frame")
struct ReplyPublisherTests {
    private func withoutNulls(_ value: JSONValue) -> JSONValue {
        guard case .object(let members) = value else { return value }
        return .object(members.filter { $0.value != .null })
    }

    @Test("reply.ready: the hand-built payload's bytes, media and template included")
    func replyReady() async throws {
        let bus = InMemoryEventBus()
        let session = ConversationSession(
            conversationId: "conv1", channel: .whatsapp, authorInfo: ParticipantInfo(address: "whatsapp:+1555"),
            aiAgentInfo: ParticipantInfo(address: "whatsapp:+1666", participantId: "MB1"), metadata: ["channel_id": "CH1"])
        try await ReplyPublisher.publishMessage(
            "hi \"there\"", replyId: "ev1:r1", session: session, mode: .classic, traceparent: Traceparent.random().description, bus: bus,
            media: ["https://m/1"], contentSid: "HX1", contentVariables: ["1": "Ada"])
        let event = try #require(bus.events(on: Streams.outbound).first)
        let legacy: JSONValue = [
            "text": "hi \"there\"", "mode": "classic", "customerAddress": "whatsapp:+1555", "customerParticipantId": .null,
            "agentAddress": "whatsapp:+1666", "agentParticipantId": "MB1", "channelId": "CH1", "media": ["https://m/1"], "contentSid": "HX1",
            "contentVariables": ["1": "Ada"],
        ]
        #expect(event.id == "ev1:r1" && event.type == EventType.replyReady && event.channel == .whatsapp)
        #expect(try CompactJSON.encode(event.payload) == CompactJSON.encode(withoutNulls(legacy)))
        #expect(try event.decode(ReplyReady.self).mode == .classic)
    }

    @Test("voice.frame: the hand-built payload's bytes for one frame; frames in a row ride in `more`")
    func voiceFrame() async throws {
        let bus = InMemoryEventBus()
        let frame: JSONValue = ["type": "text", "token": "Hi", "last": true]
        try await ReplyPublisher.publishFrames(
            [frame], turnId: "ev1:r1", sequence: 3, conversationId: "CA1", relayInstance: "relay-1", traceparent: Traceparent.random().description,
            bus: bus)
        let event = try #require(bus.events(on: Streams.voice(instance: "relay-1")).first)
        let legacy: JSONValue = ["turnId": "ev1:r1", "seq": .number(3), "frame": frame, "gen": .null]
        #expect(event.id == "ev1:r1:f3" && event.type == EventType.voiceFrame)
        #expect(try CompactJSON.encode(event.payload) == CompactJSON.encode(withoutNulls(legacy)))

        let words: [JSONValue] = ["a ", "b ", "c"].map { ["type": "text", "token": .string($0), "last": false] }
        try await ReplyPublisher.publishFrames(
            words[...], turnId: "ev1:r2", sequence: 4, conversationId: "CA1", relayInstance: "relay-1",
            traceparent: Traceparent.random().description, bus: bus)
        let batched = try #require(bus.events(on: Streams.voice(instance: "relay-1")).last).decode(VoiceFrame.self)
        #expect(batched.frames.map(\.sequence) == [4, 5, 6])
        #expect(batched.frames.map(\.frame) == words)
    }

    @Test("a turn's lease fence guards publishes to its own Redis only: a lost voice lease refuses frames, not a message to the main Redis")
    func fenceScope() async throws {
        let bus = InMemoryEventBus()
        bus.setLease("tac:lease:agents:3", holder: "worker-b")
        let fence = LeaseFence(key: "tac:lease:agents:3", holder: "worker-a", scope: LeaseFence.voiceScope)
        let session = ConversationSession(
            conversationId: "conv1", channel: .sms, authorInfo: ParticipantInfo(address: "+1555"), aiAgentInfo: ParticipantInfo(address: "+1666"))
        try await LeaseFence.$current.withValue(fence) {
            await #expect(throws: BusError.self) {
                try await ReplyPublisher.publishFrames(
                    [["type": "text", "token": "Hi", "last": true]], turnId: "ev1:r1", sequence: 1, conversationId: "CA1", relayInstance: "relay-1",
                    traceparent: Traceparent.random().description, bus: bus, scope: LeaseFence.voiceScope)
            }
            try await ReplyPublisher.publishMessage(
                "hi", replyId: "ev1:r2", session: session, mode: .classic, traceparent: Traceparent.random().description, bus: bus)
        }
        #expect(bus.events(on: Streams.voice(instance: "relay-1")).isEmpty)
        #expect(bus.events(on: Streams.outbound).map(\.id) == ["ev1:r2"])
    }
}
