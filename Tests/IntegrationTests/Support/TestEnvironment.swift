import AgentConnectCore
import AgentConnectTesting
import EventBus
import Foundation
import Logging
import PostgresNIO
import Store

#if canImport(Glibc)
import Glibc
#endif

/// Where the test Redis and PostgreSQL are, and where the built executables live.
enum TestEnvironment {
    static let environment = ProcessInfo.processInfo.environment
    static let redisPort = Int(environment["AC_REDIS_PORT"] ?? "") ?? 16379
    static let postgresPort = Int(environment["AC_PG_PORT"] ?? "") ?? 15432
    static let logger = Logger(label: "test")

    /// The repository root (from this file's path).
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The build's bin directory (`AGENTCONNECT_BIN_DIR`, else `.build/debug`).
    static let binDirectory = environment["AGENTCONNECT_BIN_DIR"] ?? "\(root)/.build/debug"

    /// The development settings the stack runs with (`deploy/local.env`).
    static let localEnv: [String: String] = {
        guard let text = try? String(contentsOfFile: "\(root)/deploy/local.env", encoding: .utf8) else { return [:] }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        return values
    }()

    /// A TCP port nothing listens on right now, never the same twice in one test run (one picker
    /// for these tests and the `AgentHarness` ones, which run in the same process).
    static func freePort() -> Int {
        AgentHarness.freePort()
    }

    /// A TCP connection to 127.0.0.1:`port` (its descriptor, to close); nil when it cannot connect.
    static func connectTCP(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }
}

/// A Redis logical database of its own, flushed, so tests running in parallel do not share streams.
struct TestRedis: Sendable {
    let database: Int
    let port: Int
    var url: String { "redis://127.0.0.1:\(port)/\(database)" }
    var configuration: RedisConfiguration { RedisConfiguration(host: "127.0.0.1", port: port, database: database) }

    static func make(port: Int = TestEnvironment.redisPort) async throws -> TestRedis {
        try await withTimeout(.seconds(30), "TestRedis.make") { try await makeNow(port: port) }
    }

    private static func makeNow(port: Int) async throws -> TestRedis {
        let admin = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: port), logger: TestEnvironment.logger)
        defer { admin.shutdown() }
        let counter = try await admin.command("INCR", "agentconnect:test:database").integer ?? 1
        let database = 1 + Int(counter % 1000)
        let client = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: port, database: database), logger: TestEnvironment.logger)
        defer { client.shutdown() }
        try await client.command("FLUSHDB")
        return TestRedis(database: database, port: port)
    }

    /// A client on this database (shut it down when done).
    func client() -> RedisClient {
        RedisClient(configuration: configuration, logger: TestEnvironment.logger)
    }
}

/// A PostgreSQL database of its own.
struct TestDatabase: Sendable {
    let name: String
    var configuration: DatabaseConfiguration {
        DatabaseConfiguration(host: "127.0.0.1", port: TestEnvironment.postgresPort, username: "agentconnect", password: nil, database: name)
    }
    var url: String { "postgres://agentconnect@127.0.0.1:\(TestEnvironment.postgresPort)/\(name)" }

    /// Creates an empty database (migrate it yourself, or call ``migrated()``).
    static func make() async throws -> TestDatabase {
        try await withTimeout(.seconds(30), "TestDatabase.make") { try await makeNow() }
    }

    private static func makeNow() async throws -> TestDatabase {
        let name = "test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        let connection = try await PostgresConnection.connect(
            configuration: .init(
                host: "127.0.0.1", port: TestEnvironment.postgresPort, username: "agentconnect", password: nil, database: "postgres", tls: .disable),
            id: 1, logger: TestEnvironment.logger)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: TestEnvironment.logger)
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
        return TestDatabase(name: String(name))
    }

    /// A new database with the schema applied.
    static func migrated() async throws -> TestDatabase {
        let database = try await make()
        try await withTimeout(.seconds(30), "migrating \(database.name)") {
            try await database.withClient { client in
                try await Migrator(client: client, logger: TestEnvironment.logger).migrate()
            }
        }
        return database
    }

    /// Runs `body` with a running `PostgresClient` on this database. Bounded: a lease that never gets
    /// a connection (the pool retries a failing connect forever) or a client that does not shut down
    /// fails the test after `timeout` instead of hanging the whole run. `poolSize` 1 puts every
    /// statement on one connection.
    func withClient<T: Sendable>(
        timeout: Duration = .seconds(60), poolSize: Int? = nil, _ body: @escaping @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        var configuration = configuration
        if let poolSize { configuration.poolSize = poolSize }
        let clientConfiguration = configuration.clientConfiguration
        return try await withTimeout(timeout, "PostgreSQL client on database \(name) (query or shutdown)") {
            let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: TestEnvironment.logger)
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    await client.run()
                    return nil
                }
                defer { group.cancelAll() }
                return try await body(client)
            }
        }
    }
}
