import AgentConnectCore
import Foundation

/// Twilio's messaging rules that both the services and twilio-sim apply, each from Twilio's docs.
package enum MessageRules {
    /// A message body may hold at most 1,600 characters on every Programmable Messaging channel (SMS,
    /// MMS, WhatsApp, …); a longer `Body` is refused with error 21617.
    package static let maxBodyCharacters = 1600
    /// At most 10 media files per message (Messages API `MediaUrl`).
    package static let maxMediaPerMessage = 10
    /// WhatsApp's customer-service window: free-form messages only within 24 hours of the customer's
    /// last message; outside it only an approved template (`ContentSid`) goes out (error 63016).
    package static let whatsAppWindow: TimeInterval = 24 * 3600

    /// Twilio's error codes the services and the sim use.
    package enum ErrorCode {
        /// Free-form message outside the allowed window (WhatsApp): use a template.
        package static let outsideWindow = 63016
        /// The recipient replied STOP: "Attempt to send to unsubscribed recipient".
        package static let unsubscribed = 21610
        /// The concatenated message body exceeds the 1600 character limit.
        package static let bodyTooLong = 21617
    }

    /// What a single-word customer message does to their subscription (Twilio's default opt-out
    /// keywords; a keyword with other words around it is an ordinary message).
    package enum OptKeyword: String, Sendable {
        case optOut = "stop"
        case optIn = "start"
    }

    /// The default opt-out keywords.
    package static let optOutKeywords: Set<String> = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]
    /// The default opt-in keywords.
    package static let optInKeywords: Set<String> = ["START", "YES", "UNSTOP"]
    private static let longestKeyword = optOutKeywords.union(optInKeywords).map(\.utf8.count).max() ?? 0
    private static let keywordTrimmed = CharacterSet.whitespacesAndNewlines.union(.punctuationCharacters)

    /// The opt-out/opt-in keyword `text` is, if it is one.
    package static func optKeyword(_ text: String) -> OptKeyword? {
        // Every message comes through here. The keywords are ASCII letters, and trimming never removes
        // a letter or a digit: a text with a digit, or with more ASCII letters than the longest keyword
        // (or none), is no keyword. Decided by bytes, without Foundation (its trimming was 3% of
        // messaging-ingress's CPU).
        var letters = 0
        for byte in text.utf8 {
            if (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") {
                letters += 1
                if letters > longestKeyword { return nil }
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                return nil
            }
        }
        guard letters > 0 else { return nil }
        let word = text.trimmingCharacters(in: keywordTrimmed).uppercased()
        if optOutKeywords.contains(word) { return .optOut }
        if optInKeywords.contains(word) { return .optIn }
        return nil
    }

    /// Whether a body is within Twilio's limit (counted in UTF-16 code units, the stricter count).
    package static func fits(_ body: String) -> Bool {
        body.utf16.count <= maxBodyCharacters
    }

    /// The longest body a channel carries in one message: 1,600 characters everywhere but Chat,
    /// which has no such limit here (nil).
    package static func bodyLimit(for channel: ChannelKind) -> Int? {
        channel == .chat ? nil : maxBodyCharacters
    }
}
