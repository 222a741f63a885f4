/// Rebuilds the public URL Twilio signed, from the forwarding headers a proxy adds.
package enum PublicURL {
    /// URLs to check a signature against: the one rebuilt from the first `X-Forwarded-Proto` /
    /// `X-Forwarded-Host` value (else `Host`), and, when configured, the one on the public domain.
    ///
    /// - Parameters:
    ///   - pathAndQuery: the request target as received (`/webhook?bodySHA256=…`).
    ///   - websocket: maps `https`→`wss` and `http`→`ws` (ConversationRelay signs the `wss://` URL).
    package static func candidates(
        pathAndQuery: String, forwardedProto: String?, forwardedHost: String?, host: String?, publicDomain: String?,
        websocket: Bool = false
    ) -> [String] {
        var scheme = first(forwardedProto)?.lowercased() ?? "http"
        if websocket { scheme = scheme == "https" || scheme == "wss" ? "wss" : "ws" }
        var result: [String] = []
        if let host = first(forwardedHost) ?? first(host) {
            result.append("\(scheme)://\(host)\(pathAndQuery)")
        }
        if let publicDomain = normalizedDomain(publicDomain) {
            let secure = "\(websocket ? "wss" : "https")://\(publicDomain)\(pathAndQuery)"
            if !result.contains(secure) { result.append(secure) }
        }
        return result
    }

    /// Strips one leading scheme and trailing slashes (`https://x.example.com/` → `x.example.com`).
    package static func normalizedDomain(_ domain: String?) -> String? {
        guard var text = domain?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        for scheme in ["https://", "http://", "wss://", "ws://"] where text.lowercased().hasPrefix(scheme) {
            text = String(text.dropFirst(scheme.count))
            break
        }
        while text.hasSuffix("/") { text.removeLast() }
        return text.isEmpty ? nil : text
    }

    private static func first(_ header: String?) -> String? {
        guard let value = header?.split(separator: ",").first?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        return value
    }
}
