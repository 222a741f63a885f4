import AgentConnectCore
import Foundation

/// Builds the ConversationRelay TwiML (as TAC does it: docs/architecture.md §6.3) with every value XML-escaped: one
/// builder for inbound (`/twiml`) and outbound (the Calls API's inline `Twiml`) calls.
package struct TwiMLBuilder: Sendable {
    package var actionURL: String?
    package var websocketURL: String
    /// `<ConversationRelay>` attributes, in order (`url` is always ``websocketURL``).
    package var attributes: [(String, String)]
    /// `<Language>` elements, each its attributes in order (`code` first).
    package var languages: [[(String, String)]]
    /// `<Parameter name value>` elements (they reach the socket's `setup` as `customParameters`).
    package var parameters: [(String, String)]

    package init(
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
    package init(settings: ConversationRelaySettings, actionURL: String?, websocketURL: String) {
        self.init(
            actionURL: actionURL, websocketURL: websocketURL, attributes: settings.attributes, languages: settings.languages,
            parameters: settings.parameters)
    }

    /// The TwiML document.
    package func build() -> String {
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
    package static func isAttributeName(_ name: String) -> Bool {
        guard let first = name.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first | 0x20) else { return false }
        return name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        }
    }

    /// XML attribute and text escaping; characters XML 1.0 does not allow at all (C0 controls other
    /// than tab, line feed and carriage return, U+FFFE, U+FFFF) are left out, since Twilio refuses a
    /// document holding one (error 12100) and the call would fail.
    package static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            if character.unicodeScalars.contains(where: {
                ($0.value < 0x20 && $0 != "\t" && $0 != "\n" && $0 != "\r") || $0.value == 0xFFFE || $0.value == 0xFFFF
            }) {
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
