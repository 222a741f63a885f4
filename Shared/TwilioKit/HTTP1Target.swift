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

    init?(_ url: String) {
        // No spaces or control characters: they would end up raw in the request line.
        guard url.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return nil }
        let tls: Bool
        let rest: Substring
        if url.hasPrefix("https://") {
            tls = true
            rest = url.dropFirst(8)
        } else if url.hasPrefix("http://") {
            tls = false
            rest = url.dropFirst(7)
        } else {
            return nil
        }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var path = String(rest[authorityEnd...])
        if let fragment = path.firstIndex(of: "#") { path = String(path[..<fragment]) }
        if path.isEmpty || path.first == "?" { path = "/" + path }
        var host = authority
        var port = tls ? 443 : 80
        var explicitPort = false
        if authority.first == "[" {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":", let value = Self.port(after.dropFirst()) else { return nil }
                port = value
                explicitPort = true
            }
        } else if let colon = authority.lastIndex(of: ":") {
            guard let value = Self.port(authority[authority.index(after: colon)...]) else { return nil }
            host = authority[..<colon]
            port = value
            explicitPort = true
        }
        guard !host.isEmpty else { return nil }
        endpoint = HTTP1Endpoint(tls: tls, host: String(host), port: port)
        pathAndQuery = path
        let defaultPort = tls ? 443 : 80
        hostHeader = explicitPort && port != defaultPort ? "\(authority)" : (authority.first == "[" ? "[\(host)]" : String(host))
    }
}

extension HTTP1Target {
    /// A port written in digits only, 1-65535.
    static func port(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int(text),
            (1...65535).contains(value)
        else { return nil }
        return value
    }
}
