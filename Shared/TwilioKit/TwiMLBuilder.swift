/// Builds the ConversationRelay TwiML (tac-python-spec §4.3) with every value XML-escaped.
public struct TwiMLBuilder: Sendable {
    public var actionURL: String?
    public var websocketURL: String
    public var attributes: [(String, String)]
    public var languages: [[String: String]]
    public var parameters: [(String, String)]

    public init(
        actionURL: String?, websocketURL: String, attributes: [(String, String)], languages: [[String: String]] = [],
        parameters: [(String, String)] = []
    ) {
        self.actionURL = actionURL
        self.websocketURL = websocketURL
        self.attributes = attributes
        self.languages = languages
        self.parameters = parameters
    }

    /// The TwiML document.
    public func build() -> String {
        var xml = #"<?xml version="1.0" encoding="UTF-8"?><Response><Connect"#
        if let actionURL { xml += #" action="\#(Self.escape(actionURL))""# }
        xml += #"><ConversationRelay url="\#(Self.escape(websocketURL))""#
        for (name, value) in attributes where name != "url" {
            xml += #" \#(name)="\#(Self.escape(value))""#
        }
        xml += ">"
        for language in languages {
            xml += "<Language"
            for key in ["code", "voice", "ttsProvider", "transcriptionProvider", "speechModel"] {
                if let value = language[key] { xml += #" \#(key)="\#(Self.escape(value))""# }
            }
            xml += "/>"
        }
        for (name, value) in parameters {
            xml += #"<Parameter name="\#(Self.escape(name))" value="\#(Self.escape(value))"/>"#
        }
        xml += "</ConversationRelay></Connect></Response>"
        return xml
    }

    /// XML attribute escaping.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
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
