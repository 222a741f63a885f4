import AgentConnectCore
import Foundation
import NIOConcurrencyHelpers

/// The repositories held in memory with the same uniqueness rules, for unit tests.
package final class InMemoryStore: Sendable {
    private struct State {
        var conversations: [String: ConversationRecord] = [:]
        var ended: Set<String> = []
        var messages: [String: MessageRecord] = [:]
        var deliveries: [String: DeliveryRow] = [:]
        var optOuts: Set<String> = []
        var processed: Set<String> = []
    }

    /// A reply's delivery row: the columns of `deliveries` its rules read and write.
    package struct DeliveryRow: Sendable, Equatable {
        package var conversationId: String
        package var textHash: String?
        package var status: DeliveryStatus = .pending
        package var owner: String?
        package var leaseUntil: Date?
        /// Set while a send may have reached Twilio without an answer.
        package var inDoubtSince: Date?
        /// Sends recorded (and a final failure).
        package var attempts = 0
        package var providerId: String?
        package var sentAt: Date?
        package var error: String?
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
            state.deliveries[replyId] = DeliveryRow(conversationId: conversationId)
        }
    }

    package func deliveryStatus(replyId: String) async throws -> DeliveryStatus? {
        state.withLockedValue { $0.deliveries[replyId]?.status }
    }

    package func markDelivered(replyId: String, providerId: String?) async throws {
        state.withLockedValue { state in
            guard var row = state.deliveries[replyId] else { return }
            row.status = .sent
            row.providerId = providerId
            row.sentAt = Date()
            row.owner = nil
            row.inDoubtSince = nil
            state.deliveries[replyId] = row
        }
    }

    package func markDeliveryFailed(replyId: String, error: String) async throws {
        state.withLockedValue { state in
            guard var row = state.deliveries[replyId] else { return }
            row.status = .failed
            row.error = error
            row.attempts += 1
            row.owner = nil
            state.deliveries[replyId] = row
        }
    }

    package func countSentLike(conversationId: String, textHash: String, since: Date, excluding replyId: String) async throws -> Int {
        state.withLockedValue { state in
            state.deliveries.count { id, row in
                id != replyId && row.conversationId == conversationId && row.textHash == textHash && row.status == .sent
                    && (row.sentAt.map { $0 >= since } ?? false)
            }
        }
    }

    package func claimDelivery(
        replyId: String, conversationId: String, channel: ChannelKind, textHash: String, owner: String, leaseMilliseconds: Int
    ) async throws -> DeliveryClaim {
        state.withLockedValue { state in
            let now = Date()
            guard state.deliveries[replyId] != nil else {
                state.deliveries[replyId] = DeliveryRow(
                    conversationId: conversationId, textHash: textHash, owner: owner, leaseUntil: Self.lease(leaseMilliseconds, from: now))
                return .claimed(inDoubtSince: nil)
            }
            return Self.takeOver(&state, replyId: replyId, owner: owner, leaseMilliseconds: leaseMilliseconds, now: now)
        }
    }

    package func markSending(replyId: String, owner: String, leaseMilliseconds: Int) async throws -> Bool {
        state.withLockedValue { state in
            guard var row = state.deliveries[replyId], row.status == .pending, row.owner == owner else { return false }
            let now = Date()
            row.inDoubtSince = row.inDoubtSince ?? now
            row.attempts += 1
            row.leaseUntil = Self.lease(leaseMilliseconds, from: now)
            state.deliveries[replyId] = row
            return true
        }
    }

    package func clearDoubt(replyId: String, owner: String) async throws {
        state.withLockedValue { state in
            guard let row = state.deliveries[replyId], row.status == .pending, row.owner == owner else { return }
            state.deliveries[replyId]?.inDoubtSince = nil
        }
    }

    package func isProviderIdRecorded(_ providerId: String) async throws -> Bool {
        state.withLockedValue { $0.deliveries.values.contains { $0.providerId == providerId } }
    }

    private static func lease(_ milliseconds: Int, from now: Date) -> Date {
        now.addingTimeInterval(Double(milliseconds) / 1000)
    }

    /// An existing row taken for `owner` when it is pending and free (no owner, this owner, or an
    /// expired lease); else finished (sent, failed) or held by another live owner.
    private static func takeOver(_ state: inout State, replyId: String, owner: String, leaseMilliseconds: Int, now: Date) -> DeliveryClaim {
        guard var row = state.deliveries[replyId] else { return .heldElsewhere }
        guard row.status == .pending else { return .finished(row.status) }
        guard row.owner == nil || row.owner == owner || (row.leaseUntil.map { $0 < now } ?? false) else { return .heldElsewhere }
        row.owner = owner
        row.leaseUntil = lease(leaseMilliseconds, from: now)
        state.deliveries[replyId] = row
        return .claimed(inDoubtSince: row.inDoubtSince)
    }
}

