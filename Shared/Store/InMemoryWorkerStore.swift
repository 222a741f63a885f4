import AgentConnectCore
import Foundation
import NIOConcurrencyHelpers

/// The agent-worker's store held in memory, for tests: conversations and history in an
/// ``InMemoryStore``, and customer memory, opt-outs, delivery reports, tool calls and knowledge
/// beside it, with the same uniqueness rules as ``PostgresStore``.
package final class InMemoryWorkerStore: Sendable {
    private struct Item {
        var record: MemoryItemRecord
        var profileId: String
    }

    private struct State {
        var conversationIds: [String] = []
        var profiles: Set<String> = []
        var identifiers: [String: String] = [:]
        var traits: [String: [String: [String: String]]] = [:]
        var observations: [Item] = []
        var summaries: [Item] = []
        var optedOut: Set<String> = []
        var sentReplies: [String: String] = [:]
        var deliveryReports: [String: String] = [:]
        var toolCalls: [String: ToolCallRecord] = [:]
        var knowledge: [(document: KnowledgeDocument, id: String)] = []
        var historyWrites: [[String]] = []
    }

    /// The conversations and the history.
    package let base: InMemoryStore
    private let state = NIOLockedValueBox(State())

    /// When set, every ``recall(profileId:_:)`` first waits this long (a query that does not answer).
    package let recallStall = NIOLockedValueBox<Duration?>(nil)

    package init(base: InMemoryStore = InMemoryStore()) {
        self.base = base
    }

    /// The history written so far, one entry per write (what ``PostgresStore`` sends as one
    /// statement): the bodies it carried, in order.
    package var historyWrites: [[String]] { state.withLockedValue { $0.historyWrites } }

    /// Whether `customer` opted out of messages from `agent`.
    package func isOptedOut(agent: String, customer: String) -> Bool {
        state.withLockedValue { $0.optedOut.contains("\(agent)\u{0}\(customer)") }
    }

    /// Records that reply `replyId` went out as Twilio's `providerId` (what outbound records when it sends).
    package func recordSent(replyId: String, providerId: String) {
        state.withLockedValue { $0.sentReplies[providerId] = replyId }
    }

    /// The delivery status last recorded for `providerId`.
    package func deliveryReport(providerId: String) -> String? {
        state.withLockedValue { $0.deliveryReports[providerId] }
    }

    private func allMessages() async throws -> [MessageRecord] {
        var messages: [MessageRecord] = []
        for id in state.withLockedValue({ $0.conversationIds }) {
            messages += try await base.history(conversationId: id, limit: .max)
        }
        return messages
    }
}

extension InMemoryWorkerStore: ConversationStore {
    package func upsertConversation(_ record: ConversationRecord) async throws {
        state.withLockedValue { state in
            if !state.conversationIds.contains(record.id) { state.conversationIds.append(record.id) }
        }
        try await base.upsertConversation(record)
    }

    package func conversation(id: String) async throws -> ConversationRecord? {
        try await base.conversation(id: id)
    }

    package func setStatus(conversationId: String, status: String) async throws {
        try await base.setStatus(conversationId: conversationId, status: status)
    }

    package func markEnded(conversationId: String, channel: ChannelKind) async throws -> Bool {
        try await base.markEnded(conversationId: conversationId, channel: channel)
    }
}

extension InMemoryWorkerStore: MessageStore {
    package func appendMessage(_ message: MessageRecord) async throws -> Bool {
        try await appendMessages([message])[0]
    }

    package func appendMessages(_ messages: [MessageRecord]) async throws -> [Bool] {
        state.withLockedValue { state in
            for message in messages where !state.conversationIds.contains(message.conversationId) {
                state.conversationIds.append(message.conversationId)
            }
            state.historyWrites.append(messages.map(\.body))
        }
        return try await base.appendMessages(messages)
    }

