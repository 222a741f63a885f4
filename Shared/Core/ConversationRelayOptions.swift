/// One call's `<ConversationRelay>` choices (TAC's `VoiceTwiMLOptionsConversationRelay`): every field
/// left `nil` keeps the deployment's setting (`CONVERSATION_RELAY_*`). Returned by the per-call
/// TwiML hook (`VoiceChannel.onInboundCallTwiML`) and accepted by outbound calls.
public struct ConversationRelayOptions: Sendable, Codable, Equatable {
    public var welcomeGreeting: String?
    /// `none`, `dtmf`, `speech` or `any`.
    public var welcomeGreetingInterruptible: String?
    /// Both speech recognition and synthesis, e.g. `en-US`.
    public var language: String?
    public var ttsLanguage: String?
    public var transcriptionLanguage: String?
    public var voice: String?
    /// `Google`, `Amazon`, `ElevenLabs`.
    public var ttsProvider: String?
    /// `Google`, `Deepgram`.
    public var transcriptionProvider: String?
    public var speechModel: String?
    /// `on`, `auto`, `off`.
    public var elevenlabsTextNormalization: String?
    /// `none`, `dtmf`, `speech` or `any`: what may interrupt the agent's speech.
    public var interruptible: String?
    /// `high`, `medium`, `low`.
    public var interruptSensitivity: String?
    /// `none`, `dtmf`, `speech` or `any`: input reported (as prompts) while the agent speaks.
    public var reportInputDuringAgentSpeech: String?
    public var preemptible: Bool?
    public var dtmfDetection: Bool?
    public var partialPrompts: Bool?
    public var ignoreBackchannel: Bool?
    public var profanityFilter: Bool?
    /// Milliseconds, or `auto`.
    public var speechTimeout: String?
    public var eotThreshold: Double?
    /// Comma-separated words or phrases recognition should favour.
    public var hints: String?
    /// Space-separated, e.g. `speaker-events tokens-played`.
    public var events: String?
    public var debug: String?
    public var intelligenceService: String?
    /// `<Language>` elements; replaces the deployment's list when set.
    public var languages: [LanguageOptions]?
    /// `<Parameter>`s, merged by name over the deployment's (they reach the session as `customParameters`).
    public var parameters: [String: String]?
    /// Any other attribute, written as given (a newer ConversationRelay attribute, say).
    public var extra: [String: String]?

    public init(
        welcomeGreeting: String? = nil, welcomeGreetingInterruptible: String? = nil, language: String? = nil, ttsLanguage: String? = nil,
        transcriptionLanguage: String? = nil, voice: String? = nil, ttsProvider: String? = nil, transcriptionProvider: String? = nil,
        speechModel: String? = nil, elevenlabsTextNormalization: String? = nil, interruptible: String? = nil, interruptSensitivity: String? = nil,
        reportInputDuringAgentSpeech: String? = nil, preemptible: Bool? = nil, dtmfDetection: Bool? = nil, partialPrompts: Bool? = nil,
        ignoreBackchannel: Bool? = nil, profanityFilter: Bool? = nil, speechTimeout: String? = nil, eotThreshold: Double? = nil,
        hints: String? = nil, events: String? = nil, debug: String? = nil, intelligenceService: String? = nil,
        languages: [LanguageOptions]? = nil, parameters: [String: String]? = nil, extra: [String: String]? = nil
    ) {
        self.welcomeGreeting = welcomeGreeting
        self.welcomeGreetingInterruptible = welcomeGreetingInterruptible
        self.language = language
        self.ttsLanguage = ttsLanguage
        self.transcriptionLanguage = transcriptionLanguage
        self.voice = voice
        self.ttsProvider = ttsProvider
        self.transcriptionProvider = transcriptionProvider
        self.speechModel = speechModel
        self.elevenlabsTextNormalization = elevenlabsTextNormalization
        self.interruptible = interruptible
        self.interruptSensitivity = interruptSensitivity
        self.reportInputDuringAgentSpeech = reportInputDuringAgentSpeech
        self.preemptible = preemptible
        self.dtmfDetection = dtmfDetection
        self.partialPrompts = partialPrompts
        self.ignoreBackchannel = ignoreBackchannel
        self.profanityFilter = profanityFilter
        self.speechTimeout = speechTimeout
        self.eotThreshold = eotThreshold
        self.hints = hints
        self.events = events
        self.debug = debug
        self.intelligenceService = intelligenceService
        self.languages = languages
        self.parameters = parameters
        self.extra = extra
    }

