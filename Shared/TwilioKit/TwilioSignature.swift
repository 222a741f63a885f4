import AgentConnectCore
import Crypto
import Foundation

/// Twilio's `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + sorted key/value pairs)).
///
/// Checks accept the URL with and without an explicit port (as Twilio's validators do) and compare
/// in constant time.
package struct TwilioSignature: Sendable {
    /// The HMAC with the auth token's pads already hashed: each check copies it and hashes only the
    /// URL and params (the pads cost two SHA-1 blocks a check otherwise).
    private let keyed: HMAC<Insecure.SHA1>

    package init(authToken: String) {
        keyed = HMAC(key: SymmetricKey(data: Data(authToken.utf8)))
    }

    /// The signature Twilio would send for `url` and POST `params`.
    package func compute(url: String, params: [(String, String)] = []) -> String {
        Data(mac(url: url, signedParams: Self.signedParams(params))).base64EncodedString()
    }

    /// Whether `signature` matches `url` (tried with and without its port) and `params`.
    package func isValid(_ signature: String, url: String, params: [(String, String)] = []) -> Bool {
        isValid(signature, urls: [url], params: params)
    }

    /// Whether `signature` matches any of `urls` (each tried with and without its port) and `params`.
    ///
    /// The signature is decoded once and compared as bytes, in constant time, against every
    /// candidate (timing does not reveal which one matched); the params are sorted and joined once.
    package func isValid(_ signature: String, urls: [String], params: [(String, String)] = []) -> Bool {
        guard let expected = Self.decoded(signature) else { return false }
        let signedParams = Self.signedParams(params)
        var matched = false
        for url in urls {
            for candidate in Self.portVariants(of: url) {
                matched = Self.constantTimeEquals(mac(url: candidate, signedParams: signedParams), expected) || matched
            }
        }
        return matched
    }

    /// Checks a JSON webhook: the URL carries `bodySHA256=<hex sha256 of the body>`, the signature
    /// covers the URL with no params, and the body hash must match.
    package func isValidJSON(_ signature: String, url: String, body: some Collection<UInt8>) -> Bool {
        isValidJSON(signature, urls: [url], bodyHash: Self.bodyHash(body))
    }

    /// ``isValidJSON(_:url:body:)`` with the body's ``bodyHash(_:)`` already computed (once per request,
    /// however many URLs are tried): true when one of `urls` carries that hash and is signed.
    package func isValidJSON(_ signature: String, urls: [String], bodyHash: String) -> Bool {
        let hash = Array(bodyHash.utf8)
        let signed = urls.filter { url in
            guard let expectedHash = Self.queryItems(of: url).first(where: { $0.0 == "bodySHA256" })?.1 else { return false }
            return Self.constantTimeEquals(hash, Array(expectedHash.lowercased().utf8))
        }
        return !signed.isEmpty && isValid(signature, urls: signed)
    }

    /// The HMAC-SHA1 of `url` followed by the joined params.
    private func mac(url: String, signedParams: [UInt8]) -> [UInt8] {
        var hmac = keyed
        var url = url
        url.withUTF8 { hmac.update(data: UnsafeRawBufferPointer($0)) }
        hmac.update(data: signedParams)
        return Array(hmac.finalize())
    }

    /// The params as Twilio signs them: sorted by name, each name followed by its value.
    private static func signedParams(_ params: [(String, String)]) -> [UInt8] {
        var bytes: [UInt8] = []
        for (name, value) in params.sorted(by: { $0.0 < $1.0 }) {
            bytes.append(contentsOf: name.utf8)
            bytes.append(contentsOf: value.utf8)
        }
        return bytes
    }

    /// The signature's bytes, when it is base64 as Twilio writes it (canonical: a string that decodes
    /// to the same bytes but is written otherwise matches nothing, as when strings were compared).
    private static func decoded(_ signature: String) -> [UInt8]? {
        guard let data = Data(base64Encoded: signature), data.count == Insecure.SHA1.byteCount,
            data.base64EncodedString() == signature
        else { return nil }
        return Array(data)
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
