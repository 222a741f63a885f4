import AgentConnectCore
import Foundation

/// Builds the ConversationRelay TwiML (as TAC does it: docs/architecture.md §6.3) with every value XML-escaped: one
/// builder for inbound (`/twiml`) and outbound (the Calls API's inline `Twiml`) calls.
public struct TwiMLBuilder: Sendable {
    public var actionURL: String?
    public var websocketURL: String
    /// `<ConversationRelay>` attributes, in order (`url` is always ``websocketURL``).
    public var attributes: [(String, String)]
    /// `<Language>` elements, each its attributes in order (`code` first).
    public var languages: [[(String, String)]]
    /// `<Parameter name value>` elements (they reach the socket's `setup` as `customParameters`).
    public var parameters: [(String, String)]

    public init(
        actionURL: String?, websocketURL: String, attributes: [(String, String)], languages: [[(String, String)]] = [],
        parameters: [(String, String)] = []
    ) {
        self.actionURL = actionURL
        self.websocketURL = websocketURL
        self.attributes = attributes
        self.languages = languages
        self.parameters = parameters
    }

    /// The TwiML for `settings` (the environment's `CONVERSATION_RELAY_*`, with any per-call options applied).
    public init(settings: ConversationRelaySettings, actionURL: String?, websocketURL: String) {
        self.init(
            actionURL: actionURL, websocketURL: websocketURL, attributes: settings.attributes, languages: settings.languages,
            parameters: settings.parameters)
    }

    /// The TwiML document.
    public func build() -> String {
        var xml = #"<?xml version="1.0" encoding="UTF-8"?><Response><Connect"#
        if let actionURL { xml += #" action="\#(Self.escape(actionURL))""# }
        xml += #"><ConversationRelay url="\#(Self.escape(websocketURL))""#
        for (name, value) in attributes where name != "url" && Self.isAttributeName(name) {
            xml += #" \#(name)="\#(Self.escape(value))""#
        }
        xml += ">"
        for language in languages {
            xml += "<Language"
            for (key, value) in language where Self.isAttributeName(key) { xml += #" \#(key)="\#(Self.escape(value))""# }
            xml += "/>"
        }
        for (name, value) in parameters {
            xml += #"<Parameter name="\#(Self.escape(name))" value="\#(Self.escape(value))"/>"#
        }
        xml += "</ConversationRelay></Connect></Response>"
        return xml
    }

    /// Whether `name` can be written as an attribute name as it is: an ASCII letter, then letters,
    /// digits, `-`, `_` or `.`. Names come from options (`extra`) an API caller or a per-call hook
    /// chooses and are not escapable, so any other name is left out rather than let it write markup
    /// (`x="1"/><Redirect>…`) into the call's TwiML.
    public static func isAttributeName(_ name: String) -> Bool {
        guard let first = name.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first | 0x20) else { return false }
        return name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
    }

    /// XML attribute and text escaping; characters XML 1.0 does not allow at all (C0 controls other
    /// than tab, line feed and carriage return, U+FFFE, U+FFFF) are left out, since Twilio refuses a
    /// document holding one (error 12100) and the call would fail.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            if character.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\t" && $0 != "\n" && $0 != "\r") || $0.value == 0xFFFE || $0.value == 0xFFFF }) {
                continue
            }
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }
}

/// The `<ConversationRelay>` settings of a deployment: every `CONVERSATION_RELAY_<ATTRIBUTE>`
/// variable becomes the attribute `<attribute>` (snake case → lowerCamelCase), verbatim, so new
/// ConversationRelay attributes need no code; `CONVERSATION_RELAY_LANGUAGES` (a JSON array of
/// objects, every key kept: `code`, `voice`, `ttsProvider`, `transcriptionProvider`, `speechModel`,
/// `hints`, `asrSmartFormat`, `ttsTextNormalization`, …) becomes `<Language>` elements and
/// `CONVERSATION_RELAY_PARAMETERS` (a JSON object) `<Parameter>` elements. The greeting defaults to
/// TAC's. voice-relay (inbound) and outbound (placed calls) read the same variables.
public struct ConversationRelaySettings: Sendable {
    public var attributes: [(String, String)]
    public var languages: [[(String, String)]]
    public var parameters: [(String, String)]

    /// TAC's default greeting.
    public static let defaultGreeting = "Hello! How can I assist you today?"

    public init(attributes: [(String, String)] = [("welcomeGreeting", defaultGreeting)], languages: [[(String, String)]] = [], parameters: [(String, String)] = []) {
        self.attributes = attributes
        self.languages = languages
        self.parameters = parameters
    }

