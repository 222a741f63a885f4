import AgentConnectCore
import Foundation
import NIOConcurrencyHelpers

/// The repositories held in memory with the same uniqueness rules, for unit tests.
package final class InMemoryStore: Sendable {
    private struct State {
        var conversations: [String: ConversationRecord] = [:]
        var ended: Set<String> = []
        var messages: [String: MessageRecord] = [:]
        var deliveries: [String: DeliveryStatus] = [:]
        var deliveryLeases: [String: (owner: String, until: Date)] = [:]
        var inDoubt: [String: Date] = [:]
        var providerIds: Set<String> = []
        var processed: Set<String> = []
    }

    private let state = NIOLockedValueBox(State())

    package init() {}
}

extension InMemoryStore: ConversationStore {
    package func upsertConversation(_ record: ConversationRecord) async throws {
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

    package func conversation(id: String) async throws -> ConversationRecord? {
        state.withLockedValue { $0.conversations[id] }
    }

    package func setStatus(conversationId: String, status: String) async throws {
        state.withLockedValue { $0.conversations[conversationId]?.status = status }
    }

    package func markEnded(conversationId: String, channel: ChannelKind) async throws -> Bool {
        state.withLockedValue { $0.ended.insert(conversationId).inserted }
    }
}

extension InMemoryStore: MessageStore {
    package func appendMessage(_ message: MessageRecord) async throws -> Bool {
        state.withLockedValue { state in
            guard state.messages[message.id] == nil else { return false }
            state.messages[message.id] = message
            return true
        }
    }

    package func replaceMessageBody(id: String, body: String) async throws -> Bool {
        state.withLockedValue { state in
            guard state.messages[id] != nil else { return false }
            state.messages[id]?.body = body
            return true
        }
    }

    package func history(conversationId: String, limit: Int) async throws -> [MessageRecord] {
        state.withLockedValue { state in
            Array(state.messages.values.filter { $0.conversationId == conversationId }.sorted { $0.createdAt < $1.createdAt }.suffix(limit))
        }
    }
}

extension InMemoryStore: DeliveryStore {
    package func insertDelivery(replyId: String, conversationId: String, channel: ChannelKind) async throws {
        try state.withLockedValue { state in
            guard state.deliveries[replyId] == nil else { throw StoreError(.duplicate, "a delivery row for reply \(replyId) already exists") }
            state.deliveries[replyId] = .pending
        }
    }

    package func deliveryStatus(replyId: String) async throws -> DeliveryStatus? {
        state.withLockedValue { $0.deliveries[replyId] }
    }

    package func markDelivered(replyId: String, providerId: String?) async throws {
        state.withLockedValue { state in
            state.deliveries[replyId] = .sent
            if let providerId { state.providerIds.insert(providerId) }
        }
    }

    package func markDeliveryFailed(replyId: String, error: String) async throws {
        state.withLockedValue { $0.deliveries[replyId] = .failed }
    }

    package func countSentLike(conversationId: String, textHash: String, since: Date, excluding replyId: String) async throws -> Int {
        0
    }

    package func claimDelivery(
        replyId: String, conversationId: String, channel: ChannelKind, textHash: String, owner: String, leaseMilliseconds: Int
    ) async throws -> DeliveryClaim {
        state.withLockedValue { state in
            let now = Date()
            switch state.deliveries[replyId] {
            case .none:
                state.deliveries[replyId] = .pending
            case .some(.pending):
                if let lease = state.deliveryLeases[replyId], lease.owner != owner, lease.until > now { return .heldElsewhere }
            case .some(let status):
                return .finished(status)
            }
            state.deliveryLeases[replyId] = (owner, now.addingTimeInterval(Double(leaseMilliseconds) / 1000))
            return .claimed(inDoubtSince: state.inDoubt[replyId])
        }
    }

    package func markSending(replyId: String, owner: String, leaseMilliseconds: Int) async throws -> Bool {
        state.withLockedValue { state in
            guard state.deliveries[replyId] == .pending, state.deliveryLeases[replyId]?.owner == owner else { return false }
            state.deliveryLeases[replyId] = (owner, Date().addingTimeInterval(Double(leaseMilliseconds) / 1000))
            if state.inDoubt[replyId] == nil { state.inDoubt[replyId] = Date() }
            return true
        }
    }

    package func clearDoubt(replyId: String, owner: String) async throws {
        state.withLockedValue { state in
            if state.deliveryLeases[replyId]?.owner == owner { state.inDoubt[replyId] = nil }
        }
    }

    package func isProviderIdRecorded(_ providerId: String) async throws -> Bool {
        state.withLockedValue { $0.providerIds.contains(providerId) }
    }
}

extension InMemoryStore: ProcessedEventStore {
    package func markProcessed(consumer: String, eventId: String) async throws -> Bool {
        state.withLockedValue { $0.processed.insert("\(consumer)\u{0}\(eventId)").inserted }
    }
}
