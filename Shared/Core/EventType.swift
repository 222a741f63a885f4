/// The event types that travel on the bus (docs/architecture.md §2).
package enum EventType {
    /// A customer's turn: an SMS/WhatsApp/RCS/Chat message or a final voice prompt.
    package static let messageReceived = "message.received"
    /// A conversation began (orchestrator `PARTICIPANT_ADDED`).
    package static let conversationStarted = "conversation.started"
    /// A conversation went `INACTIVE`.
    package static let conversationInactive = "conversation.inactive"
    /// A conversation ended (`CLOSED`, call hang-up, handoff).
    package static let conversationEnded = "conversation.ended"
    /// The caller interrupted the agent's speech.
    package static let voiceInterrupted = "voice.interrupted"
    /// The caller pressed a key.
    package static let voiceDTMF = "voice.dtmf"
    /// A ConversationRelay session or call status callback.
    package static let voiceCallStatus = "voice.call-status"
    /// A Conversation Intelligence operator result.
    package static let intelligenceResult = "intelligence.result"
    /// An agent reply to deliver on a messaging channel.
    package static let replyReady = "reply.ready"
    /// Twilio's delivery status of a reply (a Messages API status callback: sent, delivered, read, failed, …).
    package static let messageStatus = "message.status"
    /// A ConversationRelay message for the agent other than a prompt, interrupt or key press: `error`,
    /// `info`, `configUpdated` (payload `frameType` and the `frame` as sent).
    package static let voiceRelayMessage = "voice.relay-message"
    /// A frame for a live ConversationRelay socket (text token, play, end, …).
    package static let voiceFrame = "voice.frame"
}
