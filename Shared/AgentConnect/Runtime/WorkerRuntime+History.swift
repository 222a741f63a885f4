import AgentConnectCore
import EventBus
import Store

extension WorkerRuntime {
    /// Records an agent reply in the history. Called after the reply is on the bus, so PostgreSQL
    /// never delays it; a failure is logged, never fatal to the turn.
    func recordOutbound(_ text: String, replyId: String, session: ConversationSession) async {
        do {
            let store = store
            _ = try await withTimeout(.seconds(10), "recording the reply") {
                try await store.appendMessage(
                    MessageRecord(
                        id: replyId, conversationId: session.conversationId, channel: session.channel, direction: .outbound,
                        authorAddress: session.aiAgentInfo.address, body: text))
            }
        } catch {
            logger.warning("could not record reply", metadata: ["conversation.id": "\(session.conversationId)", "error": "\(error)"])
        }
    }

    /// The voice-relay instance holding a call's socket, from its registration in Redis.
    func relayInstance(of conversationId: String) async throws -> String? {
        try await redis.command("GET", .string("tac:call:\(conversationId)")).string
    }
}

extension TAC {
    /// The conversation's latest messages (both directions, oldest first), `TAC_HISTORY_LIMIT` by default.
    public func history(conversationId: String, limit: Int? = nil) async throws -> [Communication] {
        try await runtime().store.history(conversationId: conversationId, limit: limit ?? configuration.historyLimit).map(Communication.init(record:))
    }
}

extension ConversationSession {
    /// A session from a stored conversation.
    init(record: ConversationRecord) {
        self.init(
            conversationId: record.id, channel: record.channel, profileId: record.profileId,
            authorInfo: ParticipantInfo(address: record.customerAddress, participantId: record.customerParticipantId),
            aiAgentInfo: ParticipantInfo(address: record.agentAddress, participantId: record.agentParticipantId),
            metadata: record.metadata, direction: Direction(rawValue: record.direction) ?? .inbound)
    }
}
