import AgentConnectCore
import Foundation

/// The `<ConversationRelay>` settings of a deployment: every `CONVERSATION_RELAY_<ATTRIBUTE>`
/// variable becomes the attribute `<attribute>` (snake case → lowerCamelCase), verbatim, so new
/// ConversationRelay attributes need no code; `CONVERSATION_RELAY_LANGUAGES` (a JSON array of
/// objects, every key kept: `code`, `voice`, `ttsProvider`, `transcriptionProvider`, `speechModel`,
/// `hints`, `asrSmartFormat`, `ttsTextNormalization`, …) becomes `<Language>` elements and
/// `CONVERSATION_RELAY_PARAMETERS` (a JSON object) `<Parameter>` elements. The greeting defaults to
/// TAC's. voice-relay (inbound) and outbound (placed calls) read the same variables.
package struct ConversationRelaySettings: Sendable {
    package var attributes: [(String, String)]
    package var languages: [[(String, String)]]
    package var parameters: [(String, String)]

    /// TAC's default greeting.
    package static let defaultGreeting = "Hello! How can I assist you today?"

    package init(
        attributes: [(String, String)] = [("welcomeGreeting", defaultGreeting)], languages: [[(String, String)]] = [],
        parameters: [(String, String)] = []
    ) {
        self.attributes = attributes
        self.languages = languages
        self.parameters = parameters
    }

    package init(environment: Environment) throws {
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
    package func attribute(_ name: String) -> String? {
        attributes.last { $0.0 == name }?.1
    }

    /// Sets (or replaces) an attribute.
    package mutating func set(_ name: String, _ value: String?) {
        guard let value else { return }
        attributes.removeAll { $0.0 == name }
        attributes.append((name, value))
    }

    /// Sets (or replaces) a `<Parameter>`.
    package mutating func setParameter(_ name: String, _ value: String) {
        parameters.removeAll { $0.0 == name }
        parameters.append((name, value))
    }

    /// These settings with a call's own options on top: each field the options set replaces the
    /// environment's; `languages` and `parameters`, when given, replace the lists (parameters are merged by name).
    package func applying(_ options: ConversationRelayOptions) -> ConversationRelaySettings {
        var result = self
        for (name, value) in options.attributes { result.set(name, value) }
        if let languages = options.languages { result.languages = languages.map(\.attributes) }
        for (name, value) in (options.parameters ?? [:]).sorted(by: { $0.key < $1.key }) { result.setParameter(name, value) }
        return result
    }

    /// `WELCOME_GREETING` → `welcomeGreeting`.
    package static func camelCase(_ snake: String) -> String {
        let parts = snake.lowercased().split(separator: "_")
        guard let first = parts.first else { return "" }
        return String(first) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    static func languageAttributes(_ object: [String: JSONValue]) throws -> [(String, String)] {
        var result: [(String, String)] = []
        for (key, value) in object.sorted(by: { ($0.key == "code" ? "" : $0.key) < ($1.key == "code" ? "" : $1.key) }) {
            guard let text = Self.text(value) else {
                throw ConfigurationError(variable: "CONVERSATION_RELAY_LANGUAGES", reason: "\(key) must be a string, number or boolean")
            }
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