    /// The attributes these options set, by their TwiML names.
    package var attributes: [(String, String)] {
        func flag(_ value: Bool?) -> String? { value.map { $0 ? "true" : "false" } }
        let fields: [(String, String?)] = [
            ("welcomeGreeting", welcomeGreeting), ("welcomeGreetingInterruptible", welcomeGreetingInterruptible), ("language", language),
            ("ttsLanguage", ttsLanguage), ("transcriptionLanguage", transcriptionLanguage), ("voice", voice), ("ttsProvider", ttsProvider),
            ("transcriptionProvider", transcriptionProvider), ("speechModel", speechModel),
            ("elevenlabsTextNormalization", elevenlabsTextNormalization), ("interruptible", interruptible),
            ("interruptSensitivity", interruptSensitivity), ("reportInputDuringAgentSpeech", reportInputDuringAgentSpeech),
            ("preemptible", flag(preemptible)), ("dtmfDetection", flag(dtmfDetection)), ("partialPrompts", flag(partialPrompts)),
            ("ignoreBackchannel", flag(ignoreBackchannel)), ("profanityFilter", flag(profanityFilter)), ("speechTimeout", speechTimeout),
            ("eotThreshold", eotThreshold.map { $0 == $0.rounded() && abs($0) < 1e15 ? String(Int($0)) : String($0) }), ("hints", hints),
            ("events", events),
            ("debug", debug), ("intelligenceService", intelligenceService),
        ]
        var result = fields.compactMap { name, value in value.map { (name, $0) } }
        for (name, value) in (extra ?? [:]).sorted(by: { $0.key < $1.key }) where name != "url" {
            result.removeAll { $0.0 == name }
            result.append((name, value))
        }
        return result
    }
}

/// One `<Language>` element: every ConversationRelay per-language setting.
public struct LanguageOptions: Sendable, Codable, Equatable {
    /// `es-MX`, `multi`, …
    public var code: String
    public var voice: String?
    public var ttsProvider: String?
    public var transcriptionProvider: String?
    public var speechModel: String?
    /// Comma-separated recognition hints for this language.
    public var hints: String?
    public var asrSmartFormat: Bool?
    /// `on`, `auto`, `off`.
    public var ttsTextNormalization: String?
    public var elevenlabsTextNormalization: String?
    /// Any other per-language attribute, written as given.
    public var extra: [String: String]?

    public init(
        code: String, voice: String? = nil, ttsProvider: String? = nil, transcriptionProvider: String? = nil, speechModel: String? = nil,
        hints: String? = nil, asrSmartFormat: Bool? = nil, ttsTextNormalization: String? = nil, elevenlabsTextNormalization: String? = nil,
        extra: [String: String]? = nil
    ) {
        self.code = code
        self.voice = voice
        self.ttsProvider = ttsProvider
        self.transcriptionProvider = transcriptionProvider
        self.speechModel = speechModel
        self.hints = hints
        self.asrSmartFormat = asrSmartFormat
        self.ttsTextNormalization = ttsTextNormalization
        self.elevenlabsTextNormalization = elevenlabsTextNormalization
        self.extra = extra
    }

    /// The element's attributes, `code` first.
    package var attributes: [(String, String)] {
        let fields: [(String, String?)] = [
            ("code", code), ("voice", voice), ("ttsProvider", ttsProvider), ("transcriptionProvider", transcriptionProvider),
            ("speechModel", speechModel), ("hints", hints), ("asrSmartFormat", asrSmartFormat.map { $0 ? "true" : "false" }),
            ("ttsTextNormalization", ttsTextNormalization), ("elevenlabsTextNormalization", elevenlabsTextNormalization),
        ]
        var result = fields.compactMap { name, value in value.map { (name, $0) } }
        for (name, value) in (extra ?? [:]).sorted(by: { $0.key < $1.key }) where name != "code" {
            result.removeAll { $0.0 == name }
            result.append((name, value))
        }
        return result
    }
}
