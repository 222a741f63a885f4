import AgentConnectCore
import Foundation

/// What the agent-worker records about messaging besides the history: customers' opt-outs, Twilio's
/// delivery reports of replies, and when a customer last wrote (WhatsApp's 24-hour window).
package protocol MessagingStateStore: Sendable {
    /// Records that `customer` opted out of (or back in to) messages from `agent`.
    func setOptedOut(_ optedOut: Bool, agent: String, customer: String) async throws
    /// Records Twilio's delivery status of the reply sent as `providerId` (a message SID).
    func recordDeliveryStatus(providerId: String, status: String, errorCode: String?) async throws -> DeliveryStatusRecording
    /// When `customerAddress` last wrote on `channel`; nil when never.
    func lastInboundMessageAt(customerAddress: String, channel: ChannelKind) async throws -> Date?
}

/// The built-in agents' tool calls, so a turn redone after a crash does not call a tool twice.
package protocol ToolCallStore: Sendable {
    /// Records a call; a call whose id is stored already is ignored.
    func recordToolCall(_ call: ToolCallRecord) async throws
    /// A call by id.
    func toolCall(id: String) async throws -> ToolCallRecord?
    /// The latest `limit` calls of a conversation, oldest first.
    func toolCalls(conversationId: String, limit: Int) async throws -> [ToolCallRecord]
}

/// The knowledge base: documents split in chunks, searched by relevance.
package protocol KnowledgeStore: Sendable {
    /// Whether a document with this source and content is already stored.
    func knowledgeDocumentIsCurrent(source: String, contentHash: String) async throws -> Bool
    /// Stores a document, replacing an earlier version from the same source; returns its id.
    func replaceKnowledgeDocument(_ document: KnowledgeDocument) async throws -> String
    /// The chunks most relevant to `query` (blended with `embedding` when given), at most `limit`.
    func searchKnowledge(query: String, embedding: [Double]?, limit: Int) async throws -> [KnowledgeChunk]
    /// Every stored document: source, title, number of chunks.
    func knowledgeDocuments() async throws -> [(source: String, title: String, chunks: Int)]
}

/// Everything the agent-worker reads and writes: ``PostgresStore`` in production,
/// ``InMemoryWorkerStore`` in tests.
package typealias AgentWorkerStore = ConversationStore & MessageStore & CustomerMemoryStore & MessagingStateStore & ToolCallStore
    & KnowledgeStore

extension PostgresStore: MessagingStateStore, ToolCallStore, KnowledgeStore {}
