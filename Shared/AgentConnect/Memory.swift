/// When a channel reads the customer's memory before `onMessageReady` (TAC's `memory_mode`).
public enum MemoryMode: String, Sendable, CaseIterable {
    /// On every message.
    case always
    /// On the first voice prompt of a call, again after the conversation goes `INACTIVE`
    /// (on messaging it runs as `always`, as in TAC).
    case once
    /// Never: callbacks get `nil` (the default).
    case never
}

/// One remembered fact about the customer.
public struct Observation: Sendable, Equatable, Codable {
    public var id: String
    public var content: String
    public var source: String
    public var conversationId: String?
    public var createdAt: String
    /// Relevance to the query in 0…1 (1 when there is no query).
    public var score: Double
}

/// A summary of an earlier conversation.
public struct ConversationSummary: Sendable, Equatable, Codable {
    public var id: String
    public var content: String
    public var conversationId: String?
    public var createdAt: String
    public var score: Double
}

/// One message of the communication history.
public struct Communication: Sendable, Equatable, Codable {
    public var id: String
    public var conversationId: String
    public var direction: String
    public var authorAddress: String?
    public var text: String
    public var createdAt: String
}

/// The customer's memory, in the shape of TAC's `TACMemoryResponse`.
public struct TACMemoryResponse: Sendable, Equatable {
    public var profileId: String?
    /// Trait groups: group → field → value.
    public var traits: [String: [String: String]]
    public var observations: [Observation]
    public var summaries: [ConversationSummary]
    public var communications: [Communication]

    public init(
        profileId: String? = nil, traits: [String: [String: String]] = [:], observations: [Observation] = [],
        summaries: [ConversationSummary] = [], communications: [Communication] = []
    ) {
        self.profileId = profileId
        self.traits = traits
        self.observations = observations
        self.summaries = summaries
        self.communications = communications
    }
}
