import AgentConnect
import AgentConnectCore
import EventBus
import ServiceSupport

/// Puts replies on the bus: messaging replies on `tac:outbound`, voice frames on the stream of the
/// relay that holds the call (`tac:voice:<instance>`). `scope` names the Redis of `bus`
/// (``LeaseFence/scope``): the running turn's fence guards a publish to its own Redis only (a voice
/// turn's leases are on `VOICE_REDIS_URL`'s when it is set, a message it sends goes to `REDIS_URL`'s).
enum ReplyPublisher {
    /// A messaging reply for the outbound service to deliver exactly once, with its `media`, or an
    /// approved template (`contentSid`, `contentVariables`).
    static func publishMessage(
        _ text: String, replyId: String, session: ConversationSession, mode: ConversationMode, traceparent: String, bus: any EventBus,
        scope: String = "", media: [String]? = nil, contentSid: String? = nil, contentVariables: [String: String]? = nil
    ) async throws {
        let reply = ReplyReady(
            text: text, mode: mode, customerAddress: session.authorInfo.address, customerParticipantId: session.authorInfo.participantId,
            agentAddress: session.aiAgentInfo.address, agentParticipantId: session.aiAgentInfo.participantId,
            channelId: session.metadata["channel_id"],
            media: media, contentSid: contentSid, contentVariables: contentVariables)
        let event = try BusEvent(
            reply, id: replyId, conversationId: session.conversationId, channel: session.channel,
            traceparent: Traces.currentTraceparent ?? Traceparent.continuing(traceparent).description)
        _ = try await publish(event, to: Streams.outbound, bus: bus, scope: scope)
    }

    /// Publishes under the running turn's partition lease when there is one on the same Redis
    /// (``LeaseFence/current``): a worker that lost the partition publishes nothing.
    private static func publish(_ event: BusEvent, to stream: String, bus: any EventBus, scope: String) async throws -> String {
        if let fence = LeaseFence.current, fence.scope == scope { return try await bus.publish(event, to: stream, fence: fence) }
        return try await bus.publish(event, to: stream)
    }

    /// ConversationRelay frames for a live call, in a row of one turn: the first is the turn's frame
    /// `sequence`, the others follow it. `turnId` and the sequence let the relay drop frames of an
    /// interrupted turn and duplicates of a turn redone after a worker died.
    static func publishFrames(
        _ frames: ArraySlice<JSONValue>, turnId: String, sequence: Int, conversationId: String, relayInstance: String, traceparent: String,
        bus: any EventBus, scope: String = ""
    ) async throws {
        guard let first = frames.first else { return }
        // `gen`: the worker producing the turn (the relay keeps the first generation of a turn).
        let event = try BusEvent(
            VoiceFrame(
                turnId: turnId, seq: sequence, frame: first, more: frames.count > 1 ? Array(frames.dropFirst()) : nil,
                gen: LeaseFence.current?.holder), id: "\(turnId):f\(sequence)",
            conversationId: conversationId, channel: .voice, traceparent: traceparent)
        _ = try await publish(event, to: Streams.voice(instance: relayInstance), bus: bus, scope: scope)
    }
}
