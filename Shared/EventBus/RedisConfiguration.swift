import AgentConnectCore

/// Where Redis is, parsed from `REDIS_URL` (`redis://[:password@]host[:port][/db]`).
public struct RedisConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var password: String?
    public var database: Int

    public init(host: String = "127.0.0.1", port: Int = 6379, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.password = password
        self.database = database
    }

    /// Parses a `redis://` URL, throwing a ``ConfigurationError`` naming `REDIS_URL` when malformed.
    public init(url: String, variable: String = "REDIS_URL") throws {
        guard url.hasPrefix("redis://") else {
            throw ConfigurationError(variable: variable, reason: "must start with redis://, got '\(url)'")
        }
        var rest = Substring(url.dropFirst("redis://".count))
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let secret = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).last ?? ""
            password = secret.isEmpty ? nil : String(secret)
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let parsed = Int(path), parsed >= 0 else {
                    throw ConfigurationError(variable: variable, reason: "has a database that is not a number: '\(path)'")
                }
                database = parsed
            }
        }
        var host = String(rest)
        var port = 6379
        if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let parsed = Int(rest[rest.index(after: colon)...]), (1...65535).contains(parsed) else {
                throw ConfigurationError(variable: variable, reason: "has an invalid port in '\(url)'")
            }
            port = parsed
        }
        guard !host.isEmpty else { throw ConfigurationError(variable: variable, reason: "has no host: '\(url)'") }
        self.init(host: host, port: port, password: password, database: database)
    }
}
