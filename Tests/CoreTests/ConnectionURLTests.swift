import AgentConnectCore
import Foundation
import NIOSSL
import ServiceSupport
import Store
import Testing

@testable import EventBus

@Suite("Connection URLs: REDIS_URL and DATABASE_URL")
struct ConnectionURLTests {
    @Test("rediss:// with an ACL user, percent-encoded credentials and a database")
    func redisURL() throws {
        let redis = try RedisConfiguration(url: "rediss://app%40prod:p%3Aw%2Fd%25@cache.example.com:6380/4")
        #expect(redis.tls)
        #expect(redis.username == "app@prod")
        #expect(redis.password == "p:w/d%")
        #expect(redis.host == "cache.example.com")
        #expect(redis.port == 6380)
        #expect(redis.database == 4)

        let plain = try RedisConfiguration(url: "redis://127.0.0.1")
        #expect(!plain.tls && plain.port == 6379 && plain.database == 0 && plain.username == nil && plain.password == nil)
        let passwordOnly = try RedisConfiguration(url: "redis://:secret@[::1]:7000/")
        #expect(passwordOnly.host == "::1" && passwordOnly.port == 7000 && passwordOnly.username == nil && passwordOnly.password == "secret")
        // An unencoded '@' or '/' in the password still parses (the last '@' ends the credentials).
        let raw = try RedisConfiguration(url: "redis://u:a@b/c@host:1234/2")
        #expect(raw.password == "a@b/c" && raw.host == "host" && raw.database == 2)
    }

    @Test("bad Redis settings are errors naming the variable, never showing the password")
    func redisErrors() throws {
        for url in ["http://user:hunter2@host", "redis://user:hunter2@host:99999", "redis://user:hunter2@host/x", "redis://user:hunter2@"] {
            let error = try #require(throws: ConfigurationError.self) { try RedisConfiguration(url: url) }
            #expect(error.variable == "REDIS_URL")
            #expect(!"\(error)".contains("hunter2"), "\(error)")
        }
        let notTLS = Environment(["REDIS_URL": "redis://h", "REDIS_TLS_CA_FILE": "/etc/hostname"])
        let error = try #require(throws: ConfigurationError.self) { try RedisConfiguration(environment: notTLS) }
        #expect(error.variable == "REDIS_TLS_CA_FILE")
        let missing = Environment(["REDIS_URL": "rediss://h", "REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"])
        #expect(throws: ConfigurationError.self) { try RedisConfiguration(environment: missing) }
        let timeouts = try RedisConfiguration(environment: Environment(["REDIS_URL": "rediss://:pw@h", "REDIS_COMMAND_TIMEOUT_MS": "750"]))
        #expect(timeouts.commandTimeout == .milliseconds(750))
        #expect("\(timeouts)" == "rediss://:***@h:6379/0")
    }

    @Test(
        "VOICE_REDIS_URL: unset or naming REDIS_URL's keyspace means calls share it; else its own, with REDIS_URL's timeouts and errors that name it")
    func voiceRedisURL() throws {
        func common(_ values: [String: String]) throws -> CommonConfiguration {
            try CommonConfiguration(environment: Environment(["REDIS_URL": "redis://cache:6379/2"].merging(values) { _, new in new }), defaultPort: 1)
        }
        #expect(try common([:]).voiceRedis == nil)
        #expect(try common(["VOICE_REDIS_URL": " "]).voiceRedis == nil)
        #expect(try common(["VOICE_REDIS_URL": "redis://cache/2"]).voiceRedis == nil)
        #expect(try common(["VOICE_REDIS_URL": "redis://cache/2"]).callsRedis.database == 2)
        let apart = try common(["VOICE_REDIS_URL": "redis://:pw@calls:6380", "REDIS_CONNECT_TIMEOUT_MS": "900"])
        #expect(apart.voiceRedis.map { "\($0)" } == "redis://:***@calls:6380/0")
        #expect(apart.callsRedis.connectTimeout == .milliseconds(900) && apart.redis.host == "cache")
        #expect(apart.callsRedis.variable == "VOICE_REDIS_URL" && apart.redis.variable == "REDIS_URL")
        let error = try #require(throws: ConfigurationError.self) { try common(["VOICE_REDIS_URL": "http://calls"]) }
        #expect(error.variable == "VOICE_REDIS_URL")
    }

