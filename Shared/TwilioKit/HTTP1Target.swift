import NIOCore

/// How a request failed.
package struct HTTP1ClientError: Error, CustomStringConvertible, Sendable {
    package enum Kind: String, Sendable {
        case invalidURL = "invalid URL"
        case connect = "could not connect"
        case timeout = "timed out"
        case closed = "connection closed before the response"
        case responseTooLarge = "response too large"
        case shutDown = "client shut down"
        case failed = "request failed"
    }

    package var kind: Kind
    /// True when the request cannot have reached the server.
    package var neverSent: Bool
    package var detail: String?

    package init(_ kind: Kind, neverSent: Bool, detail: String? = nil) {
        self.kind = kind
        self.neverSent = neverSent
        self.detail = detail
    }

    package var description: String { detail.map { "\(kind.rawValue): \($0)" } ?? kind.rawValue }
}

/// Scheme, host and port: what a pooled connection is for.
struct HTTP1Endpoint: Hashable, Sendable {
    var tls: Bool
    var host: String
    var port: Int

    var isIPAddress: Bool { host.contains(":") || host.allSatisfy { $0 == "." || $0.isNumber } }
}

/// An `http://` or `https://` URL taken apart without Foundation.
struct HTTP1Target: Sendable {
    var endpoint: HTTP1Endpoint
    var pathAndQuery: String
    var hostHeader: String

    /// Read by bytes (the delimiters are ASCII): walking the URL as Characters was 2% of outbound's
    /// CPU, one URL per Twilio request.
    init?(_ url: String) {
        let bytes = url.utf8
        // No spaces or control characters: they would end up raw in the request line.
        guard bytes.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return nil }
        let tls: Bool
        if bytes.starts(with: "https://".utf8) {
            tls = true
        } else if bytes.starts(with: "http://".utf8) {
            tls = false
        } else {
            return nil
        }
        let rest = url[bytes.index(bytes.startIndex, offsetBy: tls ? 8 : 7)...]
        let authorityEnd = rest.utf8.firstIndex(where: { $0 == Self.slash || $0 == Self.question || $0 == Self.hash }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.isEmpty, !authority.utf8.contains(UInt8(ascii: "@")) else { return nil }
        var pathPart = rest[authorityEnd...]
        if let fragment = pathPart.utf8.firstIndex(of: Self.hash) { pathPart = pathPart[..<fragment] }
        var path = String(pathPart)
        if path.isEmpty || path.utf8.first == Self.question { path = "/" + path }
        var host = authority
        var port = tls ? 443 : 80
        var explicitPort = false
        if authority.utf8.first == UInt8(ascii: "[") {
            guard let close = authority.utf8.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            host = authority[authority.utf8.index(after: authority.startIndex)..<close]
            let after = authority[authority.utf8.index(after: close)...]
            if !after.isEmpty {
                guard after.utf8.first == Self.colon, let value = Self.port(after[after.utf8.index(after: after.startIndex)...]) else {
                    return nil
                }
                port = value
                explicitPort = true
            }
        } else if let colon = authority.utf8.lastIndex(of: Self.colon) {
            guard let value = Self.port(authority[authority.utf8.index(after: colon)...]) else { return nil }
            host = authority[..<colon]
            port = value
            explicitPort = true
        }
        guard !host.isEmpty else { return nil }
        endpoint = HTTP1Endpoint(tls: tls, host: String(host), port: port)
        pathAndQuery = path
        let defaultPort = tls ? 443 : 80
        hostHeader =
            explicitPort && port != defaultPort ? String(authority) : (authority.utf8.first == UInt8(ascii: "[") ? "[\(host)]" : String(host))
    }

    private static let slash = UInt8(ascii: "/")
    private static let question = UInt8(ascii: "?")
    private static let hash = UInt8(ascii: "#")
    private static let colon = UInt8(ascii: ":")
}

extension HTTP1Target {
    /// A port written in digits only, 1-65535.
    static func port(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 5, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int(text),
            (1...65535).contains(value)
        else { return nil }
        return value
    }
}
