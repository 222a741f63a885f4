import AgentConnectCore

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
        if let publicDomain = PublicDomain.normalized(publicDomain) {
            let secure = "\(websocket ? "wss" : "https")://\(publicDomain)\(pathAndQuery)"
            if !result.contains(secure) { result.append(secure) }
        }
        return result
    }

    /// A forwarding header's first value (`X-Forwarded-Host: a, b` → `a`), by bytes.
    private static func first(_ header: String?) -> String? {
        guard let segment = header?.utf8.split(separator: UInt8(ascii: ","), maxSplits: 1).first else { return nil }
        let value = PublicDomain.trimmed(Substring(segment))
        return value.isEmpty ? nil : String(value)
    }
}