    @Test("sslmode values, sslrootcert and percent-decoded credentials")
    func postgresURL() throws {
        let database = try DatabaseConfiguration(url: "postgresql://app%2Bro:s%40cr%3Ft@db.example.com:6432/agent%20db?sslmode=verify-full")
        #expect(database.username == "app+ro")
        #expect(database.password == "s@cr?t")
        #expect(database.database == "agent db")
        #expect(database.port == 6432)
        #expect(database.sslMode == .verifyFull)
        #expect(database.tlsConfiguration?.certificateVerification == .fullVerification)
        #expect(!"\(database)".contains("s@cr?t"))

        let byDefault = try DatabaseConfiguration(url: "postgres://app@db/agentconnect")
        #expect(byDefault.sslMode == .prefer)
        #expect(byDefault.tlsConfiguration?.certificateVerification == CertificateVerification.none)
        #expect(try DatabaseConfiguration(url: "postgres://app@db/x?sslmode=disable").tlsConfiguration == nil)
        #expect(try DatabaseConfiguration(url: "postgres://app@db/x?sslmode=allow").sslMode == .allow)
        #expect(
            try DatabaseConfiguration(url: "postgres://app@db/x?sslmode=require").tlsConfiguration?.certificateVerification
                == CertificateVerification.none)
        #expect(
            try DatabaseConfiguration(url: "postgres://app@db/x?sslmode=verify-ca").tlsConfiguration?.certificateVerification
                == .noHostnameVerification)
        #expect(try DatabaseConfiguration(url: "postgres://app@db/x?sslmode=verify-full&sslrootcert=system").sslRootCert == "system")
        #expect(try DatabaseConfiguration(url: "postgres://app@db/x?connect_timeout=3").connectTimeout == .seconds(3))
        // No startup parameters (PgBouncer refuses unknown ones).
        #expect(byDefault.clientConfiguration.options.additionalStartupParameters.isEmpty)
        #expect(byDefault.clientConfiguration.options.maximumConnections == 10)
        // No keep-alive query (its timer cost every statement): connections close after 60 s unused
        // instead, all of them (none is kept open as a minimum).
        #expect(byDefault.clientConfiguration.options.keepAliveBehavior == nil)
        #expect(byDefault.clientConfiguration.options.connectionIdleTimeout <= .seconds(60))
        #expect(byDefault.clientConfiguration.options.minimumConnections == 0)
    }

    @Test("sslrootcert is loaded at parse time: a missing or non-PEM file is an error naming DATABASE_URL")
    func rootCertificate() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ac-urltest-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let notPEM = directory.appendingPathComponent("not.pem").path
        try Data("hello".utf8).write(to: URL(fileURLWithPath: notPEM))
        let error = try #require(throws: ConfigurationError.self) {
            try DatabaseConfiguration(url: "postgres://app:hunter2@db/x?sslmode=verify-full&sslrootcert=\(notPEM)")
        }
        #expect(error.variable == "DATABASE_URL" && "\(error)".contains("sslrootcert") && !"\(error)".contains("hunter2"))
        #expect(throws: ConfigurationError.self) {
            try DatabaseConfiguration(url: "postgres://app@db/x?sslmode=verify-full&sslrootcert=/nonexistent/root.crt")
        }
    }

    @Test("unknown sslmode or parameter, and malformed URLs, are clear errors without the password")
    func postgresErrors() throws {
        let unknown = try #require(throws: ConfigurationError.self) {
            try DatabaseConfiguration(url: "postgres://app:hunter2@db/x?sslmode=verify")
        }
        #expect("\(unknown)".contains("sslmode") && "\(unknown)".contains("verify-full"))
        for url in [
            "postgres://app:hunter2@db/x?sslmode=verify", "postgres://app:hunter2@db/x?application_name=y", "mysql://app:hunter2@db/x",
            "postgres://app:hunter2@db:0/x", "postgres://app:hunter2@db", "postgres://:hunter2@db/x", "postgres:/app:hunter2@db/x",
        ] {
            let error = try #require(throws: ConfigurationError.self) { try DatabaseConfiguration(url: url) }
            #expect(error.variable == "DATABASE_URL")
            #expect(!"\(error)".contains("hunter2"), "\(error)")
        }
        #expect(throws: ConfigurationError.self) {
            try CommonConfiguration(environment: Environment(["DATABASE_URL": "postgres://a@h/d", "DATABASE_POOL_SIZE": "0"]), defaultPort: 1)
        }
        let common = try CommonConfiguration(
            environment: Environment(["DATABASE_URL": "postgres://a@h/d?sslmode=require", "DATABASE_POOL_SIZE": "25"]), defaultPort: 1)
        #expect(common.database.poolSize == 25 && common.database.clientConfiguration.options.maximumConnections == 25)
        #expect(common.database.preparedStatements)
        // Kept connections: none unless set (PostgresNIO 1.33.2's pool can trap on a PostgreSQL restart
        // with some kept), never more than the pool; none for a configuration built in code.
        #expect(common.database.minimumConnections == 0 && common.database.clientConfiguration.options.minimumConnections == 0)
        let small = try CommonConfiguration(
            environment: Environment(["DATABASE_URL": "postgres://a@h/d", "DATABASE_POOL_SIZE": "1", "DATABASE_POOL_MIN": "1"]), defaultPort: 1)
        #expect(small.database.minimumConnections == 1)
        let kept = try CommonConfiguration(
            environment: Environment(["DATABASE_URL": "postgres://a@h/d", "DATABASE_POOL_SIZE": "8", "DATABASE_POOL_MIN": "8"]), defaultPort: 1)
        #expect(kept.database.clientConfiguration.options.minimumConnections == 8)
        let tooMany = try #require(throws: ConfigurationError.self) {
            try CommonConfiguration(
                environment: Environment(["DATABASE_URL": "postgres://a@h/d", "DATABASE_POOL_SIZE": "3", "DATABASE_POOL_MIN": "4"]), defaultPort: 1)
        }
        #expect(tooMany.variable == "DATABASE_POOL_MIN")
        #expect(try DatabaseConfiguration(url: "postgres://a@h/d").clientConfiguration.options.minimumConnections == 0)
        let plain = try CommonConfiguration(
            environment: Environment(["DATABASE_URL": "postgres://a@h/d", "DATABASE_PREPARED_STATEMENTS": "off"]), defaultPort: 1)
        #expect(!plain.database.preparedStatements)
        let refused = try #require(throws: ConfigurationError.self) {
            try CommonConfiguration(
                environment: Environment(["DATABASE_URL": "postgres://a@h/d", "DATABASE_PREPARED_STATEMENTS": "maybe"]), defaultPort: 1)
        }
        #expect(refused.variable == "DATABASE_PREPARED_STATEMENTS")
    }

    @Test("blocking commands get their wait on top of the deadline")
    func blockingTime() {
        #expect(RedisConnection.blockMilliseconds(["XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "BLOCK", "2000", "STREAMS", "s", ">"]) == 2000)
        #expect(RedisConnection.blockMilliseconds(["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]) == 0)
        #expect(RedisConnection.blockMilliseconds(["XREAD", "COUNT", "1", "STREAMS", "BLOCK", "0"]) == nil)
        #expect(RedisConnection.blockMilliseconds(["WAITAOF", "1", "0", "250"]) == 250)
        #expect(RedisConnection.blockMilliseconds(["XADD", "s", "*", "BLOCK", "5"]) == nil)
    }

    @Test("masking hides the password, also in malformed URLs")
    func masking() {
        #expect(ConnectionURL.masked("redis://user:pass@host:6379/0") == "redis://user:***@host:6379/0")
        #expect(ConnectionURL.masked("rediss://:pass@host") == "rediss://:***@host")
        #expect(ConnectionURL.masked("postgres://u:p@ss/w@rd@db/x?sslmode=require") == "postgres://u:***@db/x?sslmode=require")
        #expect(ConnectionURL.masked("postgres://u@db/x") == "postgres://u@db/x")
        #expect(ConnectionURL.masked("redis://host:6379") == "redis://host:6379")
        #expect(ConnectionURL.masked("user:pass@host") == "user:***@host")
    }
}