extension InMemoryStore: SendingClaimStore {
    /// As ``PostgresStore``'s one statement: a new row is created with the send recorded when the
    /// customer did not opt out and the target is known (or the participants were reconciled); an
    /// existing row is taken over without recording a send.
    package func claimForSending(
        replyId: String, conversationId: String, channel: ChannelKind, textHash: String, owner: String, leaseMilliseconds: Int,
        optOut: (agent: String, customer: String)?, targetKnown: Bool
    ) async throws -> SendingClaim {
        state.withLockedValue { state in
            let now = Date()
            let optedOut = optOut.map { state.optOuts.contains(Self.optOutKey(agent: $0.agent, customer: $0.customer)) } ?? false
            var participants: ParticipantIds?
            if let conversation = state.conversations[conversationId], conversation.metadata["participants_reconciled"] == "1" {
                participants = ParticipantIds(agentId: conversation.agentParticipantId, customerId: conversation.customerParticipantId)
            }
            guard state.deliveries[replyId] != nil else {
                let sendRecorded = !optedOut && (targetKnown || participants != nil)
                state.deliveries[replyId] = DeliveryRow(
                    conversationId: conversationId, textHash: textHash, owner: owner, leaseUntil: Self.lease(leaseMilliseconds, from: now),
                    inDoubtSince: sendRecorded ? now : nil, attempts: sendRecorded ? 1 : 0)
                return SendingClaim(claim: .claimed(inDoubtSince: nil), sendRecorded: sendRecorded, optedOut: optedOut, participants: participants)
            }
            let claim = Self.takeOver(&state, replyId: replyId, owner: owner, leaseMilliseconds: leaseMilliseconds, now: now)
            guard case .claimed = claim else { return SendingClaim(claim: claim, sendRecorded: false, optedOut: optedOut) }
            return SendingClaim(claim: claim, sendRecorded: false, optedOut: optedOut, participants: participants)
        }
    }

    /// A delivery row as it stands, for tests.
    package func delivery(replyId: String) -> DeliveryRow? {
        state.withLockedValue { $0.deliveries[replyId] }
    }
}

extension InMemoryStore: MessagingRulesStore {
    private static func optOutKey(agent: String, customer: String) -> String { "\(agent)\u{0}\(customer)" }

    package func isOptedOut(agent: String, customer: String) async throws -> Bool {
        state.withLockedValue { $0.optOuts.contains(Self.optOutKey(agent: agent, customer: customer)) }
    }

    package func setOptedOut(_ optedOut: Bool, agent: String, customer: String) async throws {
        state.withLockedValue { state in
            if optedOut {
                state.optOuts.insert(Self.optOutKey(agent: agent, customer: customer))
            } else {
                state.optOuts.remove(Self.optOutKey(agent: agent, customer: customer))
            }
        }
    }

    package func lastInboundMessageAt(customerAddress: String, channel: ChannelKind) async throws -> Date? {
        state.withLockedValue { state in
            state.messages.values.filter { $0.authorAddress == customerAddress && $0.channel == channel && $0.direction == .inbound }
                .map(\.createdAt).max()
        }
    }
}

extension InMemoryStore: ProcessedEventStore {
    package func markProcessed(consumer: String, eventId: String) async throws -> Bool {
        state.withLockedValue { $0.processed.insert("\(consumer)\u{0}\(eventId)").inserted }
    }
}
