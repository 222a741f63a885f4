import AgentConnectCore
import EventBus
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO
import Store
import Testing

/// Managed Redis and PostgreSQL as people rent them: TLS on a private CA, an ACL user, `sslmode`.
/// Each test starts its own redis-server (`--tls-port`) and PostgreSQL (`ssl=on`) on a CA it makes
/// with `openssl`, and stops them (also on failure).
@Suite("Managed Redis and PostgreSQL over TLS", .serialized)
struct TLSTests {
    /// ACL user and password (with characters that must be percent-encoded in the URL).
    static let redisUser = "agent@prod"
    static let redisPassword = "s3cr@t/pw:x"
    static let redisCredentials = "agent%40prod:s3cr%40t%2Fpw%3Ax"

    @Test("rediss:// with a CA file and an ACL user round-trips XADD/XREAD; a wrong CA or plain redis:// fails fast, naming the variable")
    func redisOverTLS() async throws {
        try await withTLSServers(postgres: false) { servers in
            // (a) Host name (SNI + hostname verification) and IP address (verified against the IP SAN).
            for host in ["localhost", "127.0.0.1"] {
                let configuration = try RedisConfiguration(
                    environment: Environment([
                        "REDIS_URL": "rediss://\(Self.redisCredentials)@\(host):\(servers.redisPort)/3", "REDIS_TLS_CA_FILE": servers.pki.caFile,
                    ]))
                #expect(configuration.tls && configuration.username == Self.redisUser && configuration.password == Self.redisPassword)
                let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
                defer { client.shutdown() }
                let id = try #require(try await client.command("XADD", "tls:stream", "*", "via", .string(host)).string)
                let read = try await client.command("XREAD", "COUNT", "10", "STREAMS", "tls:stream", "0")
                let texts = Self.strings(in: read)
                #expect(texts.contains(id) && texts.contains(host), "\(texts)")
                #expect(try await client.command("ACL", "WHOAMI").string == Self.redisUser)
                try await client.requireNoEviction()
            }

            // (c) A CA that did not sign the server's certificate: refused quickly, naming the variables.
            let wrong = try RedisConfiguration(
                environment: Environment([
                    "REDIS_URL": "rediss://\(Self.redisCredentials)@localhost:\(servers.redisPort)", "REDIS_TLS_CA_FILE": servers.pki.wrongCAFile,
                ]))
            try await expectFastFailure(naming: ["REDIS_TLS_CA_FILE", "REDIS_URL"]) {
                let client = RedisClient(configuration: wrong, logger: TestEnvironment.logger)
                defer { client.shutdown() }
                try await client.command("PING")
            }
            // Without a CA file the system roots do not know our CA either.
            let systemRoots = RedisConfiguration(
                host: "localhost", port: servers.redisPort, username: Self.redisUser, password: Self.redisPassword, tls: true)
            try await expectFastFailure(naming: ["REDIS_TLS_CA_FILE"]) {
                let client = RedisClient(configuration: systemRoots, logger: TestEnvironment.logger)
                defer { client.shutdown() }
                try await client.command("PING")
            }
            // 127.0.0.2 reaches the same server, but the certificate does not name it: hostname verification refuses it.
            let otherName = try RedisConfiguration(
                environment: Environment([
                    "REDIS_URL": "rediss://\(Self.redisCredentials)@127.0.0.2:\(servers.redisPort)", "REDIS_TLS_CA_FILE": servers.pki.caFile,
                ]))
            try await expectFastFailure(naming: ["REDIS_TLS_CA_FILE", "REDIS_URL"]) {
                let client = RedisClient(configuration: otherName, logger: TestEnvironment.logger)
                defer { client.shutdown() }
                try await client.command("PING")
            }
            // Plain redis:// to a TLS port: a clear failure, never a hang.
            let plain = RedisConfiguration(
                host: "127.0.0.1", port: servers.redisPort, username: Self.redisUser, password: Self.redisPassword, connectTimeout: .seconds(2))
            try await expectFastFailure(naming: ["REDIS_URL"]) {
                let client = RedisClient(configuration: plain, logger: TestEnvironment.logger)
                defer { client.shutdown() }
                try await client.command("PING")
            }
        }
    }

