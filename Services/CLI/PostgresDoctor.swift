import AgentConnectCore
import PostgresNIO
import Store

/// `doctor`'s PostgreSQL checks: reachable, and every migration this build knows applied.
struct PostgresDoctor: Sendable {
    let configuration: DatabaseConfiguration
    let timeout: Duration

    private var target: String { "\(configuration.host):\(configuration.port)/\(configuration.database)" }

    /// What the database holds.
    struct Found: Sendable {
        var serverVersion: String
        /// `schema_migrations` rows, or nil when the table does not exist.
        var applied: [Int: String]?
    }

    func checks() async -> [DoctorCheck] {
        let found: Found
        do {
            // One plain connection first: the pool retries a refused login or TLS handshake quietly.
            try await configuration.checkConnection(timeout: timeout, logger: OperatorLogging.quiet)
            found = try await withTimeout(timeout, "PostgreSQL at \(target)") { try await inspect() }
        } catch {
            return [
                .fail(
                    "postgres", "cannot use PostgreSQL at \(target): \(Self.describe(error))",
                    fix: "check DATABASE_URL (host, port, user, password, database) and that PostgreSQL accepts connections")
            ]
        }
        return [.ok("postgres", "PostgreSQL \(found.serverVersion) at \(target)"), migrations(found.applied)]
    }

    private func migrations(_ applied: [Int: String]?) -> DoctorCheck {
        let known = Migrations.all.sorted { $0.version < $1.version }
        let fix = "run migrate against this DATABASE_URL (the migrate executable, or the migrate Job/initContainer)"
        guard let applied else {
            return .fail("migrations", "none applied: \(target) has no schema_migrations table", fix: fix)
        }
        let missing = known.filter { applied[$0.version] == nil }
        if !missing.isEmpty {
            let names = missing.map { "\($0.version) \($0.name)" }.joined(separator: ", ")
            return .fail("migrations", "\(missing.count) of \(known.count) not applied: \(names)", fix: fix)
        }
        let unknown = applied.keys.filter { version in !known.contains { $0.version == version } }.sorted()
        if !unknown.isEmpty {
            return .warn(
                "migrations", "the database has migrations this build does not know (\(unknown.map(String.init).joined(separator: ", ")))",
                fix: "run the release that applied them, or restore the schema it expects")
        }
        let latest = known.last.map { "\($0.version) \($0.name)" } ?? "none"
        return .ok("migrations", "all \(known.count) applied (latest \(latest))")
    }

    private func inspect() async throws -> Found {
        let client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: OperatorLogging.quiet)
        return try await withThrowingTaskGroup(of: Found?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            group.addTask {
                var version = "?"
                for try await text in try await client.query("SHOW server_version", logger: OperatorLogging.quiet).decode(String.self) {
                    version = text
                }
                var exists = false
                for try await flag in try await client.query(
                    "SELECT to_regclass('schema_migrations') IS NOT NULL", logger: OperatorLogging.quiet
                ).decode(Bool.self) {
                    exists = flag
                }
                guard exists else { return Found(serverVersion: version, applied: nil) }
                var applied: [Int: String] = [:]
                for try await (number, name) in try await client.query(
                    "SELECT version, name FROM schema_migrations", logger: OperatorLogging.quiet
                ).decode((Int, String).self) {
                    applied[number] = name
                }
                return Found(serverVersion: version, applied: applied)
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw StoreError(.unavailable, "the PostgreSQL client stopped")
        }
    }

    /// PostgresNIO hides details from `description`: the server's message, or the connection's error
    /// (never the password).
    static func describe(_ error: any Error) -> String {
        if error is TimeoutError { return DoctorCheck.describe(error) }
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying { return String(describing: underlying).prefix(200) + "" }
            return "\(error.code)"
        }
        return String(String(reflecting: error).prefix(300))
    }
}
