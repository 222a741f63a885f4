/// Builds the ConversationRelay TwiML (tac-python-spec §4.3) with every value XML-escaped.
struct TwiMLBuilder: Sendable {
    var actionURL: String?
    var websocketURL: String
    var attributes: [(String, String)]
    var languages: [[String: String]]
    var parameters: [(String, String)]

    func build() -> String {
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
    static func escape(_ text: String) -> String {
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