    @Test("a command past its deadline fails and closes the connection; a BLOCK read gets its block time on top")
    func commandDeadline() async throws {
        try await withTLSServers(postgres: false) { servers in
            var configuration = try RedisConfiguration(url: "rediss://\(Self.redisCredentials)@localhost:\(servers.redisPort)/4")
            configuration.caFile = servers.pki.caFile
            configuration.commandTimeout = .milliseconds(300)
            // Reconnecting waits out the rest of Redis's 4 s sleep (the handshake is answered after it).
            configuration.connectTimeout = .seconds(15)
            let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
            defer { client.shutdown() }
            // A BLOCK read of 800 ms outlives the 300 ms deadline without failing.
            let started = ContinuousClock.now
            let empty = try await client.withBlockingConnection { connection in
                try await connection.command("XREAD", "BLOCK", "800", "STREAMS", "tls:deadline", "$")
            }
            guard case .null = empty else {
                Issue.record("XREAD BLOCK returned \(empty)")
                return
            }
            #expect(ContinuousClock.now - started >= .milliseconds(700))
            // The server stops answering (as a half-open connection would): the command fails at its deadline.
            // Commands meant to succeed get a generous per-call deadline: on a loaded machine a TLS
            // Redis may take longer than 300 ms to answer a PING.
            _ = try await client.send([["PING"]], timeout: .seconds(10))
            let paused = ContinuousClock.now
            let error = try await #require(throws: BusError.self) { try await client.command("DEBUG", "SLEEP", "4") }
            let waited = ContinuousClock.now - paused
            #expect(error.code == .unavailable && "\(error)".contains("deadline"), "\(error)")
            #expect(waited >= .milliseconds(250) && waited < .milliseconds(3500), "failed after \(waited)")
            // The next command reconnects.
            #expect(try await client.send([["PING"]], timeout: .seconds(10)).first?.string == "PONG")

            // A short per-call deadline (a lease renewal) behind a slow command with a long one still fires on time.
            let patient = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
            defer { patient.shutdown() }
            _ = try await patient.send([["PING"]], timeout: .seconds(10))
            let slow = Task { try await patient.send([["DEBUG", "SLEEP", "4"]], timeout: .seconds(10)) }
            try await Task.sleep(for: .milliseconds(50))
            let renewalStarted = ContinuousClock.now
            let renewal = try await #require(throws: BusError.self) { try await patient.send([["PING"]], timeout: .milliseconds(200)) }
            let renewalWaited = ContinuousClock.now - renewalStarted
            #expect("\(renewal)".contains("200 ms"), "\(renewal)")
            #expect(renewalWaited < .milliseconds(3500), "failed after \(renewalWaited)")
            // The slow command shared the closed connection: it failed too, rather than waiting on.
            await #expect(throws: BusError.self) { try await slow.value }
        }
    }

