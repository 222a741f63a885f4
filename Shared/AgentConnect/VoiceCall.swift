public import AgentConnectCore

/// A call's `<ConversationRelay>` choices, returned by ``VoiceChannel/onInboundCallTwiML(_:)`` or
/// passed to outbound calls (TAC's `VoiceTwiMLOptionsConversationRelay`): each field left `nil`
/// keeps the deployment's `CONVERSATION_RELAY_*` setting.
public typealias VoiceTwiMLOptions = ConversationRelayOptions

/// One `<Language>` element of ``VoiceTwiMLOptions``.
public typealias VoiceLanguageOptions = LanguageOptions

/// What ConversationRelay told the relay about a call (the `setup` message) and about the prompt
/// being answered: on every voice ``ConversationSession`` as ``ConversationSession/voice``.
public struct VoiceCallDetails: Sendable, Equatable {
    /// The TwiML `<Parameter>` values (`customParameters` of `setup`), including `conversationId` when set.
    public var customParameters: [String: String]
    /// Caller ID name, when Twilio has one.
    public var callerName: String?
    /// The number the call was forwarded from.
    public var forwardedFrom: String?
    /// The parent call, for a call leg created by `<Dial>`.
    public var parentCallSid: String?
    /// `PSTN`, `SIP`, `CLIENT`, …
    public var callType: String?
    /// The ConversationRelay session (`VX…`).
    public var sessionId: String?
    /// The language the prompt being answered was recognised in (`lang` of `prompt`), e.g. `es-MX`.
    public var lang: String?

    public init(
        customParameters: [String: String] = [:], callerName: String? = nil, forwardedFrom: String? = nil, parentCallSid: String? = nil,
        callType: String? = nil, sessionId: String? = nil, lang: String? = nil
    ) {
        self.customParameters = customParameters
        self.callerName = callerName
        self.forwardedFrom = forwardedFrom
        self.parentCallSid = parentCallSid
        self.callType = callType
        self.sessionId = sessionId
        self.lang = lang
    }

    /// From a voice prompt (its `customParameters`, `callSetup` and `lang`).
    package init(message: MessageReceived) {
        let setup = message.callSetup ?? [:]
        self.init(
            customParameters: message.customParameters ?? [:], callerName: setup["callerName"], forwardedFrom: setup["forwardedFrom"],
            parentCallSid: setup["parentCallSid"], callType: setup["callType"], sessionId: setup["sessionId"], lang: message.lang)
    }
}

/// A ConversationRelay `error` message: something ConversationRelay could not do (a malformed
/// frame, a TTS or transcription failure). Handed to `onError`, with `source: "conversation-relay"`.
public struct ConversationRelayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Twilio's description.
    public var description: String
    /// The message as sent.
    public var frame: JSONValue

    /// From a relay `error` frame.
    package init(description: String, frame: JSONValue) {
        self.description = description
        self.frame = frame
    }
}

/// A ConversationRelay message other than a prompt, interrupt, key press or error: `info` (with the
/// `debug` attribute's categories) and `configUpdated` (the answer to a `config` message).
public struct ConversationRelayMessage: Sendable, Equatable {
    /// `info` or `configUpdated`.
    public var type: String
    /// The message as sent.
    public var frame: JSONValue

    /// From a relay message the runtime passes on.
    package init(type: String, frame: JSONValue) {
        self.type = type
        self.frame = frame
    }
}

/// The voice webhook of an incoming call, as the per-call TwiML hook sees it (TAC's `TwiMLRequest`).
public struct TwiMLRequest: Sendable, Equatable {
    public var from: String?
    public var to: String?
    public var callSid: String?
    public var callerCountry: String?
    public var callerState: String?
    public var callerCity: String?
    public var direction: String?
    /// Every field Twilio posted.
    public var fields: [String: String]

    public init(fields: [String: String]) {
        self.fields = fields
        from = fields["From"]
        to = fields["To"]
        callSid = fields["CallSid"]
        callerCountry = fields["CallerCountry"]
        callerState = fields["CallerState"]
        callerCity = fields["CallerCity"]
        direction = fields["Direction"]
    }
}
