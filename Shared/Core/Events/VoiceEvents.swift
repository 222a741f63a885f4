/// `voice.interrupted`: the caller interrupted the agent's speech.
public struct VoiceInterrupted: BusEventPayload, Equatable {
    public static let type = EventType.voiceInterrupted

    /// What the caller heard of the reply before interrupting.
    public var utteranceUntilInterrupt: String
    /// How long the reply had played, in milliseconds.
    public var durationUntilInterruptMs: Double
    /// The call.
    public var callSid: String
    /// The relay holding the call.
    public var relayInstance: String

    public init(utteranceUntilInterrupt: String, durationUntilInterruptMs: Double, callSid: String, relayInstance: String) {
        self.utteranceUntilInterrupt = utteranceUntilInterrupt
        self.durationUntilInterruptMs = durationUntilInterruptMs
        self.callSid = callSid
        self.relayInstance = relayInstance
    }
}

/// `voice.dtmf`: the caller pressed a key.
public struct VoiceDTMF: BusEventPayload, Equatable {
    public static let type = EventType.voiceDTMF

    /// The key.
    public var digit: String
    /// The call.
    public var callSid: String
    /// The relay holding the call.
    public var relayInstance: String

    public init(digit: String, callSid: String, relayInstance: String) {
        self.digit = digit
        self.callSid = callSid
        self.relayInstance = relayInstance
    }
}

/// `voice.relay-message`: a ConversationRelay message for the agent other than a prompt, interrupt or
/// key press (`error`, `info`, `configUpdated`).
public struct VoiceRelayMessage: BusEventPayload, Equatable {
    public static let type = EventType.voiceRelayMessage

    /// The frame's `type`.
    public var frameType: String
    /// The frame as ConversationRelay sent it.
    public var frame: JSONValue
    /// The call.
    public var callSid: String
    /// The relay holding the call.
    public var relayInstance: String

    public init(frameType: String, frame: JSONValue, callSid: String, relayInstance: String) {
        self.frameType = frameType
        self.frame = frame
        self.callSid = callSid
        self.relayInstance = relayInstance
    }
}

/// `voice.call-status`: a ConversationRelay session callback or a call status callback.
public struct VoiceCallStatus: BusEventPayload, Equatable {
    public static let type = EventType.voiceCallStatus

    /// Which callback.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// `/conversation-relay-callback` (the `<Connect action>`).
        case session
        /// `/twilio/call-events/status`.
        case status
        /// `/twilio/call-events/amd` (answering machine detection).
        case amd
        /// `/twilio/call-events/recording`.
        case recording
    }

    /// Which callback.
    public var kind: Kind
    /// The call.
    public var callSid: String
    /// The callback's form fields.
    public var fields: [String: String]

    public init(kind: Kind, callSid: String, fields: [String: String]) {
        self.kind = kind
        self.callSid = callSid
        self.fields = fields
    }
}

/// `voice.frame`: a frame for a live ConversationRelay socket (text token, play, end, …), on the
/// stream of the relay holding the call. The envelope's id is `<turnId>:f<seq>`.
public struct VoiceFrame: BusEventPayload, Equatable {
    public static let type = EventType.voiceFrame

    /// The turn producing it: the relay drops frames of an interrupted turn.
    public var turnId: String
    /// The frame's place in its turn (duplicates of a redone turn are dropped).
    public var seq: Int
    /// The ConversationRelay frame.
    public var frame: JSONValue
    /// The worker producing the turn (its partition lease holder): the relay keeps a turn's first.
    public var gen: String?

    public init(turnId: String, seq: Int, frame: JSONValue, gen: String? = nil) {
        self.turnId = turnId
        self.seq = seq
        self.frame = frame
        self.gen = gen
    }
}