    package func history(conversationId: String, limit: Int) async throws -> [MessageRecord] {
        try await base.history(conversationId: conversationId, limit: limit)
    }

    package func replaceMessageBody(id: String, body: String) async throws -> Bool {
        try await base.replaceMessageBody(id: id, body: body)
    }
}

extension InMemoryWorkerStore: CustomerMemoryStore {
    package func profileId(for identifier: ProfileIdentifier, create: Bool) async throws -> String? {
        state.withLockedValue { state in
            let key = "\(identifier.kind):\(identifier.value)"
            if let id = state.identifiers[key] { return id }
            guard create else { return nil }
            let id = "mem_profile_" + UUID().uuidString.lowercased()
            state.identifiers[key] = id
            state.profiles.insert(id)
            state.traits[id, default: [:]]["Contact", default: [:]][identifier.kind] = identifier.value
            return id
        }
    }

    package func ensureProfile(id: String) async throws {
        _ = state.withLockedValue { $0.profiles.insert(id) }
    }

    package func addObservation(profileId: String, content: String, source: String, conversationId: String?, id: String?) async throws -> String {
        let id = id ?? "ob_" + UUID().uuidString.lowercased()
        state.withLockedValue { state in
            guard !state.observations.contains(where: { $0.record.id == id }) else { return }
            let record = MemoryItemRecord(id: id, content: content, source: source, conversationId: conversationId, createdAt: Date(), score: 1)
            state.observations.append(Item(record: record, profileId: profileId))
        }
        return id
    }

    package func addSummary(
        profileId: String, content: String, source: String, conversationId: String?, occurredAt: Date?, id: String?
    ) async throws -> String {
        let id = id ?? "su_" + UUID().uuidString.lowercased()
        state.withLockedValue { state in
            guard !state.summaries.contains(where: { $0.record.id == id }) else { return }
            let record = MemoryItemRecord(
                id: id, content: content, source: source, conversationId: conversationId, createdAt: occurredAt ?? Date(), score: 1)
            state.summaries.append(Item(record: record, profileId: profileId))
        }
        return id
    }

    package func setTraits(profileId: String, group: String, values: [String: String]) async throws {
        state.withLockedValue { $0.traits[profileId, default: [:]][group, default: [:]].merge(values) { _, new in new } }
    }

    package func traits(profileId: String, groups: [String]?) async throws -> [String: [String: String]] {
        let all = state.withLockedValue { $0.traits[profileId] ?? [:] }
        guard let groups else { return all }
        return all.filter { groups.contains($0.key) }
    }

    /// Ranks by the share of the query's words an item holds (PostgreSQL ranks by full-text relevance).
    package func recall(profileId: String, _ request: RecallRequest) async throws -> RecallResult {
        if let stall = recallStall.withLockedValue({ $0 }) { try await Task.sleep(for: stall) }
        let words = Set(request.tsQuery.split(separator: " | ").map(String.init))
        func ranked(_ items: [Item], limit: Int) -> [MemoryItemRecord] {
            let mine = items.filter { $0.profileId == profileId }.map(\.record)
            guard !words.isEmpty else {
                return Array(mine.sorted { $0.createdAt > $1.createdAt }.prefix(limit))
            }
            let scored = mine.map { item -> MemoryItemRecord in
                var item = item
                let held = Set(item.content.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init))
                item.score = Double(words.intersection(held).count) / Double(words.count)
                return item
            }
            return Array(scored.filter { $0.score >= request.relevanceThreshold }.sorted { $0.score > $1.score }.prefix(limit))
        }
        let (observations, summaries) = state.withLockedValue { ($0.observations, $0.summaries) }
        var communications: [MessageRecord] = []
        if request.communicationsLimit > 0 {
            for id in state.withLockedValue({ $0.conversationIds }) where try await base.conversation(id: id)?.profileId == profileId {
                communications += try await base.history(conversationId: id, limit: request.communicationsLimit)
            }
            communications = Array(communications.sorted { $0.createdAt < $1.createdAt }.suffix(request.communicationsLimit))
        }
        return RecallResult(
            observations: ranked(observations, limit: request.observationsLimit), summaries: ranked(summaries, limit: request.summariesLimit),
            communications: communications)
    }
}

