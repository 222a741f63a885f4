import AgentConnectCore
import Foundation

/// Conversations and their resolved participants.
package protocol ConversationStore: Sendable {
    /// Inserts or updates a conversation (non-nil fields win over stored ones).
    func upsertConversation(_ record: ConversationRecord) async throws
    /// A conversation by id.
    func conversation(id: String) async throws -> ConversationRecord?
    /// Sets the orchestrator status (`ACTIVE`, `INACTIVE`, `CLOSED`).
    func setStatus(conversationId: String, status: String) async throws
    /// Marks the conversation ended; true only for the first caller, so "ended" fires once.
    func markEnded(conversationId: String, channel: ChannelKind) async throws -> Bool
}

/// The communication history.
package protocol MessageStore: Sendable {
    /// Appends a message; returns false when a message with that id is already stored.
    @discardableResult
    func appendMessage(_ message: MessageRecord) async throws -> Bool
    /// Appends messages together (one statement where the store has them); for each, whether it was new.
    /// Called within a `withDeadline`: every wait in it must honour ``TaskDeadline``.
    @discardableResult
    func appendMessages(_ messages: [MessageRecord]) async throws -> [Bool]
    /// The latest `limit` messages of a conversation, oldest first.
    func history(conversationId: String, limit: Int) async throws -> [MessageRecord]
    /// Replaces the body of message `id` (what the caller actually heard of an interrupted reply);
    /// returns false when there is no such message.
    @discardableResult
    func replaceMessageBody(id: String, body: String) async throws -> Bool
}

extension MessageStore {
    /// One at a time, in order, where the store has no statement for several.
    package func appendMessages(_ messages: [MessageRecord]) async throws -> [Bool] {
        var appended: [Bool] = []
        for message in messages { appended.append(try await appendMessage(message)) }
        return appended
    }
}

/// One row per reply, so a reply is sent once.
package protocol DeliveryStore: Sendable {
    /// Creates the reply's row; throws ``StoreError/Code/duplicate`` when it exists.
    func insertDelivery(replyId: String, conversationId: String, channel: ChannelKind) async throws
    /// The row's status, or nil when there is none.
    func deliveryStatus(replyId: String) async throws -> DeliveryStatus?
    /// Records the send. Called within a `withDeadline`: every wait in it must honour ``TaskDeadline``.
    func markDelivered(replyId: String, providerId: String?) async throws
    /// Records a final failure.
    func markDeliveryFailed(replyId: String, error: String) async throws
    /// Creates the row if needed and takes its lease for `owner` when it is pending and free (no
    /// owner, this owner, or an expired lease).
    func claimDelivery(
        replyId: String, conversationId: String, channel: ChannelKind, textHash: String, owner: String, leaseMilliseconds: Int
    ) async throws -> DeliveryClaim
    /// How many other replies of the conversation with the same text hash were sent at or after `since`.
    func countSentLike(conversationId: String, textHash: String, since: Date, excluding replyId: String) async throws -> Int
    /// Just before a send goes out: renews the lease and records that a send may now reach Twilio
    /// (keeping the earliest such time). False when `owner` no longer holds the lease: do not send.
    func markSending(replyId: String, owner: String, leaseMilliseconds: Int) async throws -> Bool
    /// Twilio was asked (or refused definitively): no earlier send of this reply is in doubt any more.
    func clearDoubt(replyId: String, owner: String) async throws
    /// Whether a delivered reply already accounts for this Twilio resource (message SID, communication id).
    func isProviderIdRecorded(_ providerId: String) async throws -> Bool
}

/// Idempotent consumers: remember which events a consumer has applied.
package protocol ProcessedEventStore: Sendable {
    /// Records the event; false when the consumer had already processed it.
    func markProcessed(consumer: String, eventId: String) async throws -> Bool
}
