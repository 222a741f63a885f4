import AgentConnectCore
import Foundation

/// One observation or conversation summary, scored against a recall query.
package struct MemoryItemRecord: Sendable, Equatable {
    package var id: String
    package var content: String
    package var source: String
    package var conversationId: String?
    package var createdAt: Date
    /// Relevance in 0…1; 1 when the recall had no query.
    package var score: Double

    package init(id: String, content: String, source: String, conversationId: String?, createdAt: Date, score: Double) {
        self.id = id
        self.content = content
        self.source = source
        self.conversationId = conversationId
        self.createdAt = createdAt
        self.score = score
    }
}

/// What to recall for a profile (the Recall request of Twilio's memory service).
package struct RecallRequest: Sendable, Equatable {
    /// Free text; observations and summaries are ranked by full-text relevance to it.
    package var query: String?
    package var observationsLimit: Int
    package var summariesLimit: Int
    package var communicationsLimit: Int
    /// Items scoring below it are left out (only when there is a query).
    package var relevanceThreshold: Double

    package init(query: String?, observationsLimit: Int = 20, summariesLimit: Int = 5, communicationsLimit: Int = 0, relevanceThreshold: Double = 0) {
        self.query = query
        self.observationsLimit = observationsLimit
        self.summariesLimit = summariesLimit
        self.communicationsLimit = communicationsLimit
        self.relevanceThreshold = relevanceThreshold
    }

    /// The query as a PostgreSQL `to_tsquery` text: its words joined with OR, so a sentence matches
    /// items sharing any word and ranks those sharing more higher. Empty when there is no word.
    package var tsQuery: String {
        let words = (query ?? "").lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init)
        var seen = Set<String>()
        return words.filter { seen.insert($0).inserted }.prefix(64).joined(separator: " | ")
    }
}

/// The recall result.
package struct RecallResult: Sendable, Equatable {
    package var observations: [MemoryItemRecord]
    package var summaries: [MemoryItemRecord]
    /// The profile's latest messages across conversations, oldest first.
    package var communications: [MessageRecord]

    package init(observations: [MemoryItemRecord] = [], summaries: [MemoryItemRecord] = [], communications: [MessageRecord] = []) {
        self.observations = observations
        self.summaries = summaries
        self.communications = communications
    }
}

/// How a customer is identified in memory.
package enum ProfileIdentifier: Sendable, Equatable {
    case phone(String)
    case email(String)

    /// The identifier in an address: `+1…` and `whatsapp:+1…` are phones, anything with `@` an
    /// email; RCS and chat identities have none (as in TAC).
    package init?(address: String?) {
        guard var address = address?.trimmingCharacters(in: .whitespaces), !address.isEmpty else { return nil }
        if address.contains("@"), !address.hasPrefix("whatsapp:") {
            self = .email(address.lowercased())
            return
        }
        if address.hasPrefix("whatsapp:") { address.removeFirst("whatsapp:".count) }
        guard address.hasPrefix("+"), address.count > 3, address.dropFirst().allSatisfy(\.isNumber) else { return nil }
        self = .phone(address)
    }

    package var kind: String {
        switch self {
        case .phone: "phone"
        case .email: "email"
        }
    }

    package var value: String {
        switch self {
        case .phone(let value), .email(let value): value
        }
    }
}

/// Customer memory: profiles, traits, observations, summaries (the part of Twilio's memory service we play).
/// Not to be confused with `InMemoryStore`, the repositories held in memory for unit tests.
package protocol CustomerMemoryStore: Sendable {
    /// The profile with this identifier; created (with the identifier as a `Contact` trait) when `create` is set.
    func profileId(for identifier: ProfileIdentifier, create: Bool) async throws -> String?
    /// Creates a profile with a given id (an id from Twilio's memory service) if there is none.
    func ensureProfile(id: String) async throws
    /// Adds an observation; an `id` that exists already is ignored. Returns the id.
    @discardableResult
    func addObservation(profileId: String, content: String, source: String, conversationId: String?, id: String?) async throws -> String
    /// Adds a conversation summary; an `id` that exists already is ignored. Returns the id.
    @discardableResult
    func addSummary(
        profileId: String, content: String, source: String, conversationId: String?, occurredAt: Date?, id: String?
    ) async throws -> String
    /// Sets fields of a trait group (other fields of the group are kept).
    func setTraits(profileId: String, group: String, values: [String: String]) async throws
    /// Trait groups → field → value; only `groups` when given.
    func traits(profileId: String, groups: [String]?) async throws -> [String: [String: String]]
    /// Observations and summaries ranked by relevance, plus recent communications.
    func recall(profileId: String, _ request: RecallRequest) async throws -> RecallResult
}
