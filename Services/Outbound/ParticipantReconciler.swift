import AgentConnectCore
import Logging
import Store

/// Participant reconciliation as TAC does it (docs/architecture.md §6.1), done once per
/// conversation and remembered in PostgreSQL instead of listing participants on every reply.
struct ParticipantReconciler: Sendable {
    static let reconciledKey = "participants_reconciled"

    let api: ConversationsAPI
    let store: any ConversationStore
    let logger: Logger
    /// The longest one store call may take (then ``TimeoutError``, which the consumer retries in
    /// place): the delivery's own bound. Unbounded, a query caught in PostgreSQL's crash held a
    /// delivery for good: its entry was kept fresh, so no retry or other replica ever took it (the
    /// fault suite's kill -9 of PostgreSQL lost one reply in a run that way).
    var storeTimeout: Duration = ReplyDeliverer.storeTimeout

    /// The conversation's participants: `known` when the caller read them already (reconciled), else
    /// from the stored conversation once reconciled, else reconciled now against Twilio.
    func resolve(
        conversationId: String, channel: ChannelKind, agentAddress: String, customerAddress: String?, authorParticipantId: String?,
        known: ParticipantIds? = nil
    ) async throws -> ParticipantIds {
        if let known { return known }
        if let record = try await bounded("reading the conversation", { try await store.conversation(id: conversationId) }),
            record.metadata[Self.reconciledKey] == "1",
            let agent = record.agentParticipantId, let customer = record.customerParticipantId
        {
            return ParticipantIds(agentId: agent, customerId: customer)
        }
        let participants = try await api.participants(conversationId: conversationId)
        if let authorParticipantId, let author = participants.first(where: { $0.id == authorParticipantId }), author.isAgent {
            // The "customer" message came from an agent participant at another address: TAC itself.
            try await bounded("recording the agent participant") {
                try await store.upsertConversation(ConversationRecord(id: conversationId, channel: channel, agentParticipantId: author.id))
            }
            throw OwnMessage()
        }
        let agentId = try await reconcileAgent(participants, conversationId: conversationId, channel: channel, address: agentAddress)
        let customer: Participant
        if channel == .chat {
            guard
                let author = participants.first(where: { $0.id == authorParticipantId })
                    ?? participants.first(where: { !$0.isAgent && $0.isOn(.chat) })
            else {
                throw ReconciliationError("no chat author participant")
            }
            customer = author
        } else {
            customer = try await reconcileCustomer(participants, conversationId: conversationId, channel: channel, agentAddress: agentAddress)
        }
        let customerAddress = customer.addresses.first { $0["channel"]?.string == channel.orchestratorName }?["address"]?.string ?? customerAddress
        let record = ConversationRecord(
            id: conversationId, channel: channel, customerAddress: customerAddress, agentAddress: agentAddress,
            customerParticipantId: customer.id, agentParticipantId: agentId, profileId: customer.profileId,
            metadata: [Self.reconciledKey: "1"])
        try await bounded("recording the participants") { try await store.upsertConversation(record) }
        return ParticipantIds(agentId: agentId, customerId: customer.id)
    }

    private func bounded<T: Sendable>(_ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withTimeout(storeTimeout, what, body)
    }

    private func reconcileAgent(_ participants: [Participant], conversationId: String, channel: ChannelKind, address: String) async throws -> String {
        guard let found = participants.first(where: { $0.owns(address, on: channel) }) else {
            return try await api.addParticipant(conversationId: conversationId, type: "AI_AGENT", channel: channel, address: address).id
        }
        switch found.type {
        case "AGENT", "AI_AGENT":
            return found.id
        case "UNKNOWN", nil:
            try await api.retype(found, conversationId: conversationId, to: "AI_AGENT", profileId: nil)
            return found.id
        default:
            throw ReconciliationError("the agent's address belongs to a \(found.type ?? "?") participant; not overwriting it")
        }
    }

    private func reconcileCustomer(_ participants: [Participant], conversationId: String, channel: ChannelKind, agentAddress: String) async throws
        -> Participant
    {
        let candidates = participants.filter { $0.isOn(channel) && !$0.owns(agentAddress, on: channel) }
        if let customer = candidates.first(where: { $0.type == "CUSTOMER" }) { return customer }
        if let unknown = candidates.first(where: { $0.type == "UNKNOWN" || $0.type == nil }) {
            try await api.retype(unknown, conversationId: conversationId, to: "CUSTOMER", profileId: nil)
            var promoted = unknown
            promoted.type = "CUSTOMER"
            return promoted
        }
        throw ReconciliationError("no customer participant resolvable")
    }
}

/// The message being answered was written by an agent participant; nothing is sent.
struct OwnMessage: Error {}

/// Reconciliation could not find or fix the participants; the reply cannot be addressed.
struct ReconciliationError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
