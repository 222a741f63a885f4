import AgentConnectCore
import PostgresNIO

/// Where PostgreSQL is, parsed from `DATABASE_URL` (`postgres://user[:password]@host[:port]/database`).
public struct DatabaseConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String

    public init(host: String, port: Int = 5432, username: String, password: String?, database: String) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses the URL, throwing a ``ConfigurationError`` naming `DATABASE_URL` when malformed.
    public init(url: String, variable: String = "DATABASE_URL") throws {
        let schemes = ["postgres://", "postgresql://"]
        guard let scheme = schemes.first(where: url.hasPrefix) else {
            throw ConfigurationError(variable: variable, reason: "must start with postgres://, got '\(url)'")
        }
        var rest = Substring(url.dropFirst(scheme.count))
        if let query = rest.firstIndex(of: "?") { rest = rest[..<query] }
        guard let at = rest.lastIndex(of: "@") else {
            throw ConfigurationError(variable: variable, reason: "must name a user: postgres://user@host/db")
        }
        let credentials = rest[..<at].split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        rest = rest[rest.index(after: at)...]
        guard let slash = rest.firstIndex(of: "/"), !rest[rest.index(after: slash)...].isEmpty else {
            throw ConfigurationError(variable: variable, reason: "must name a database: postgres://user@host/db")
        }
        let database = String(rest[rest.index(after: slash)...])
        let hostPort = rest[..<slash]
        var host = String(hostPort)
        var port = 5432
        if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            guard let parsed = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(parsed) else {
                throw ConfigurationError(variable: variable, reason: "has an invalid port")
            }
            port = parsed
        }
        guard let user = credentials.first, !user.isEmpty, !host.isEmpty else {
            throw ConfigurationError(variable: variable, reason: "must name a user and a host")
        }
        let password = credentials.count > 1 ? String(credentials[1]).removingPercentEncodingLite : nil
        self.init(host: host, port: port, username: String(user), password: password, database: database)
    }

    /// The same server, another database.
    public func with(database: String) -> DatabaseConfiguration {
        var copy = self
        copy.database = database
        return copy
    }

    /// PostgresNIO client settings (TLS off: loopback or a private network).
    ///
    /// Commits are asynchronous (`synchronous_commit=off`): a reply never waits for a WAL flush. A
    /// PostgreSQL crash can lose the last few hundred milliseconds of rows; exactly-once delivery
    /// still holds, because an entry is acknowledged on the bus only after its rows were written, so
    /// what PostgreSQL loses was acknowledged by a process that had already sent it.
    public var clientConfiguration: PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: .disable)
        configuration.options.maximumConnections = 16
        configuration.options.additionalStartupParameters = [("synchronous_commit", "off")]
        return configuration
    }
}

extension String {
    /// `%XX` decoding for passwords in URLs.
    fileprivate var removingPercentEncodingLite: String {
        var bytes: [UInt8] = []
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
