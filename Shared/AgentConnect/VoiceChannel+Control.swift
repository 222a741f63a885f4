public import AgentConnectCore

/// Typed ConversationRelay messages (Twilio's "Getting and sending WebSocket messages" and "Update
/// configuration during a call"). Each is one frame of the current turn when called from a callback
/// (so an interrupt or a newer prompt drops it like the turn's text), or a frame of its own otherwise.
extension VoiceChannel {
    /// Speaks `text` (a `text` message). `last: false` streams a partial reply; `interruptible`
    /// (caller speech may cut it), `preemptible` (a later reply may replace it) and `lang` (speak
    /// this token in another language) override the call's settings for this text only.
    public func sendText(
        conversationId: String, _ text: String, last: Bool = true, interruptible: Bool? = nil, preemptible: Bool? = nil, lang: String? = nil
    ) async throws {
        var frame: [String: JSONValue] = ["type": "text", "token": .string(text), "last": .bool(last)]
        if let interruptible { frame["interruptible"] = .bool(interruptible) }
        if let preemptible { frame["preemptible"] = .bool(preemptible) }
        if let lang { frame["lang"] = .string(lang) }
        try await sendFrame(conversationId: conversationId, frame: .object(frame))
    }

    /// Plays an audio file (`play`): `source` is its URL; `loop` plays it that many times (0: until
    /// something else is said).
    public func play(conversationId: String, source: String, loop: Int? = nil, interruptible: Bool? = nil, preemptible: Bool? = nil) async throws {
        var frame: [String: JSONValue] = ["type": "play", "source": .string(source)]
        if let loop { frame["loop"] = .number(Double(loop)) }
        if let interruptible { frame["interruptible"] = .bool(interruptible) }
        if let preemptible { frame["preemptible"] = .bool(preemptible) }
        try await sendFrame(conversationId: conversationId, frame: .object(frame))
    }

    /// Sends DTMF tones on the call (`sendDigits`): `0-9`, `#`, `*`, `w` (a half-second pause).
    public func sendDigits(conversationId: String, _ digits: String) async throws {
        try await sendFrame(conversationId: conversationId, frame: ["type": "sendDigits", "digits": .string(digits)])
    }

    /// Switches the speech language (`language`), synthesis and recognition independently or together.
    public func switchLanguage(conversationId: String, ttsLanguage: String? = nil, transcriptionLanguage: String? = nil) async throws {
        var frame: [String: JSONValue] = ["type": "language"]
        if let ttsLanguage { frame["ttsLanguage"] = .string(ttsLanguage) }
        if let transcriptionLanguage { frame["transcriptionLanguage"] = .string(transcriptionLanguage) }
        try await sendFrame(conversationId: conversationId, frame: .object(frame))
    }

    /// Ends the ConversationRelay session (`end`). With `handoffData`, the `<Connect action>` gets it
    /// and voice-relay answers the TwiML that transfers the call (`VOICE_HANDOFF_TO`); without, the
    /// call ends. For a handoff to a person prefer ``transfer(_:reason:attributes:)``, which also ends
    /// the conversation for the agent.
    public func endSession(conversationId: String, handoffData: String? = nil) async throws {
        var frame: [String: JSONValue] = ["type": "end"]
        if let handoffData { frame["handoffData"] = .string(handoffData) }
        try await sendFrame(conversationId: conversationId, frame: .object(frame))
    }

    /// Changes the call's settings mid-call (a `config` message): the session settings and
    /// per-language settings (voice, hints, providers, …) that `update` sets. ConversationRelay
    /// answers with `configUpdated`, which reaches ``TAC/onRelayMessage(_:)``.
    public func updateConfiguration(conversationId: String, _ update: VoiceConfigurationUpdate) async throws {
        try await sendFrame(conversationId: conversationId, frame: update.frame)
    }

    /// Hands the call to a person (TAC's handoff, as ``TAC/handoff(_:reason:attributes:)``): after
    /// this turn's reply, the `end` frame with the handoff data; voice-relay then transfers the call to
    /// `VOICE_HANDOFF_TO` (the Studio flow, a number, a SIP address or a TaskRouter queue).
    @discardableResult
    public func transfer(_ session: ConversationSession, reason: String, attributes: [String: String] = [:]) async -> JSONValue {
        await tac.handoff(session, reason: reason, attributes: attributes)
    }