    @Test("PostgreSQL with sslmode=verify-full: migrations run over TLS; a wrong CA or no TLS under require is refused, naming the variable")
    func postgresOverTLS() async throws {
        try await withTLSServers(redis: false) { servers in
            let good = servers.databaseURL(mode: "verify-full", root: servers.pki.caFile)
            // (b) The store connects with verify-full (host name and IP) and the migrations run.
            for url in [good, servers.databaseURL(mode: "verify-full", root: servers.pki.caFile, host: "127.0.0.1")] {
                let configuration = try DatabaseConfiguration(url: url)
                try await configuration.checkConnection(logger: TestEnvironment.logger)
            }
            let migrate = try ServiceProcess(
                "migrate", port: TestEnvironment.freePort(), environment: ["DATABASE_URL": good, "MIGRATE_WAIT_SECONDS": "10"],
                logDirectory: servers.directory)
            let status = await migrate.waitForExit(timeout: .seconds(60))
            #expect(status == 0, "\(migrate.log)")
            let configuration = try DatabaseConfiguration(url: good)
            let (ssl, versions) = try await withPostgresClient(configuration) { client in
                var ssl = false
                for try await value in try await client.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").decode(Bool.self) {
                    ssl = value
                }
                var versions: [Int] = []
                for try await version in try await client.query("SELECT version FROM schema_migrations ORDER BY version").decode(Int.self) {
                    versions.append(version)
                }
                // Running the migrator again (transaction-level lock) applies nothing.
                let again = try await Migrator(client: client, logger: TestEnvironment.logger).migrate()
                #expect(again.isEmpty)
                return (ssl, versions)
            }
            #expect(ssl)
            #expect(versions == Migrations.all.map(\.version).sorted())

            // (c) A wrong CA: refused at once with an error naming the variable, no password shown.
            let wrong = try DatabaseConfiguration(url: servers.databaseURL(mode: "verify-full", root: servers.pki.wrongCAFile))
            try await expectFastFailure(naming: ["DATABASE_URL"]) {
                try await wrong.checkConnection(logger: TestEnvironment.logger)
            }
            // sslmode=require with an sslrootcert verifies the chain, as libpq does.
            let requireWithRoot = try DatabaseConfiguration(url: servers.databaseURL(mode: "require", root: servers.pki.wrongCAFile))
            try await expectFastFailure(naming: ["DATABASE_URL"]) {
                try await requireWithRoot.checkConnection(logger: TestEnvironment.logger)
            }
            try await DatabaseConfiguration(url: servers.databaseURL(mode: "verify-ca", root: servers.pki.caFile, host: "127.0.0.1"))
                .checkConnection(logger: TestEnvironment.logger)
            // 127.0.0.2 is not in the certificate: verify-ca accepts it (the chain only), verify-full refuses it.
            try await DatabaseConfiguration(url: servers.databaseURL(mode: "verify-ca", root: servers.pki.caFile, host: "127.0.0.2"))
                .checkConnection(logger: TestEnvironment.logger)
            let otherName = try DatabaseConfiguration(url: servers.databaseURL(mode: "verify-full", root: servers.pki.caFile, host: "127.0.0.2"))
            try await expectFastFailure(naming: ["DATABASE_URL"]) {
                try await otherName.checkConnection(logger: TestEnvironment.logger)
            }
            let wrongMigrate = try ServiceProcess(
                "migrate", port: TestEnvironment.freePort(),
                environment: [
                    "DATABASE_URL": "postgres://nobody:hunter2@127.0.0.1:1/x",
                    "MIGRATE_DATABASE_URL": servers.databaseURL(mode: "verify-ca", root: servers.pki.wrongCAFile),
                ], logDirectory: servers.directory)
            let started = ContinuousClock.now
            let wrongStatus = await wrongMigrate.waitForExit(timeout: .seconds(30))
            #expect(wrongStatus == 2, "\(wrongMigrate.log)")
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(wrongMigrate.log.contains("MIGRATE_DATABASE_URL") && !wrongMigrate.log.contains(servers.postgresPassword), "\(wrongMigrate.log)")
            // sslmode=require against a server without TLS (the shared test server): refused, naming the variable.
            let noTLS = try DatabaseConfiguration(
                url: "postgres://agentconnect:\(servers.postgresPassword)@127.0.0.1:\(TestEnvironment.postgresPort)/postgres?sslmode=require")
            try await expectFastFailure(naming: ["DATABASE_URL"]) {
                try await noTLS.checkConnection(logger: TestEnvironment.logger)
            }
            // sslmode=prefer against the same server falls back to plain.
            try await DatabaseConfiguration(url: "postgres://agentconnect@127.0.0.1:\(TestEnvironment.postgresPort)/postgres?sslmode=prefer")
                .checkConnection(logger: TestEnvironment.logger)
        }
    }

    @Test("the real services become ready and answer an SMS against rediss:// and sslmode=verify-full; an evicting Redis is refused")
    func servicesOverTLS() async throws {
        try await withTLSServers { servers in
            let databaseURL = servers.databaseURL(mode: "verify-full", root: servers.pki.caFile)
            let migrate = try ServiceProcess(
                "migrate", port: TestEnvironment.freePort(), environment: ["DATABASE_URL": databaseURL], logDirectory: servers.directory)
            #expect(await migrate.waitForExit(timeout: .seconds(60)) == 0, "\(migrate.log)")
            let redisURL = "rediss://\(Self.redisCredentials)@localhost:\(servers.redisPort)/5"
            let tlsEnvironment = ["REDIS_URL": redisURL, "REDIS_TLS_CA_FILE": servers.pki.caFile, "DATABASE_URL": databaseURL]
            // (d) ingress, a worker and outbound, all on the TLS servers: a customer's SMS gets its reply.
            try await withStack(.init(extra: tlsEnvironment)) { stack in
                let sent = try await stack.customerSays("hello over TLS", from: "+15557770901")
                let conversationId = try #require(sent["conversationId"]?.string)
                let replies = try await stack.agentMessages(conversationId: conversationId)
                #expect(replies.map { $0["text"]?.string } == ["You said: hello over TLS"])
            }
            let admin = try RedisClient(
                configuration: RedisConfiguration(
                    environment: Environment(["REDIS_URL": redisURL, "REDIS_TLS_CA_FILE": servers.pki.caFile])), logger: TestEnvironment.logger)
            defer { admin.shutdown() }
            #expect(try await admin.command("XLEN", .string(Streams.outbound)).integer ?? 0 >= 1)

            // A Redis that may evict keys (even volatile-*: our dedup keys carry TTLs): the service refuses to run.
            try await admin.command("CONFIG", "SET", "maxmemory-policy", "volatile-lru")
            var environment = TestEnvironment.localEnv
            environment.merge(tlsEnvironment) { _, new in new }
            let ingress = try ServiceProcess(
                "messaging-ingress", port: TestEnvironment.freePort(), environment: environment, logDirectory: servers.directory)
            let status = await ingress.waitForExit(timeout: .seconds(20))
            try await admin.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
            #expect(status != nil && status != 0, "\(ingress.log)")
            #expect(ingress.log.contains("maxmemory-policy") && ingress.log.contains("volatile-lru"), "\(ingress.log)")
            #expect(!ingress.log.contains(Self.redisPassword))

            // A CA that did not sign Redis's certificate: the service refuses to start, naming the variable.
            environment["REDIS_TLS_CA_FILE"] = servers.pki.wrongCAFile
            let wrongCA = try ServiceProcess(
                "messaging-ingress", port: TestEnvironment.freePort(), environment: environment, logDirectory: servers.directory)
            let refused = ContinuousClock.now
            let wrongStatus = await wrongCA.waitForExit(timeout: .seconds(20))
            #expect(wrongStatus != nil && wrongStatus != 0, "\(wrongCA.log)")
            #expect(ContinuousClock.now - refused < .seconds(10))
            #expect(wrongCA.log.contains("REDIS_TLS_CA_FILE") && wrongCA.log.contains("CERTIFICATE_VERIFY_FAILED"), "\(wrongCA.log)")
            #expect(!wrongCA.log.contains(Self.redisPassword))
        }
    }

    // MARK: helpers

    /// Every string in a (nested) reply.
    static func strings(in value: RedisValue) -> [String] {
        if let values = value.array { return values.flatMap { strings(in: $0) } }
        return value.string.map { [$0] } ?? []
    }

    /// Runs `body` (which must throw) and checks that it failed within 6 s with a message naming one of `variables`.
    private func expectFastFailure(naming variables: [String], _ body: @Sendable () async throws -> Void) async throws {
        let started = ContinuousClock.now
        do {
            try await body()
            Issue.record("expected a failure naming \(variables)")
        } catch {
            let text = "\(error)"
            #expect(variables.contains { text.contains($0) }, "\(text)")
            #expect(!text.contains(Self.redisPassword) && !text.contains(TLSServers.defaultPostgresPassword), "\(text)")
        }
        #expect(ContinuousClock.now - started < .seconds(6))
    }

    private func withPostgresClient<T: Sendable>(
        _ configuration: DatabaseConfiguration, _ body: @escaping @Sendable (PostgresClient) async throws -> T
    )
        async throws -> T
    {
        let client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: TestEnvironment.logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await withTimeout(.seconds(30), "PostgreSQL over TLS") { try await body(client) }
        }
    }
}
