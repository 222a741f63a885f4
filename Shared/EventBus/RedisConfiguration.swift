import AgentConnectCore
import Foundation

/// Where Redis is and how to talk to it, parsed from `REDIS_URL`
/// (`redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS) and the `REDIS_*` settings.
///
/// `description` masks the password, so a configuration can be logged.
package struct RedisConfiguration: Sendable, Equatable, CustomStringConvertible {
    package var host: String
    package var port: Int
    /// ACL user (`AUTH user password`); `nil` for the default user.
    package var username: String?
    package var password: String?
    package var database: Int
    /// TLS (`rediss://`): SNI and certificate + hostname verification.
    package var tls: Bool
    /// PEM CA bundle to trust for TLS (`REDIS_TLS_CA_FILE`); `nil` for the system trust roots.
    package var caFile: String?
    /// Deadline of every command (`REDIS_COMMAND_TIMEOUT_MS`); a `BLOCK` read gets its block time on top.
    /// When it passes, the connection is closed and every command pending on it fails.
    package var commandTimeout: Duration
    /// Bound on TCP connect + TLS handshake + `AUTH`/`SELECT` (`REDIS_CONNECT_TIMEOUT_MS`).
    package var connectTimeout: Duration
    /// The setting it came from (`REDIS_URL`, `VOICE_REDIS_URL`), named in errors about it.
    package var variable = "REDIS_URL"

    package init(
        host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0,
        tls: Bool = false, caFile: String? = nil, commandTimeout: Duration = .seconds(5), connectTimeout: Duration = .seconds(5)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.caFile = caFile
        self.commandTimeout = commandTimeout
        self.connectTimeout = connectTimeout
    }

    /// Parses a `redis://` or `rediss://` URL, throwing a ``ConfigurationError`` naming `REDIS_URL`
    /// (never showing the password) when malformed. User and password are percent-decoded.
    package init(url: String, variable: String = "REDIS_URL") throws {
        let parsed = try ConnectionURL(parsing: url, variable: variable)
        guard parsed.scheme == "redis" || parsed.scheme == "rediss" else {
            throw ConfigurationError(
                variable: variable, reason: "must start with redis:// or rediss:// (TLS), got '\(ConnectionURL.masked(url))'")
        }
        var database = 0
        let path = parsed.path.hasSuffix("/") ? String(parsed.path.dropLast()) : parsed.path
        if !path.isEmpty {
            guard let number = Int(path), number >= 0 else {
                throw ConfigurationError(variable: variable, reason: "has a database that is not a number: '\(path)'")
            }
            database = number
        }
        if let item = parsed.query.first {
            throw ConfigurationError(variable: variable, reason: "has an unsupported parameter '\(item.name)' (use REDIS_* variables)")
        }
        if parsed.username != nil, parsed.password == nil {
            throw ConfigurationError(variable: variable, reason: "names a user without a password (redis://user:password@host)")
        }
        self.init(
            host: parsed.host, port: parsed.port ?? 6379, username: parsed.username, password: parsed.password, database: database,
            tls: parsed.scheme == "rediss")
        self.variable = variable
    }

    /// `REDIS_URL` plus `REDIS_TLS_CA_FILE`, `REDIS_COMMAND_TIMEOUT_MS` and `REDIS_CONNECT_TIMEOUT_MS`.
    package init(environment: Environment) throws {
        try self.init(url: environment.string("REDIS_URL") ?? "redis://127.0.0.1:6379", environment: environment)
    }

    /// `VOICE_REDIS_URL`, with `REDIS_URL`'s timeouts and CA file (which it uses when it is TLS too);
    /// nil when unset or empty.
    package static func voice(environment: Environment) throws -> RedisConfiguration? {
        guard let url = environment.string("VOICE_REDIS_URL") else { return nil }
        var voice = try RedisConfiguration(url: url, variable: "VOICE_REDIS_URL")
        let main = try RedisConfiguration(environment: environment)
        voice.commandTimeout = main.commandTimeout
        voice.connectTimeout = main.connectTimeout
        if voice.tls { voice.caFile = main.caFile }
        return voice
    }

    private init(url: String, environment: Environment) throws {
        try self.init(url: url)
        commandTimeout = .milliseconds(try environment.int("REDIS_COMMAND_TIMEOUT_MS", default: 5000, range: 100...600_000))
        connectTimeout = .milliseconds(try environment.int("REDIS_CONNECT_TIMEOUT_MS", default: 5000, range: 100...600_000))
        if let file = environment.string("REDIS_TLS_CA_FILE") {
            guard tls else {
                throw ConfigurationError(
                    variable: "REDIS_TLS_CA_FILE", reason: "is set but REDIS_URL is not rediss:// (TLS): use rediss:// or unset it")
            }
            guard FileManager.default.isReadableFile(atPath: file) else {
                throw ConfigurationError(variable: "REDIS_TLS_CA_FILE", reason: "names a file that cannot be read: '\(file)'")
            }
            caFile = file
        }
    }

    /// The URL with the password masked.
    package var description: String {
        let scheme = tls ? "rediss" : "redis"
        let credentials = password == nil ? "" : "\(username ?? ""):***@"
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(credentials)\(hostPart):\(port)/\(database)"
    }
}