    /// Hangs the call up through Twilio's Calls API (`Status=completed`; TAC's `end_call`), via the
    /// outbound service, which holds the Twilio credentials. Returns false when Twilio refused.
    @discardableResult
    public func endCall(callSid: String) async -> Bool {
        do {
            let answer = try await tac.backend.callOutboundAPI(tac, path: "/v1/calls/end", body: ["callSid": .string(callSid)], idempotencyKey: nil)
            return answer["ended"]?.bool == true
        } catch {
            await tac.reportError(error, context: ["channel": "voice", "source": "end-call", "call.sid": callSid])
            return false
        }
    }
}

/// A `config` message: the settings to change during a call; fields left nil are not sent.
public struct VoiceConfigurationUpdate: Sendable, Equatable {
    /// `none`, `dtmf`, `speech`, `any`.
    public var interruptible: String?
    public var preemptible: Bool?
    public var dtmfDetection: Bool?
    /// `none`, `dtmf`, `speech`, `any`.
    public var reportInputDuringAgentSpeech: String?
    public var partialPrompts: Bool?
    /// Milliseconds, or `auto`.
    public var speechTimeout: String?
    public var echoPromptFiltering: Bool?
    /// `high`, `medium`, `low`.
    public var interruptSensitivity: String?
    public var ignoreBackchannel: Bool?
    public var profanityFilter: Bool?
    public var eotThreshold: Double?
    /// Recognition hints for the active language (comma-separated).
    public var hints: String?
    /// Per-language settings (voice, provider, speech model, hints, text normalization), declaring a
    /// language the TwiML did not.
    public var languages: [VoiceLanguageOptions]?

    public init(
        interruptible: String? = nil, preemptible: Bool? = nil, dtmfDetection: Bool? = nil, reportInputDuringAgentSpeech: String? = nil,
        partialPrompts: Bool? = nil, speechTimeout: String? = nil, echoPromptFiltering: Bool? = nil, interruptSensitivity: String? = nil,
        ignoreBackchannel: Bool? = nil, profanityFilter: Bool? = nil, eotThreshold: Double? = nil, hints: String? = nil,
        languages: [VoiceLanguageOptions]? = nil
    ) {
        self.interruptible = interruptible
        self.preemptible = preemptible
        self.dtmfDetection = dtmfDetection
        self.reportInputDuringAgentSpeech = reportInputDuringAgentSpeech
        self.partialPrompts = partialPrompts
        self.speechTimeout = speechTimeout
        self.echoPromptFiltering = echoPromptFiltering
        self.interruptSensitivity = interruptSensitivity
        self.ignoreBackchannel = ignoreBackchannel
        self.profanityFilter = profanityFilter
        self.eotThreshold = eotThreshold
        self.hints = hints
        self.languages = languages
    }

    /// The message as sent.
    var frame: JSONValue {
        var frame: [String: JSONValue] = ["type": "config"]
        let strings: [(String, String?)] = [
            ("interruptible", interruptible), ("reportInputDuringAgentSpeech", reportInputDuringAgentSpeech), ("speechTimeout", speechTimeout),
            ("interruptSensitivity", interruptSensitivity), ("hints", hints),
        ]
        for case (let key, let value?) in strings { frame[key] = .string(value) }
        let flags: [(String, Bool?)] = [
            ("preemptible", preemptible), ("dtmfDetection", dtmfDetection), ("partialPrompts", partialPrompts),
            ("echoPromptFiltering", echoPromptFiltering), ("ignoreBackchannel", ignoreBackchannel), ("profanityFilter", profanityFilter),
        ]
        for case (let key, let value?) in flags { frame[key] = .bool(value) }
        if let eotThreshold { frame["eotThreshold"] = .number(eotThreshold) }
        if let languages {
            frame["languages"] = .array(
                languages.map { language in .object(Dictionary(language.attributes.map { ($0.0, JSONValue.string($0.1)) }) { $1 }) })
        }
        return .object(frame)
    }
}
