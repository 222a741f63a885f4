/// A connection URL of the form `scheme://[user[:password]@]host[:port][/path][?key=value&…]`, as used
/// by `REDIS_URL` and `DATABASE_URL`, with its user, password, path and query values percent-decoded.
///
/// Error messages built from such a URL must use ``masked(_:)``: it never shows the password.
package struct ConnectionURL: Sendable, Equatable {
    /// One `key=value` pair of the query, both percent-decoded.
    package struct QueryItem: Sendable, Equatable {
        package var name: String
        package var value: String

        package init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The scheme, lowercased, without `://`.
    package var scheme: String
    /// The user name, percent-decoded; `nil` when absent or empty.
    package var username: String?
    /// The password, percent-decoded; `nil` when absent or empty.
    package var password: String?
    /// The host, without the brackets of an IPv6 literal.
    package var host: String
    /// The port, when given.
    package var port: Int?
    /// The path without its leading `/`, percent-decoded (empty when absent).
    package var path: String
    /// The query, in order.
    package var query: [QueryItem]

    /// Parses `url`, throwing a ``ConfigurationError`` naming `variable` (with the password masked) when malformed.
    package init(parsing url: String, variable: String) throws {
        func fail(_ reason: String) -> ConfigurationError {
            ConfigurationError(variable: variable, reason: "\(reason) (got '\(Self.masked(url))')")
        }
        guard let separator = url.range(of: "://") else { throw fail("must be a URL like scheme://host[:port]") }
        scheme = url[..<separator.lowerBound].lowercased()
        var rest = url[separator.upperBound...]
        var queryText: Substring = ""
        if let question = rest.firstIndex(of: "?") {
            queryText = rest[rest.index(after: question)...]
            rest = rest[..<question]
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let user = Self.percentDecoded(parts[0])
            username = user.isEmpty ? nil : user
            let secret = parts.count > 1 ? Self.percentDecoded(parts[1]) : ""
            password = secret.isEmpty ? nil : secret
        } else {
            username = nil
            password = nil
        }
        var authority = rest
        path = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = Self.percentDecoded(rest[rest.index(after: slash)...])
        }
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw fail("has an unterminated IPv6 address") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else if !after.isEmpty {
                throw fail("has text after the IPv6 address")
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            portText = authority[authority.index(after: colon)...]
        } else {
            host = String(authority)
        }
        if let portText {
            guard let parsed = Int(portText), (1...65535).contains(parsed) else { throw fail("has an invalid port") }
            port = parsed
        } else {
            port = nil
        }
        guard !host.isEmpty else { throw fail("has no host") }
        query = queryText.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return QueryItem(name: Self.percentDecoded(parts[0]), value: parts.count > 1 ? Self.percentDecoded(parts[1]) : "")
        }
    }

    /// `url` with its password replaced by `***` (`redis://user:***@host`), for messages and logs.
    /// Works on malformed URLs too; anything between the first `:` after the scheme and the last `@`
    /// is treated as the password.
    package static func masked(_ url: String) -> String {
        let start = url.range(of: "://")?.upperBound ?? url.startIndex
        let beforeQuery = url[start...].firstIndex(of: "?") ?? url.endIndex
        guard let at = url[start..<beforeQuery].lastIndex(of: "@") ?? url[start...].lastIndex(of: "@") else { return url }
        guard let colon = url[start..<at].firstIndex(of: ":") else { return url }
        return String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
    }

    /// `%XX` decoding (invalid escapes are kept as written).
    package static func percentDecoded(_ text: some StringProtocol) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "%"), index + 2 < utf8.count,
                let value = UInt8(String(decoding: utf8[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                index += 3
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
