/// A public host name as configured (`TWILIO_WEBHOOK_PUBLIC_DOMAIN`, `TWILIO_VOICE_PUBLIC_DOMAIN`)
/// and header values, read by bytes: they are ASCII, and Foundation's `trimmingCharacters` was 2% of
/// messaging-ingress's CPU, on every webhook.
package enum PublicDomain {
    /// Without surrounding spaces, one leading scheme and trailing slashes
    /// (`https://x.example.com/` → `x.example.com`); nil when nothing is left.
    package static func normalized(_ domain: String?) -> String? {
        guard let domain else { return nil }
        var text = trimmed(domain[...])
        for scheme in ["https://", "http://", "wss://", "ws://"] where ASCII.hasPrefix(text.utf8, lowercased: scheme.utf8) {
            text = text[text.utf8.index(text.startIndex, offsetBy: scheme.utf8.count)...]
            break
        }
        while text.utf8.last == UInt8(ascii: "/") { text = text[..<text.utf8.index(before: text.endIndex)] }
        return text.isEmpty ? nil : String(text)
    }

    /// `text` without leading and trailing spaces and tabs.
    package static func trimmed(_ text: Substring) -> Substring {
        let bytes = text.utf8
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, isSpace(bytes[start]) { start = bytes.index(after: start) }
        while end > start, isSpace(bytes[bytes.index(before: end)]) { end = bytes.index(before: end) }
        return text[start..<end]
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

}
