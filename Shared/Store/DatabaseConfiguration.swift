import AgentConnectCore
import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

/// Where PostgreSQL is and how to reach it, parsed from `DATABASE_URL`
/// (`postgres://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=…&connect_timeout=…]`).
///
/// `sslmode` follows libpq: `disable`; `allow` and `prefer` (TLS when the server offers it, no
/// verification; `prefer` is the default, as in libpq); `require` (TLS, no verification; with
/// `sslrootcert` it verifies like `verify-ca`, as libpq does); `verify-ca` (the chain);
/// `verify-full` (the chain and the host name). `sslrootcert` is a PEM file, or `system` for the
/// system trust roots (the default for the verifying modes).
///
/// No startup parameters are sent, so a connection pooler such as PgBouncer (transaction mode) can sit
/// in between. `description` masks the password.
package struct DatabaseConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// libpq's `sslmode` values.
    package enum SSLMode: String, Sendable, CaseIterable {
        case disable
        case allow
        case prefer
        case require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    package var host: String
    package var port: Int
    package var username: String
    package var password: String?
    package var database: String
    /// TLS use and verification.
    package var sslMode: SSLMode
    /// PEM CA bundle (`sslrootcert`); `nil` or `system` for the system trust roots.
    package var sslRootCert: String?
    /// Most connections the pool opens (`DATABASE_POOL_SIZE`).
    package var poolSize: Int
    /// Connections the pool keeps open (`DATABASE_POOL_MIN`, at most ``poolSize``; 0 when built in
    /// code): opened at start, reopened when lost, never closed for idling. The pool hands out the
    /// first free connection, so at a steady load statements run on these; one that comes back to the
    /// pool arms no idle timer. A connection beyond them arms one on every return (a task and a
    /// dispatch timer, cancelled on its next lease) and closes after 60 s unused: measured with
    /// `agentconnect-bench pool`, about a context switch and 25–45 µs of the client's CPU a statement.
    package var minimumConnections = 0
    /// ``minimumConnections`` for the services when `DATABASE_POOL_MIN` is unset: none kept. With
    /// connections kept, PostgresNIO 1.33.2's pool can stop the process when PostgreSQL restarts: a
    /// kept connection that is closing is not counted, and a statement that asks for a connection
    /// then fails the pool's precondition `minimumConcurrentConnections <= stats.active` (outbound,
    /// in the fault suite's PostgreSQL restart).
    package static let defaultMinimumConnections = 0
    /// Bound on TCP connect (`connect_timeout`, seconds in the URL).
    package var connectTimeout: Duration
    /// Whether frequent statements go as named prepared statements (`DATABASE_PREPARED_STATEMENTS`,
    /// on by default); see ``PreparedStatements``.
    package var preparedStatements = true

    /// A configuration built in code: TLS off unless `sslMode` says otherwise.
    package init(
        host: String, port: Int = 5432, username: String, password: String?, database: String, sslMode: SSLMode = .disable,
        sslRootCert: String? = nil, poolSize: Int = 10, connectTimeout: Duration = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.sslMode = sslMode
        self.sslRootCert = sslRootCert
        self.poolSize = poolSize
        self.connectTimeout = connectTimeout
    }

    /// Parses the URL, throwing a ``ConfigurationError`` naming `variable` (never showing the
    /// password) when malformed, or when `sslrootcert` cannot be read. User, password and database
    /// are percent-decoded.
    package init(url: String, variable: String = "DATABASE_URL") throws {
        let parsed = try ConnectionURL(parsing: url, variable: variable)
        guard parsed.scheme == "postgres" || parsed.scheme == "postgresql" else {
            throw ConfigurationError(variable: variable, reason: "must start with postgres://, got '\(ConnectionURL.masked(url))'")
        }
        guard let user = parsed.username else {
            throw ConfigurationError(variable: variable, reason: "must name a user: postgres://user@host/db")
        }
        let database = parsed.path.hasSuffix("/") ? String(parsed.path.dropLast()) : parsed.path
        guard !database.isEmpty, !database.contains("/") else {
            throw ConfigurationError(variable: variable, reason: "must name a database: postgres://user@host/db")
        }
        var sslMode = SSLMode.prefer
        var rootCert: String?
        var connectTimeout: Duration = .seconds(10)
        for item in parsed.query {
            switch item.name {
            case "sslmode":
                guard let mode = SSLMode(rawValue: item.value) else {
                    let allowed = SSLMode.allCases.map(\.rawValue).joined(separator: ", ")
                    throw ConfigurationError(variable: variable, reason: "has an unknown sslmode '\(item.value)' (use one of \(allowed))")
                }
                sslMode = mode
            case "sslrootcert":
                rootCert = item.value.isEmpty ? nil : item.value
            case "connect_timeout":
                guard let seconds = Int(item.value), seconds > 0 else {
                    throw ConfigurationError(variable: variable, reason: "has a connect_timeout that is not a positive number of seconds")
                }
                connectTimeout = .seconds(seconds)
            default:
                throw ConfigurationError(
                    variable: variable,
                    reason: "has an unsupported parameter '\(item.name)' (supported: sslmode, sslrootcert, connect_timeout)")
            }
        }
        if let rootCert, rootCert != "system" {
            try Self.loadCertificates(rootCert, variable: variable)
        }
        self.init(
            host: parsed.host, port: parsed.port ?? 5432, username: user, password: parsed.password, database: database,
            sslMode: sslMode, sslRootCert: rootCert, connectTimeout: connectTimeout)
    }

    /// The same server, another database.
    package func with(database: String) -> DatabaseConfiguration {
        var copy = self
        copy.database = database
        return copy
    }

    /// The URL with the password masked (and the TLS settings).
    package var description: String {
        let credentials = password == nil ? username : "\(username):***"
        let hostPart = host.contains(":") ? "[\(host)]" : host
        let root = sslRootCert.map { "&sslrootcert=\($0)" } ?? ""
        return "postgres://\(credentials)@\(hostPart):\(port)/\(database)?sslmode=\(sslMode.rawValue)\(root)"
    }

    /// Whether TLS may be used and the settings for it (`nil`: `sslmode=disable`).
    package var tlsConfiguration: TLSConfiguration? {
        guard sslMode != .disable else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        let customRoot = sslRootCert.flatMap { $0 == "system" ? nil : $0 }
        switch sslMode {
        case .disable, .allow, .prefer:
            tls.certificateVerification = .none
        case .require:
            // libpq: with a root certificate, `require` verifies the chain like `verify-ca`.
            tls.certificateVerification = customRoot == nil ? .none : .noHostnameVerification
        case .verifyCA:
            tls.certificateVerification = .noHostnameVerification
        case .verifyFull:
            tls.certificateVerification = .fullVerification
        }
        if let customRoot { tls.trustRoots = .file(customRoot) }
        return tls
    }

    /// PostgresNIO client settings: TLS per `sslmode`, at most ``poolSize`` connections, no startup
    /// parameters (PgBouncer refuses unknown ones) and no keep-alive query.
    package var clientConfiguration: PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch (sslMode, tlsConfiguration) {
        case (_, nil): tls = .disable
        case (.allow, let configuration?), (.prefer, let configuration?): tls = .prefer(configuration)
        case (_, let configuration?): tls = .require(configuration)
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.maximumConnections = poolSize
        configuration.options.minimumConnections = min(minimumConnections, poolSize)
        configuration.options.connectTimeout = connectTimeout
        // No keep-alive query: a connection beyond the kept ones is closed after 60 s unused
        // (`connectionIdleTimeout`), so none idles long enough for a keep-alive to matter (it would
        // ping once, at 30 s, before the close); a kept one closed by the server is reopened, one
        // dropped silently (a NAT's idle timeout) holds its next statement until that statement's
        // deadline (README: `DATABASE_POOL_MIN=0` there). Each statement paid for a keep-alive: the
        // pool arms the keep-alive timer (a task and a dispatch timer) whenever a connection comes
        // back and cancels it when the connection is taken again, 10–20 µs of the client's CPU per
        // statement (`agentconnect-bench pool`).
        configuration.options.keepAliveBehavior = nil
        return configuration
    }

    /// Opens one connection (TLS as configured), runs `SELECT 1` and closes it, all within `timeout`.
    ///
    /// A refused TLS handshake (wrong CA, host name mismatch, server without TLS under `require`)
    /// throws a ``ConfigurationError`` naming `variable`; other failures (server down, wrong
    /// password) throw the driver's error. `migrate` and `agentconnect doctor` call this so that a
    /// TLS mistake is a clear error, not a pool that retries quietly.
    package func checkConnection(variable: String = "DATABASE_URL", timeout: Duration = .seconds(10), logger: Logger) async throws {
        var tls: PostgresConnection.Configuration.TLS = .disable
        if let tlsConfiguration {
            let context: NIOSSLContext
            do {
                context = try NIOSSLContext(configuration: tlsConfiguration)
            } catch {
                throw ConfigurationError(variable: variable, reason: "TLS setup failed (sslrootcert '\(sslRootCert ?? "system")'): \(error)")
            }
            tls = sslMode == .allow || sslMode == .prefer ? .prefer(context) : .require(context)
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = TimeAmount(min(timeout, connectTimeout))
        let connectionConfiguration = configuration
        do {
            try await withTimeout(timeout, "connecting to PostgreSQL at \(host):\(port)") {
                let connection = try await PostgresConnection.connect(configuration: connectionConfiguration, id: 0, logger: logger)
                do {
                    try await connection.query("SELECT 1", logger: logger)
                    try await connection.close()
                } catch {
                    try? await connection.close()
                    throw error
                }
            }
        } catch let error as PSQLError where Self.isTLSFailure(error) {
            let cause = error.underlying.map { String(describing: $0) } ?? "the server does not offer TLS"
            throw ConfigurationError(
                variable: variable,
                reason:
                    "TLS connection to PostgreSQL at \(host):\(port) failed (sslmode=\(sslMode.rawValue), sslrootcert=\(sslRootCert ?? "system")): \(cause)"
            )
        }
    }

    /// Whether `error` is a refused or failed TLS handshake.
    package static func isTLSFailure(_ error: PSQLError) -> Bool {
        if error.code == .sslUnsupported { return true }
        guard let underlying = error.underlying else { return false }
        return underlying is NIOSSLError || underlying is NIOSSLExtraError || underlying is BoringSSLError
    }

    @discardableResult
    static func loadCertificates(_ path: String, variable: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw ConfigurationError(variable: variable, reason: "has an sslrootcert that is not a readable PEM file: '\(path)' (\(error))")
        }
        guard !certificates.isEmpty else {
            throw ConfigurationError(variable: variable, reason: "has an sslrootcert with no PEM certificate: '\(path)'")
        }
        return certificates
    }
}
