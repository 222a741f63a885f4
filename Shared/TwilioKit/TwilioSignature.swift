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
        String(decoding: encodedMAC(Array(url.utf8), signedParams: Self.signedParams(params)), as: UTF8.self)
    }

    /// Whether `signature` matches `url` (tried with and without its port) and `params`.
    package func isValid(_ signature: String, url: String, params: [(String, String)] = []) -> Bool {
        isValid(signature, urls: [url], params: params)
    }

    /// Whether `signature` matches any of `urls` (each tried with and without its port) and `params`.
    ///
    /// Only the signature as Twilio writes it matches: the base64 of each candidate's HMAC is
    /// compared with it byte for byte, in constant time, against every candidate (timing does not
    /// reveal which one matched; a string that decodes to the same bytes but is written otherwise
    /// matches nothing). The params are sorted and joined once. Works on the URLs' bytes: no
    /// Foundation on the path every webhook takes.
    package func isValid(_ signature: String, urls: [String], params: [(String, String)] = []) -> Bool {
        isValid(Array(signature.utf8), urls: urls.map { Array($0.utf8) }, signedParams: Self.signedParams(params))
    }

    private func isValid(_ given: [UInt8], urls: [[UInt8]], signedParams: [UInt8]) -> Bool {
        guard given.count == Self.encodedCount else { return false }
        var matched = false
        for url in urls {
            for candidate in Self.portVariants(of: url) {
                matched = Self.constantTimeEquals(encodedMAC(candidate, signedParams: signedParams), given) || matched
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
        var signed: [[UInt8]] = []
        for url in urls {
            let bytes = Array(url.utf8)
            if let expected = Self.bodySHA256(of: bytes), Self.constantTimeEquals(hash, expected) { signed.append(bytes) }
        }
        return !signed.isEmpty && isValid(Array(signature.utf8), urls: signed, signedParams: [])
    }

    /// The base64 of the HMAC-SHA1 of `url` followed by the joined params: the bytes of the header.
    private func encodedMAC(_ url: [UInt8], signedParams: [UInt8]) -> [UInt8] {
        var hmac = keyed
        hmac.update(data: url)
        hmac.update(data: signedParams)
        return hmac.finalize().withUnsafeBytes { Self.base64($0) }
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

    /// The length of a signature header: base64, padded, of the 20 bytes of an HMAC-SHA1.
    private static let encodedCount = (Insecure.SHA1.byteCount + 2) / 3 * 4

    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Standard base64 with `=` padding, as Twilio writes the header.
    package static func base64(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let remaining = bytes.count - index
            let b0 = UInt32(bytes[index])
            let b1 = remaining > 1 ? UInt32(bytes[index + 1]) : 0
            let b2 = remaining > 2 ? UInt32(bytes[index + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(group >> 18 & 0x3f)])
            out.append(alphabet[Int(group >> 12 & 0x3f)])
            out.append(remaining > 1 ? alphabet[Int(group >> 6 & 0x3f)] : UInt8(ascii: "="))
            out.append(remaining > 2 ? alphabet[Int(group & 0x3f)] : UInt8(ascii: "="))
            index += 3
        }
        return out
    }

    /// The hex SHA-256 of a body, as Twilio puts in `bodySHA256`.
    package static func bodyHash(_ body: some Collection<UInt8>) -> String {
        let digest =
            body.withContiguousStorageIfAvailable { SHA256.hash(data: UnsafeRawBufferPointer($0)) } ?? SHA256.hash(data: Array(body))
        return digest.withUnsafeBytes { Hex.lowercase($0) }
    }

    /// The URL as given, without its port, and with the scheme's default port added.
    static func portVariants(of url: String) -> [String] {
        portVariants(of: Array(url.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// ``portVariants(of:)-(String)`` on the URL's bytes.
    static func portVariants(of url: [UInt8]) -> [[UInt8]] {
        let slash = UInt8(ascii: "/")
        let question = UInt8(ascii: "?")
        let colon = UInt8(ascii: ":")
        guard let schemeEnd = firstRange(of: Self.schemeSeparator, in: url) else { return [url] }
        let authorityStart = schemeEnd + Self.schemeSeparator.count
        let authorityEnd = url[authorityStart...].firstIndex(where: { $0 == slash || $0 == question }) ?? url.endIndex
        if let portColon = url[authorityStart..<authorityEnd].lastIndex(of: colon), url[authorityEnd - 1] != UInt8(ascii: "]") {
            return [url, Array(url[..<portColon] + url[authorityEnd...])]
        }
        let scheme = url[..<schemeEnd].map(ASCII.lowercased)
        let port: [UInt8] = scheme.elementsEqual("https".utf8) || scheme.elementsEqual("wss".utf8) ? Array(":443".utf8) : Array(":80".utf8)
        return [url, Array(url[..<authorityEnd] + port + url[authorityEnd...])]
    }

    private static let schemeSeparator: [UInt8] = Array("://".utf8)

    /// Where `needle` first starts in `haystack`.
    private static func firstRange(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }

    /// The first `bodySHA256` query parameter's value, lowercased (as ``queryItems(of:)`` reads
    /// it: a query with percent-escapes or `+` is decoded as a form is; one without, as it stands).
    static func bodySHA256(of url: [UInt8]) -> [UInt8]? {
        guard let question = url.firstIndex(of: UInt8(ascii: "?")) else { return nil }
        let query = url[(question + 1)...]
        if query.contains(UInt8(ascii: "%")) || query.contains(UInt8(ascii: "+")) {
            let items = queryItems(of: String(decoding: url, as: UTF8.self))
            return items.first(where: { $0.0 == "bodySHA256" }).map { Array($0.1.lowercased().utf8) }
        }
        for item in query.split(separator: UInt8(ascii: "&")) {
            let equals = item.firstIndex(of: UInt8(ascii: "="))
            guard item[..<(equals ?? item.endIndex)].elementsEqual(Self.bodySHA256Name) else { continue }
            return equals.map { item[($0 + 1)...].map(ASCII.lowercased) } ?? []
        }
        return nil
    }

    private static let bodySHA256Name: [UInt8] = Array("bodySHA256".utf8)

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
