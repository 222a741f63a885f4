extension TAC {
    /// The customer's memory: observations and summaries ranked by relevance to `query` (all, newest
    /// first, without one), trait groups, and recent communications, as `TACMemoryResponse`.
    ///
    /// As in TAC it does not fail on a memory error: it logs it and returns the conversation's own
    /// history instead (`hasMemoryFeatures == false`). Only cancellation is thrown, so an interrupt
    /// still stops the turn.
    public func retrieveMemory(_ session: ConversationSession, query: String? = nil) async throws -> TACMemoryResponse {
        try await backend.retrieveMemory(self, session: session, query: query)
    }

    /// The customer's profile id: the session's, else found (or created) from their phone number or
    /// email and remembered on the conversation. Nil for RCS and chat identities, as in TAC.
    public func profileId(for session: ConversationSession) async throws -> String? {
        if let profileId = session.profileId { return profileId }
        return try await backend.profileId(self, session: session)
    }

    /// Remembers a fact about the session's customer (found in later `retrieveMemory` calls).
    @discardableResult
    public func addObservation(_ content: String, session: ConversationSession, source: String = "agent") async throws -> String {
        let profileId = try await requireProfile(session)
        return try await backend.addObservation(self, profileId: profileId, content: content, source: source, conversationId: session.conversationId)
    }

    /// Stores a summary of the session's conversation on its customer's profile.
    @discardableResult
    public func addSummary(_ content: String, session: ConversationSession, source: String = "agent") async throws -> String {
        let profileId = try await requireProfile(session)
        return try await backend.addSummary(self, profileId: profileId, content: content, source: source, conversationId: session.conversationId)
    }

    /// Sets fields of one of the customer's trait groups, e.g. `setTraits(["drink": "flat white"], group: "Preferences", session:)`.
    public func setTraits(_ values: [String: String], group: String, session: ConversationSession) async throws {
        let profileId = try await requireProfile(session)
        try await backend.setTraits(self, profileId: profileId, group: group, values: values)
    }

    /// The conversation's latest messages (both directions, oldest first), `TAC_HISTORY_LIMIT` by default.
    public func history(conversationId: String, limit: Int? = nil) async throws -> [Communication] {
        try await backend.history(self, conversationId: conversationId, limit: limit ?? configuration.historyLimit)
    }

    private func requireProfile(_ session: ConversationSession) async throws -> String {
        guard let profileId = try await profileId(for: session) else {
            throw TACError("the customer of \(session.conversationId) has no phone number or email to keep memory under")
        }
        return profileId
    }
}
