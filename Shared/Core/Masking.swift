/// Masks an address for logs: keeps the channel prefix and the last 4 characters.
///
/// `+15551234567` → `***4567`, `whatsapp:+15551234567` → `whatsapp:***4567`. Phone numbers and
/// identities never reach logs in full.
package func maskAddress(_ address: String) -> String {
    var prefix = ""
    var rest = Substring(address)
    if let colon = address.firstIndex(of: ":") {
        prefix = String(address[...colon])
        rest = address[address.index(after: colon)...]
    }
    guard rest.count > 4 else { return prefix + "***" }
    return prefix + "***" + rest.suffix(4)
}

/// Masking of free text before it reaches logs or the dead-letter stream.
package enum Masking {
    /// Replaces every phone-number-like run (7 or more digits, optionally after `+`) with `***` and
    /// its last 4 digits: Twilio's error texts quote the numbers they refused.
    package static func maskPhoneNumbers(_ text: String) -> String {
        var out = ""
        var run = ""
        func flush() {
            let digits = run.filter(\.isNumber).count
            if digits >= 7 { out += "***" + run.suffix(4) } else { out += run }
            run = ""
        }
        for character in text {
            if character.isASCII && character.isNumber || (character == "+" && run.isEmpty) {
                run.append(character)
            } else {
                flush()
                out.append(character)
            }
        }
        flush()
        return out
    }
}
