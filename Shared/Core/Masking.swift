/// Masks an address for logs: keeps the channel prefix and the last 4 characters.
///
/// `+15551234567` → `***4567`, `whatsapp:+15551234567` → `whatsapp:***4567`. Phone numbers and
/// identities never reach logs in full (STYLE.md).
public func maskAddress(_ address: String) -> String {
    var prefix = ""
    var rest = Substring(address)
    if let colon = address.firstIndex(of: ":") {
        prefix = String(address[...colon])
        rest = address[address.index(after: colon)...]
    }
    guard rest.count > 4 else { return prefix + "***" }
    return prefix + "***" + rest.suffix(4)
}
