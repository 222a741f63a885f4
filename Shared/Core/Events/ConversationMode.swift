/// How a conversation reaches Twilio, carried as `"mode"` in `message.received` and `reply.ready`
/// and kept in the conversation's metadata.
package enum ConversationMode: String, Codable, Sendable, CaseIterable {
    /// Conversation Orchestrator: webhooks in, Orchestrator actions out.
    case orchestrator
    /// Classic Messaging webhooks in, the Messages API out.
    case classic
    /// A ConversationRelay call without Conversation Orchestrator.
    case relay
}
