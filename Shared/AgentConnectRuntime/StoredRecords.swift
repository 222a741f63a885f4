import AgentConnect
import AgentConnectCore
import Foundation
import Store

// The author's value types built from what the store keeps.

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

extension TACMemoryResponse {
    init(profileId: String, recalled: RecallResult, traits: [String: [String: String]]) {
        self.init(
            profileId: profileId, traits: traits,
            observations: recalled.observations.map {
                Observation(
                    id: $0.id, content: $0.content, source: $0.source, conversationId: $0.conversationId,
                    createdAt: ISO8601DateFormatter().string(from: $0.createdAt), score: $0.score)
            },
            summaries: recalled.summaries.map {
                ConversationSummary(
                    id: $0.id, content: $0.content, conversationId: $0.conversationId,
                    createdAt: ISO8601DateFormatter().string(from: $0.createdAt), score: $0.score)
            },
            communications: recalled.communications.map(Communication.init(record:)))
    }
}

extension Communication {
    init(record: MessageRecord) {
        self.init(
            id: record.id, conversationId: record.conversationId, direction: record.direction.rawValue, authorAddress: record.authorAddress,
            text: record.body, createdAt: ISO8601DateFormatter().string(from: record.createdAt))
    }
}