extension InMemoryWorkerStore: MessagingStateStore {
    package func setOptedOut(_ optedOut: Bool, agent: String, customer: String) async throws {
        state.withLockedValue { state in
            let key = "\(agent)\u{0}\(customer)"
            if optedOut { state.optedOut.insert(key) } else { state.optedOut.remove(key) }
        }
    }

    package func recordDeliveryStatus(providerId: String, status: String, errorCode: String?) async throws -> DeliveryStatusRecording {
        state.withLockedValue { state in
            guard let replyId = state.sentReplies[providerId] else { return .unknown }
            if let earlier = state.deliveryReports[providerId], PostgresStore.statusRank(earlier) > PostgresStore.statusRank(status) {
                return .stale(replyId: replyId)
            }
            state.deliveryReports[providerId] = status
            return .recorded(replyId: replyId)
        }
    }

    package func lastInboundMessageAt(customerAddress: String, channel: ChannelKind) async throws -> Date? {
        try await allMessages().filter { $0.direction == .inbound && $0.authorAddress == customerAddress && $0.channel == channel }
            .map(\.createdAt).max()
    }
}

extension InMemoryWorkerStore: ToolCallStore {
    package func recordToolCall(_ call: ToolCallRecord) async throws {
        state.withLockedValue { state in
            if state.toolCalls[call.id] == nil { state.toolCalls[call.id] = call }
        }
    }

    package func toolCall(id: String) async throws -> ToolCallRecord? {
        state.withLockedValue { $0.toolCalls[id] }
    }

    package func toolCalls(conversationId: String, limit: Int) async throws -> [ToolCallRecord] {
        let calls = state.withLockedValue { $0.toolCalls.values.filter { $0.conversationId == conversationId } }
        return Array(calls.sorted { ($0.createdAt, $0.roundId, $0.position) < ($1.createdAt, $1.roundId, $1.position) }.suffix(limit))
    }
}

extension InMemoryWorkerStore: KnowledgeStore {
    package func knowledgeDocumentIsCurrent(source: String, contentHash: String) async throws -> Bool {
        state.withLockedValue { $0.knowledge.contains { $0.document.source == source && $0.document.contentHash == contentHash } }
    }

    package func replaceKnowledgeDocument(_ document: KnowledgeDocument) async throws -> String {
        let id = "kd_" + UUID().uuidString.lowercased()
        state.withLockedValue { state in
            state.knowledge.removeAll { $0.document.source == document.source }
            state.knowledge.append((document, id))
        }
        return id
    }

    /// Ranks chunks by the share of the query's words they hold (`embedding` is not used).
    package func searchKnowledge(query: String, embedding: [Double]?, limit: Int) async throws -> [KnowledgeChunk] {
        let words = Set(RecallRequest(query: query).tsQuery.split(separator: " | ").map(String.init))
        guard !words.isEmpty else { return [] }
        let chunks = state.withLockedValue { state in
            state.knowledge.flatMap { stored in
                stored.document.chunks.enumerated().map { index, content in
                    let held = Set(content.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init))
                    return KnowledgeChunk(
                        id: "\(stored.id):\(index)", source: stored.document.source, title: stored.document.title, content: content,
                        score: Double(words.intersection(held).count) / Double(words.count))
                }
            }
        }
        return Array(chunks.filter { $0.score > 0 }.sorted { $0.score > $1.score }.prefix(limit))
    }

    package func knowledgeDocuments() async throws -> [(source: String, title: String, chunks: Int)] {
        state.withLockedValue { $0.knowledge.map { ($0.document.source, $0.document.title, $0.document.chunks.count) } }
    }
}
