import AgentConnectCore
import HTTPTypes
import Hummingbird
import TwilioKit

/// Checks `X-Twilio-Signature` on a Hummingbird request as Twilio computes it: form params sorted,
/// JSON through `bodySHA256`, the URL tried with and without a port.
///
/// With a public domain configured the URL is `https://<domain><path and query>` (`wss://` for a
/// WebSocket) and nothing else: `Host` and `X-Forwarded-*` are client-controlled and never consulted
/// then. Without one (a service behind a proxy that forwards them), the URL is rebuilt from the first
/// `X-Forwarded-Proto`/`X-Forwarded-Host`, else `Host`.
package struct TwilioRequestVerifier: Sendable {
    private let signature: TwilioSignature
    /// Whether a public domain was given, and it normalized once (``PublicDomain/normalized(_:)``,
    /// nil when nothing is left of it: then no URL is signed), not per request.
    private let publicDomainGiven: Bool
    private let publicDomain: String?

    package init(authToken: String, publicDomain: String?) {
        signature = TwilioSignature(authToken: authToken)
        publicDomainGiven = publicDomain != nil
        self.publicDomain = PublicDomain.normalized(publicDomain)
    }

    /// The signature header, or nil when absent.
    package static func signatureHeader(_ request: Request) -> String? {
        request.headers[HTTPField.Name("X-Twilio-Signature")!]
    }

    /// URLs the request may have been signed for: only the configured public domain's when there is one.
    package func candidateURLs(_ request: Request, websocket: Bool = false) -> [String] {
        let pathAndQuery = request.uri.string
        if publicDomainGiven {
            // What `PublicURL.candidates` gives without a host: the one secure URL.
            return publicDomain.map { [(websocket ? "wss://" : "https://") + $0 + pathAndQuery] } ?? []
        }
        return PublicURL.candidates(
            pathAndQuery: pathAndQuery, forwardedProto: request.headers[HTTPField.Name("X-Forwarded-Proto")!],
            forwardedHost: request.headers[HTTPField.Name("X-Forwarded-Host")!], host: request.head.authority,
            publicDomain: publicDomain, websocket: websocket)
    }

    /// Verifies a form-encoded request (params = the form fields).
    package func verifyForm(_ request: Request, params: [(String, String)]) -> Bool {
        guard let header = Self.signatureHeader(request) else { return false }
        return signature.isValid(header, urls: candidateURLs(request), params: params)
    }

    /// Verifies a JSON request through `bodySHA256`, given the body's hex SHA-256
    /// (``TwilioSignature/bodyHash(_:)``, computed once per request).
    package func verifyJSON(_ request: Request, bodyHash: String) -> Bool {
        guard let header = Self.signatureHeader(request) else { return false }
        return signature.isValidJSON(header, urls: candidateURLs(request), bodyHash: bodyHash)
    }

    /// Verifies a WebSocket upgrade as Twilio signs it (the same scheme as a GET webhook): the full
    /// `wss://` URL, query included, and no params — so a per-call token in the query is covered.
    /// The reading this service used before (the URL without its query, the query items as sorted
    /// params) is accepted too: it covers the query just as well.
    package func verifyWebSocket(_ request: Request) -> Bool {
        guard let header = Self.signatureHeader(request) else { return false }
        let urls = candidateURLs(request, websocket: true)
        if signature.isValid(header, urls: urls) { return true }
        guard let query = request.uri.query, !query.isEmpty else { return false }
        var params: [(String, String)] = []
        var seen = Set<String>()
        for (name, value) in FormCoding.decode(query) where seen.insert(name).inserted {
            params.append((name, value))
        }
        return signature.isValid(header, urls: urls.compactMap { $0.split(separator: "?", maxSplits: 1).first.map(String.init) }, params: params)
    }
}
