import AgentConnect
import AgentConnectCore
import EventBus
import ServiceSupport

/// Puts replies on the bus: messaging replies on `tac:outbound`, voice frames on the stream of the
/// relay that holds the call (`tac:voice:<instance>`).
enum ReplyPublisher {
    /// A messaging reply for the outbound service to deliver exactly once.
    /// `extras` go into the payload too (`media`, `contentSid`, `contentVariables`).
    static func publishMessage(
        _ text: String, replyId: String, session: ConversationSession, mode: String, traceparent: String, bus: any EventBus,
        extras: [String: JSONValue] = [:]
    ) async throws {
        var fields: [String: JSONValue] = [
            "text": .string(text), "mode": .string(mode),
            "customerAddress": JSONValue(session.authorInfo.address), "customerParticipantId": JSONValue(session.authorInfo.participantId),
            "agentAddress": JSONValue(session.aiAgentInfo.address), "agentParticipantId": JSONValue(session.aiAgentInfo.participantId),
            "channelId": JSONValue(session.metadata["channel_id"]),
        ]
        fields.merge(extras) { _, new in new }
        let payload = JSONValue.object(fields)
        let event = BusEvent(
            id: replyId, type: EventType.replyReady, conversationId: session.conversationId, channel: session.channel,
            traceparent: Traces.currentTraceparent ?? Traceparent.continuing(traceparent).description, payload: payload)
        _ = try await publish(event, to: Streams.outbound, bus: bus)
    }

    /// Publishes under the running turn's partition lease when there is one (``LeaseFence/current``):
    /// a worker that lost the partition publishes nothing.
    private static func publish(_ event: BusEvent, to stream: String, bus: any EventBus) async throws -> String {
        if let fence = LeaseFence.current { return try await bus.publish(event, to: stream, fence: fence) }
        return try await bus.publish(event, to: stream)
    }

    /// One ConversationRelay frame for a live call. `turnId` and `sequence` let the relay drop frames of
    /// an interrupted turn and duplicates of a turn redone after a worker died.
    static func publishFrame(
        _ frame: JSONValue, turnId: String, sequence: Int, conversationId: String, relayInstance: String, traceparent: String,
        bus: any EventBus
    ) async throws {
        let event = BusEvent(
            id: "\(turnId):f\(sequence)", type: EventType.voiceFrame, conversationId: conversationId, channel: .voice,
            traceparent: traceparent,
            payload: [
                "turnId": .string(turnId), "seq": .number(Double(sequence)), "frame": frame,
                // The worker producing the turn: the relay keeps the first generation of a turn.
                "gen": JSONValue(LeaseFence.current?.holder),
            ])
        _ = try await publish(event, to: Streams.voice(instance: relayInstance), bus: bus)
    }
}
