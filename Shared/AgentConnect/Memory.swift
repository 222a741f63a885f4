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

    /// From a stored observation.
    package init(id: String, content: String, source: String, conversationId: String?, createdAt: String, score: Double) {
        self.id = id
        self.content = content
        self.source = source
        self.conversationId = conversationId
        self.createdAt = createdAt
        self.score = score
    }
}

/// A summary of an earlier conversation.
public struct ConversationSummary: Sendable, Equatable, Codable {
    public var id: String
    public var content: String
    public var conversationId: String?
    public var createdAt: String
    public var score: Double

    /// From a stored summary.
    package init(id: String, content: String, conversationId: String?, createdAt: String, score: Double) {
        self.id = id
        self.content = content
        self.conversationId = conversationId
        self.createdAt = createdAt
        self.score = score
    }
}

/// One message of the communication history.
public struct Communication: Sendable, Equatable, Codable {
    public var id: String
    public var conversationId: String
    public var direction: String
    public var authorAddress: String?
    public var text: String
    public var createdAt: String

    /// From a stored message.
    package init(id: String, conversationId: String, direction: String, authorAddress: String?, text: String, createdAt: String) {
        self.id = id
        self.conversationId = conversationId
        self.direction = direction
        self.authorAddress = authorAddress
        self.text = text
        self.createdAt = createdAt
    }
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

extension TACMemoryResponse {
    /// Whether the data came from the memory store (false for the history-only fallback).
    public var hasMemoryFeatures: Bool { profileId != nil }

    /// The non-empty sections for a system prompt, in TAC's order and wording: key observations,
    /// past conversation summaries, recent message history.
    public func buildMemoryPrompts() -> [String] {
        var prompts: [String] = []
        if !observations.isEmpty {
            prompts.append(
                "## Key Observations\nImportant notes about the customer from previous interactions:\n"
                    + observations.map { "- \($0.content)" }.joined(separator: "\n"))
        }
        if !summaries.isEmpty {
            prompts.append(
                "## Past Conversation Summaries\nSummaries of previous conversations with this customer:\n"
                    + summaries.map { "- \($0.content)" }.joined(separator: "\n"))
        }
        if !communications.isEmpty {
            prompts.append(
                "## Recent Message History\nRecent messages exchanged with this customer:\n"
                    + communications.map { "\($0.direction == "inbound" ? "User" : "Assistant"): \($0.text)" }.joined(separator: "\n"))
        }
        return prompts
    }
}

/// How much memory `retrieveMemory` returns (TAC's `memory_config`, same variables).
public struct MemoryConfiguration: Sendable, Equatable {
    /// `TWILIO_MEMORY_OBSERVATIONS_LIMIT` (0…100, default 20).
    public var observationsLimit: Int
    /// `TWILIO_MEMORY_SUMMARIES_LIMIT` (0…100, default 5).
    public var summariesLimit: Int
    /// `TWILIO_MEMORY_COMMUNICATIONS_LIMIT` (0…100, default 0).
    public var communicationsLimit: Int
    /// `TWILIO_MEMORY_RELEVANCE_THRESHOLD` (0…1, default 0).
    public var relevanceThreshold: Double
    /// `TWILIO_MEMORY_PROFILE_TRAIT_GROUPS`: which trait groups to load (nil = all).
    public var traitGroups: [String]?

    public init(
        observationsLimit: Int = 20, summariesLimit: Int = 5, communicationsLimit: Int = 0, relevanceThreshold: Double = 0,
        traitGroups: [String]? = nil
    ) {
        self.observationsLimit = observationsLimit
        self.summariesLimit = summariesLimit
        self.communicationsLimit = communicationsLimit
        self.relevanceThreshold = relevanceThreshold
        self.traitGroups = traitGroups
    }
}
