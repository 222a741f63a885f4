import HTTPTypes
import Hummingbird
import TwilioKit

/// Checks `X-Twilio-Signature` on a Hummingbird request as Twilio computes it: the public URL
/// rebuilt from the first `X-Forwarded-Proto`/`X-Forwarded-Host` (else `Host`, else the configured
/// public domain), tried with and without a port; form params sorted; JSON through `bodySHA256`.
public struct TwilioRequestVerifier: Sendable {
    private let signature: TwilioSignature
    private let publicDomain: String?

    public init(authToken: String, publicDomain: String?) {
        signature = TwilioSignature(authToken: authToken)
        self.publicDomain = publicDomain
    }

    /// The signature header, or nil when absent.
    public static func signatureHeader(_ request: Request) -> String? {
        request.headers[HTTPField.Name("X-Twilio-Signature")!]
    }

    /// URLs the request may have been signed for.
    public func candidateURLs(_ request: Request, websocket: Bool = false) -> [String] {
        let target = request.uri.string
        let pathAndQuery = websocket ? request.uri.path : target
        return PublicURL.candidates(
            pathAndQuery: pathAndQuery, forwardedProto: request.headers[HTTPField.Name("X-Forwarded-Proto")!],
            forwardedHost: request.headers[HTTPField.Name("X-Forwarded-Host")!], host: request.head.authority,
            publicDomain: publicDomain, websocket: websocket)
    }

    /// Verifies a form-encoded request (params = the form fields).
    public func verifyForm(_ request: Request, params: [(String, String)]) -> Bool {
        guard let header = Self.signatureHeader(request) else { return false }
        return candidateURLs(request).contains { signature.isValid(header, url: $0, params: params) }
    }

    /// Verifies a JSON request through `bodySHA256`.
    public func verifyJSON(_ request: Request, body: [UInt8]) -> Bool {
        guard let header = Self.signatureHeader(request) else { return false }
        return candidateURLs(request).contains { signature.isValidJSON(header, url: $0, body: body) }
    }

    /// Verifies a WebSocket upgrade: the `wss://` URL without its query, the query items as params.
    public func verifyWebSocket(_ request: Request) -> Bool {
        guard let header = Self.signatureHeader(request) else { return false }
        var params: [(String, String)] = []
        var seen = Set<String>()
        for (name, value) in FormCoding.decode(request.uri.query ?? "") where seen.insert(name).inserted {
            params.append((name, value))
        }
        return candidateURLs(request, websocket: true).contains { signature.isValid(header, url: $0, params: params) }
    }
}
