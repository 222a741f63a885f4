/// The event types that travel on the bus (docs/architecture.md §2).
public enum EventType {
    /// A customer's turn: an SMS/WhatsApp/RCS/Chat message or a final voice prompt.
    public static let messageReceived = "message.received"
    /// A conversation began (orchestrator `PARTICIPANT_ADDED`).
    public static let conversationStarted = "conversation.started"
    /// A conversation went `INACTIVE`.
    public static let conversationInactive = "conversation.inactive"
    /// A conversation ended (`CLOSED`, call hang-up, handoff).
    public static let conversationEnded = "conversation.ended"
    /// The caller interrupted the agent's speech.
    public static let voiceInterrupted = "voice.interrupted"
    /// The caller pressed a key.
    public static let voiceDTMF = "voice.dtmf"
    /// A ConversationRelay session or call status callback.
    public static let voiceCallStatus = "voice.call-status"
    /// A Conversation Intelligence operator result.
    public static let intelligenceResult = "intelligence.result"
    /// An agent reply to deliver on a messaging channel.
    public static let replyReady = "reply.ready"
    /// Twilio's delivery status of a reply (a Messages API status callback: sent, delivered, read, failed, …).
    public static let messageStatus = "message.status"
    /// A ConversationRelay message for the agent other than a prompt, interrupt or key press: `error`,
    /// `info`, `configUpdated` (payload `frameType` and the `frame` as sent).
    public static let voiceRelayMessage = "voice.relay-message"
    /// A frame for a live ConversationRelay socket (text token, play, end, …).
    public static let voiceFrame = "voice.frame"
}
