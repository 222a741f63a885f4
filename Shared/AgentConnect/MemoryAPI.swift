import AgentConnectCore
import Foundation
import Metrics
import Store

extension TAC {
    /// The customer's memory: observations and summaries ranked by relevance to `query` (all, newest
    /// first, without one), trait groups, and recent communications, as `TACMemoryResponse`.
    ///
    /// As in TAC it does not fail on a memory error: it logs it and returns the conversation's own
    /// history instead (`hasMemoryFeatures == false`). Only cancellation is thrown, so an interrupt
    /// still stops the turn.
    public func retrieveMemory(_ session: ConversationSession, query: String? = nil) async throws -> TACMemoryResponse {
        let runtime = try runtime()
        let started = ContinuousClock.now
        defer {
            Timer(label: "agentconnect_memory_seconds", dimensions: [("channel", session.channel.rawValue)])
                .recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        }
        Counter(label: "agentconnect_memory_reads_total", dimensions: [("channel", session.channel.rawValue)]).increment()
        do {
            guard let profileId = try await profileId(for: session) else {
                throw TACError("no profile for \(maskAddress(session.authorInfo.address ?? ""))")
            }
            let limits = configuration.memory
            let request = RecallRequest(
                query: query, observationsLimit: limits.observationsLimit, summariesLimit: limits.summariesLimit,
                communicationsLimit: limits.communicationsLimit, relevanceThreshold: limits.relevanceThreshold)
            async let traits = runtime.store.traits(profileId: profileId, groups: limits.traitGroups)
            async let recalled = runtime.store.recall(profileId: profileId, request)
            return TACMemoryResponse(profileId: profileId, recalled: try await recalled, traits: try await traits)
        } catch {
            try Task.checkCancellation()
            logger.warning(
                "memory retrieval failed; using the conversation's history",
                metadata: ["conversation.id": "\(session.conversationId)", "error": "\(error)"])
            let history = (try? await runtime.store.history(conversationId: session.conversationId, limit: configuration.historyLimit)) ?? []
            try Task.checkCancellation()
            return TACMemoryResponse(communications: history.map(Communication.init(record:)))
        }
    }

    /// The customer's profile id: the session's, else found (or created) from their phone number or
    /// email and remembered on the conversation. Nil for RCS and chat identities, as in TAC.
    public func profileId(for session: ConversationSession) async throws -> String? {
        if let profileId = session.profileId { return profileId }
        let runtime = try runtime()
        guard let identifier = ProfileIdentifier(address: session.authorInfo.address) else { return nil }
        guard let profileId = try await runtime.store.profileId(for: identifier, create: true) else { return nil }
        try await runtime.store.upsertConversation(ConversationRecord(id: session.conversationId, channel: session.channel, profileId: profileId))
        runtime.conversations.forget(session.conversationId)
        return profileId
    }

    /// Remembers a fact about the session's customer (found in later `retrieveMemory` calls).
    @discardableResult
    public func addObservation(_ content: String, session: ConversationSession, source: String = "agent") async throws -> String {
        let profileId = try await requireProfile(session)
        return try await runtime().store.addObservation(
            profileId: profileId, content: content, source: source, conversationId: session.conversationId, id: nil)
    }

    /// Stores a summary of the session's conversation on its customer's profile.
    @discardableResult
    public func addSummary(_ content: String, session: ConversationSession, source: String = "agent") async throws -> String {
        let profileId = try await requireProfile(session)
        return try await runtime().store.addSummary(
            profileId: profileId, content: content, source: source, conversationId: session.conversationId, occurredAt: Date(), id: nil)
    }

    /// Sets fields of one of the customer's trait groups, e.g. `setTraits(["drink": "flat white"], group: "Preferences", session:)`.
    public func setTraits(_ values: [String: String], group: String, session: ConversationSession) async throws {
        let profileId = try await requireProfile(session)
        try await runtime().store.setTraits(profileId: profileId, group: group, values: values)
    }

    private func requireProfile(_ session: ConversationSession) async throws -> String {
        guard let profileId = try await profileId(for: session) else {
            throw TACError("the customer of \(session.conversationId) has no phone number or email to keep memory under")
        }
        return profileId
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
