import AgentConnect
import AgentConnectCore
import Logging
import Metrics
import Store

extension WorkerRuntime {
    /// The customer's memory (``TAC/retrieveMemory(_:query:)``): on a memory error, the
    /// conversation's own history instead; only cancellation is thrown.
    func retrieveMemory(_ session: ConversationSession, query: String?) async throws -> TACMemoryResponse {
        let started = ContinuousClock.now
        defer {
            Timer(label: "agentconnect_memory_seconds", dimensions: [("channel", session.channel.rawValue)])
                .recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        }
        Counter(label: "agentconnect_memory_reads_total", dimensions: [("channel", session.channel.rawValue)]).increment()
        do {
            return try await authorRead("retrieving memory") {
                guard let profileId = try await self.profileId(for: session) else {
                    throw TACError("no profile for \(maskAddress(session.authorInfo.address ?? ""))")
                }
                let limits = self.configuration.memory
                let request = RecallRequest(
                    query: query, observationsLimit: limits.observationsLimit, summariesLimit: limits.summariesLimit,
                    communicationsLimit: limits.communicationsLimit, relevanceThreshold: limits.relevanceThreshold)
                async let traits = self.store.traits(profileId: profileId, groups: limits.traitGroups)
                async let recalled = self.store.recall(profileId: profileId, request)
                return TACMemoryResponse(profileId: profileId, recalled: try await recalled, traits: try await traits)
            }
        } catch {
            try Task.checkCancellation()
            logger.warning(
                "memory retrieval failed; using the conversation's history",
                metadata: ["conversation.id": "\(session.conversationId)", "error": "\(error)"])
            let limit = configuration.historyLimit
            let history =
                (try? await authorRead("reading the history") {
                    try await self.store.history(conversationId: session.conversationId, limit: limit)
                }) ?? []
            try Task.checkCancellation()
            return TACMemoryResponse(communications: history.map(Communication.init(record:)))
        }
    }

    /// The customer's profile id: the session's, else found (or created) from their phone number or
    /// email and remembered on the conversation. Nil for RCS and chat identities.
    func profileId(for session: ConversationSession) async throws -> String? {
        if let profileId = session.profileId { return profileId }
        guard let identifier = ProfileIdentifier(address: session.authorInfo.address) else { return nil }
        guard let profileId = try await store.profileId(for: identifier, create: true) else { return nil }
        try await store.upsertConversation(ConversationRecord(id: session.conversationId, channel: session.channel, profileId: profileId))
        conversations.forget(session.conversationId)
        return profileId
    }
}
