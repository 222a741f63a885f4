import AgentConnectCore
import Crypto
import Foundation

/// Twilio's `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + sorted key/value pairs)).
///
/// Checks accept the URL with and without an explicit port (as Twilio's validators do) and compare
/// in constant time.
package struct TwilioSignature: Sendable {
    private let key: SymmetricKey

    package init(authToken: String) {
        key = SymmetricKey(data: Data(authToken.utf8))
    }

    /// The signature Twilio would send for `url` and POST `params`.
    package func compute(url: String, params: [(String, String)] = []) -> String {
        var data = Data(url.utf8)
        for (name, value) in params.sorted(by: { $0.0 < $1.0 }) {
            data.append(contentsOf: name.utf8)
            data.append(contentsOf: value.utf8)
        }
        return Data(HMAC<Insecure.SHA1>.authenticationCode(for: data, using: key)).base64EncodedString()
    }

    /// Whether `signature` matches `url` (tried with and without its port) and `params`.
    package func isValid(_ signature: String, url: String, params: [(String, String)] = []) -> Bool {
        let expected = Array(signature.utf8)
        var matched = false
        for candidate in Self.portVariants(of: url) {
            // Evaluate every candidate so timing does not reveal which one matched.
            matched = Self.constantTimeEquals(Array(compute(url: candidate, params: params).utf8), expected) || matched
        }
        return matched
    }

    /// Checks a JSON webhook: the URL carries `bodySHA256=<hex sha256 of the body>`, the signature
    /// covers the URL with no params, and the body hash must match.
    package func isValidJSON(_ signature: String, url: String, body: some Collection<UInt8>) -> Bool {
        isValidJSON(signature, url: url, bodyHash: Self.bodyHash(body))
    }

    /// ``isValidJSON(_:url:body:)`` with the body's ``bodyHash(_:)`` already computed (once per request,
    /// however many URLs are tried).
    package func isValidJSON(_ signature: String, url: String, bodyHash: String) -> Bool {
        guard let expectedHash = Self.queryItems(of: url).first(where: { $0.0 == "bodySHA256" })?.1 else { return false }
        let hashMatches = Self.constantTimeEquals(Array(bodyHash.utf8), Array(expectedHash.lowercased().utf8))
        return isValid(signature, url: url) && hashMatches
    }

    /// The hex SHA-256 of a body, as Twilio puts in `bodySHA256`.
    package static func bodyHash(_ body: some Collection<UInt8>) -> String {
        Hex.lowercase(Array(SHA256.hash(data: Data(body))))
    }

    /// The URL as given, without its port, and with the scheme's default port added.
    static func portVariants(of url: String) -> [String] {
        guard let schemeEnd = url.range(of: "://") else { return [url] }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        let afterScheme = url[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
        let authority = afterScheme[..<authorityEnd]
        let rest = afterScheme[authorityEnd...]
        let prefix = url[..<schemeEnd.upperBound]
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            let host = authority[..<colon]
            return [url, "\(prefix)\(host)\(rest)"]
        }
        let port = (scheme == "https" || scheme == "wss") ? "443" : "80"
        return [url, "\(prefix)\(authority):\(port)\(rest)"]
    }

    /// Query parameters of a URL, percent-decoded, in order.
    package static func queryItems(of url: String) -> [(String, String)] {
        guard let question = url.firstIndex(of: "?") else { return [] }
        return FormCoding.decode(String(url[url.index(after: question)...]))
    }

    static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}
