public import AgentConnectCore
public import Foundation

/// Who a party of the conversation is.
public struct ParticipantInfo: Sendable, Equatable, Codable {
    /// Their address: a phone number, `whatsapp:+1…`, an RCS sender or a chat identity.
    public var address: String?
    /// Their Conversation Orchestrator participant id, when known.
    public var participantId: String?

    public init(address: String? = nil, participantId: String? = nil) {
        self.address = address
        self.participantId = participantId
    }
}

/// Everything a callback knows about the conversation it is answering (TAC's `ConversationSession`).
public struct ConversationSession: Sendable, Equatable {
    /// Conversation Orchestrator id, the CallSid for relay-only voice, or a stable id for classic numbers.
    public var conversationId: String
    /// The channel the customer is on.
    public var channel: ChannelKind
    /// The call, on voice.
    public var callSid: String?
    /// The customer's profile in memory, when resolved.
    public var profileId: String?
    /// The customer.
    public var authorInfo: ParticipantInfo
    /// The agent: which of our numbers or identities the customer reached.
    public var aiAgentInfo: ParticipantInfo
    /// Conversation metadata (`direction`, the app's keys, `channel_id` for chat).
    public var metadata: [String: String]
    /// `.outbound` when the agent started the conversation.
    public var direction: Direction
    /// When this session was built.
    public var startedAt: Date
    /// Voice only: the call's `setup` details (`customParameters`, caller name, …) and the prompt's `lang`.
    public var voice: VoiceCallDetails?
    /// The media of the message being answered (pictures, voice notes, …), in order; the text may
    /// be empty when the customer sent only media. Fetch one with ``TAC/fetchMedia(_:maxBytes:timeout:)``.
    public var media: [MessageMedia]

    public init(
        conversationId: String, channel: ChannelKind, callSid: String? = nil, profileId: String? = nil,
        authorInfo: ParticipantInfo = .init(), aiAgentInfo: ParticipantInfo = .init(), metadata: [String: String] = [:],
        direction: Direction = .inbound, startedAt: Date = Date(), media: [MessageMedia] = []
    ) {
        self.media = media
        self.conversationId = conversationId
        self.channel = channel
        self.callSid = callSid
        self.profileId = profileId
        self.authorInfo = authorInfo
        self.aiAgentInfo = aiAgentInfo
        self.metadata = metadata
        self.direction = direction
        self.startedAt = startedAt
    }
}

/// Who started a conversation.
public enum Direction: String, Sendable, Equatable, Codable {
    case inbound, outbound
}

/// What the caller said when they interrupted the agent.
public struct InterruptMessage: Sendable, Equatable {
    /// The part of the agent's reply spoken before the interruption.
    public var utteranceUntilInterrupt: String
    /// How long the agent had spoken, in milliseconds.
    public var durationUntilInterruptMs: Int

    /// From a `voice.interrupted` event.
    package init(utteranceUntilInterrupt: String, durationUntilInterruptMs: Int) {
        self.utteranceUntilInterrupt = utteranceUntilInterrupt
        self.durationUntilInterruptMs = durationUntilInterruptMs
    }
}

/// A key the caller pressed.
public struct DTMFMessage: Sendable, Equatable {
    public var digit: String

    /// From a `voice.dtmf` event.
    package init(digit: String) {
        self.digit = digit
    }
}

/// A call or ConversationRelay session status update.
public struct CallStatusEvent: Sendable, Equatable {
    /// `status`, `amd`, `recording` or `session`.
    public var kind: String
    /// The form fields Twilio posted.
    public var fields: [String: String]

    /// From a `voice.call_status` event.
    package init(kind: String, fields: [String: String]) {
        self.kind = kind
        self.fields = fields
    }
}
