import AgentConnectCore
import NIOConcurrencyHelpers

/// The repositories held in memory with the same uniqueness rules, for unit tests.
public final class InMemoryStore: Sendable {
    private struct State {
        var conversations: [String: ConversationRecord] = [:]
        var ended: Set<String> = []
        var messages: [String: MessageRecord] = [:]
        var deliveries: [String: DeliveryStatus] = [:]
        var processed: Set<String> = []
    }

    private let state = NIOLockedValueBox(State())

    public init() {}
}

extension InMemoryStore: ConversationStore {
    public func upsertConversation(_ record: ConversationRecord) async throws {
        state.withLockedValue { state in
            guard var existing = state.conversations[record.id] else {
                state.conversations[record.id] = record
                return
            }
            existing.customerAddress = record.customerAddress ?? existing.customerAddress
            existing.agentAddress = record.agentAddress ?? existing.agentAddress
            existing.customerParticipantId = record.customerParticipantId ?? existing.customerParticipantId
            existing.agentParticipantId = record.agentParticipantId ?? existing.agentParticipantId
            existing.profileId = record.profileId ?? existing.profileId
            existing.metadata.merge(record.metadata) { _, new in new }
            state.conversations[record.id] = existing
        }
    }

    public func conversation(id: String) async throws -> ConversationRecord? {
        state.withLockedValue { $0.conversations[id] }
    }

    public func setStatus(conversationId: String, status: String) async throws {
        state.withLockedValue { $0.conversations[conversationId]?.status = status }
    }

    public func markEnded(conversationId: String, channel: ChannelKind) async throws -> Bool {
        state.withLockedValue { $0.ended.insert(conversationId).inserted }
    }
}

extension InMemoryStore: MessageStore {
    public func appendMessage(_ message: MessageRecord) async throws -> Bool {
        state.withLockedValue { state in
            guard state.messages[message.id] == nil else { return false }
            state.messages[message.id] = message
            return true
        }
    }

    public func history(conversationId: String, limit: Int) async throws -> [MessageRecord] {
        state.withLockedValue { state in
            Array(state.messages.values.filter { $0.conversationId == conversationId }.sorted { $0.createdAt < $1.createdAt }.suffix(limit))
        }
    }
}

extension InMemoryStore: DeliveryStore {
    public func insertDelivery(replyId: String, conversationId: String, channel: ChannelKind) async throws {
        try state.withLockedValue { state in
            guard state.deliveries[replyId] == nil else { throw StoreError(.duplicate, "a delivery row for reply \(replyId) already exists") }
            state.deliveries[replyId] = .pending
        }
    }

    public func deliveryStatus(replyId: String) async throws -> DeliveryStatus? {
        state.withLockedValue { $0.deliveries[replyId] }
    }

    public func markDelivered(replyId: String, providerId: String?) async throws {
        state.withLockedValue { $0.deliveries[replyId] = .sent }
    }

    public func markDeliveryFailed(replyId: String, error: String) async throws {
        state.withLockedValue { $0.deliveries[replyId] = .failed }
    }
}

extension InMemoryStore: ProcessedEventStore {
    public func markProcessed(consumer: String, eventId: String) async throws -> Bool {
        state.withLockedValue { $0.processed.insert("\(consumer)\u{0}\(eventId)").inserted }
    }
}