    public init(environment: Environment) throws {
        var attributes: [(String, String)] = [("welcomeGreeting", Self.defaultGreeting)]
        for (name, value) in environment.values.sorted(by: { $0.key < $1.key }) where name.hasPrefix("CONVERSATION_RELAY_") {
            let key = Self.camelCase(String(name.dropFirst("CONVERSATION_RELAY_".count)))
            guard key != "languages", key != "parameters", !key.isEmpty, !value.isEmpty else { continue }
            attributes.removeAll { $0.0 == key }
            attributes.append((key, value))
        }
        var languages: [[(String, String)]] = []
        if let text = environment.string("CONVERSATION_RELAY_LANGUAGES") {
            guard let parsed = try? JSONDecoder().decode([[String: JSONValue]].self, from: Data(text.utf8)),
                let converted = try? parsed.map(Self.languageAttributes), converted.allSatisfy({ $0.first?.0 == "code" })
            else {
                throw ConfigurationError(
                    variable: "CONVERSATION_RELAY_LANGUAGES",
                    reason: #"must be a JSON array of objects with a code, like [{"code":"es-ES","voice":"…","hints":"…","asrSmartFormat":true}]"#)
            }
            languages = converted
        }
        var parameters: [(String, String)] = []
        if let text = environment.string("CONVERSATION_RELAY_PARAMETERS") {
            guard let parsed = try? JSONDecoder().decode([String: String].self, from: Data(text.utf8)) else {
                throw ConfigurationError(variable: "CONVERSATION_RELAY_PARAMETERS", reason: "must be a JSON object of strings")
            }
            parameters = parsed.sorted { $0.key < $1.key }
        }
        self.init(attributes: attributes, languages: languages, parameters: parameters)
    }

    /// The value of an attribute, when set.
    public func attribute(_ name: String) -> String? {
        attributes.last { $0.0 == name }?.1
    }

    /// Sets (or replaces) an attribute.
    public mutating func set(_ name: String, _ value: String?) {
        guard let value else { return }
        attributes.removeAll { $0.0 == name }
        attributes.append((name, value))
    }

    /// Sets (or replaces) a `<Parameter>`.
    public mutating func setParameter(_ name: String, _ value: String) {
        parameters.removeAll { $0.0 == name }
        parameters.append((name, value))
    }

    /// These settings with a call's own options on top: each field the options set replaces the
    /// environment's; `languages` and `parameters`, when given, replace the lists (parameters are merged by name).
    public func applying(_ options: ConversationRelayOptions) -> ConversationRelaySettings {
        var result = self
        for (name, value) in options.attributes { result.set(name, value) }
        if let languages = options.languages { result.languages = languages.map(\.attributes) }
        for (name, value) in (options.parameters ?? [:]).sorted(by: { $0.key < $1.key }) { result.setParameter(name, value) }
        return result
    }

    /// `WELCOME_GREETING` → `welcomeGreeting`.
    public static func camelCase(_ snake: String) -> String {
        let parts = snake.lowercased().split(separator: "_")
        guard let first = parts.first else { return "" }
        return String(first) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    static func languageAttributes(_ object: [String: JSONValue]) throws -> [(String, String)] {
        var result: [(String, String)] = []
        for (key, value) in object.sorted(by: { ($0.key == "code" ? "" : $0.key) < ($1.key == "code" ? "" : $1.key) }) {
            guard let text = Self.text(value) else { throw ConfigurationError(variable: "CONVERSATION_RELAY_LANGUAGES", reason: "\(key) must be a string, number or boolean") }
            result.append((key, text))
        }
        return result
    }

    static func text(_ value: JSONValue) -> String? {
        switch value {
        case .string(let text): return text
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number): return number == number.rounded() && abs(number) < 1e15 ? String(Int(number)) : String(number)
        default: return nil
        }
    }
}

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
    public var attributes: [(String, String)] {
        func flag(_ value: Bool?) -> String? { value.map { $0 ? "true" : "false" } }
        let fields: [(String, String?)] = [
            ("welcomeGreeting", welcomeGreeting), ("welcomeGreetingInterruptible", welcomeGreetingInterruptible), ("language", language),
            ("ttsLanguage", ttsLanguage), ("transcriptionLanguage", transcriptionLanguage), ("voice", voice), ("ttsProvider", ttsProvider),
            ("transcriptionProvider", transcriptionProvider), ("speechModel", speechModel),
            ("elevenlabsTextNormalization", elevenlabsTextNormalization), ("interruptible", interruptible),
            ("interruptSensitivity", interruptSensitivity), ("reportInputDuringAgentSpeech", reportInputDuringAgentSpeech),
            ("preemptible", flag(preemptible)), ("dtmfDetection", flag(dtmfDetection)), ("partialPrompts", flag(partialPrompts)),
            ("ignoreBackchannel", flag(ignoreBackchannel)), ("profanityFilter", flag(profanityFilter)), ("speechTimeout", speechTimeout),
            ("eotThreshold", eotThreshold.flatMap { ConversationRelaySettings.text(.number($0)) }), ("hints", hints), ("events", events),
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
    public var attributes: [(String, String)] {
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

/// Where a voice handoff goes: the TwiML the `<Connect action>` callback answers once the agent
/// ended the session with `handoffData` (ConversationRelay then continues the call with it).
public enum HandoffDestination: Sendable, Equatable {
    /// A Studio flow (`FW…`), entered the way Twilio documents for a call: `<Redirect>` to the flow's
    /// webhook URL, the handoff data and reason in its query (Studio reads query parameters into the flow).
    case studio(accountSid: String, flowSid: String)
    /// A phone number or a SIP address (`sip:…`): `<Dial>`. A SIP address carries the handoff data in
    /// `X-` headers; a phone number carries none (it stays on the conversation).
    case dial(String)
    /// A TaskRouter workflow (`WW…`): `<Enqueue workflowSid>` with the handoff data in the `<Task>` attributes.
    case workflow(String)
    /// A named queue: `<Enqueue>name</Enqueue>`.
    case queue(String)

    /// `VOICE_HANDOFF_TO`: `studio`, `+1…`, `sip:…`, `workflow:WW…` or `queue:<name>`; `studio` needs
    /// the account and flow SIDs. Nil (the call ends after the handoff) when unset and there is no flow.
    public static func parse(_ value: String?, accountSid: String?, studioFlowSid: String?) throws -> HandoffDestination? {
        let value = value?.trimmingCharacters(in: .whitespaces) ?? ""
        if value.isEmpty || value == "studio" {
            guard let studioFlowSid, let accountSid else {
                if value.isEmpty { return nil }
                throw ConfigurationError(variable: "VOICE_HANDOFF_TO", reason: "studio needs TWILIO_STUDIO_HANDOFF_FLOW_SID and TWILIO_ACCOUNT_SID")
            }
            return .studio(accountSid: accountSid, flowSid: studioFlowSid)
        }
        if value.hasPrefix("workflow:"), value.count > 9 { return .workflow(String(value.dropFirst(9))) }
        if value.hasPrefix("queue:"), value.count > 6 { return .queue(String(value.dropFirst(6))) }
        if value.hasPrefix("sip:") || (value.hasPrefix("+") && value.dropFirst().allSatisfy(\.isNumber) && value.count > 4) { return .dial(value) }
        throw ConfigurationError(variable: "VOICE_HANDOFF_TO", reason: "must be studio, +<number>, sip:<address>, workflow:WW… or queue:<name>")
    }

    /// The TwiML that hands the call over. `handoffData` is the `end` frame's string (JSON by TAC's
    /// convention: `{conversationId, profileId, attributes:{reason,…}}`), `reason` its `attributes.reason`.
    public func twiml(handoffData: String, reason: String?, conversationId: String?) -> String {
        var body: String
        switch self {
        case .studio(let accountSid, let flowSid):
            var query: [(String, String)] = [("HandoffData", handoffData)]
            if let reason { query.append(("HandoffReason", reason)) }
            if let conversationId { query.append(("ConversationId", conversationId)) }
            let url = "https://webhooks.twilio.com/v1/Accounts/\(accountSid)/Flows/\(flowSid)?" + FormCoding.encode(query)
            body = #"<Redirect method="POST">\#(TwiMLBuilder.escape(url))</Redirect>"#
        case .dial(let target):
            if target.hasPrefix("sip:") {
                var headers: [(String, String)] = []
                if let reason { headers.append(("X-Handoff-Reason", String(reason.prefix(200)))) }
                if let conversationId { headers.append(("X-Conversation-Id", conversationId)) }
                let uri = headers.isEmpty ? target : target + (target.contains("?") ? "&" : "?") + FormCoding.encode(headers)
                body = "<Dial><Sip>\(TwiMLBuilder.escape(uri))</Sip></Dial>"
            } else {
                body = "<Dial><Number>\(TwiMLBuilder.escape(target))</Number></Dial>"
            }
        case .workflow(let workflowSid):
            var attributes: [String: JSONValue] = ["handoffData": .string(handoffData)]
            if let parsed = try? JSONDecoder().decode(JSONValue.self, from: Data(handoffData.utf8)), case .object = parsed { attributes["handoffData"] = parsed }
            attributes["reason"] = JSONValue(reason)
            attributes["conversationId"] = JSONValue(conversationId)
            body = #"<Enqueue workflowSid="\#(TwiMLBuilder.escape(workflowSid))"><Task>\#(TwiMLBuilder.escape(JSONValue.object(attributes).compactJSON))</Task></Enqueue>"#
        case .queue(let name):
            body = "<Enqueue>\(TwiMLBuilder.escape(name))</Enqueue>"
        }
        return #"<?xml version="1.0" encoding="UTF-8"?><Response>\#(body)</Response>"#
    }
}
