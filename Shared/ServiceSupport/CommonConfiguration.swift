import AgentConnectCore
import EventBus
import Foundation
import Store

/// Settings every service reads (each documented in .env.example), validated at start-up.
package struct CommonConfiguration: Sendable {
    /// Bind address (`HTTP_HOST`).
    package var host: String
    /// Port (`HTTP_PORT`).
    package var port: Int
    /// `REDIS_URL`, `REDIS_TLS_CA_FILE`, `REDIS_COMMAND_TIMEOUT_MS`, `REDIS_CONNECT_TIMEOUT_MS`.
    package var redis: RedisConfiguration
    /// `VOICE_REDIS_URL`: a Redis of their own for calls (the relays' keys and streams, the voice
    /// partitions the workers read, the call tokens outbound issues), or nil: calls share `REDIS_URL`.
    /// See ``callsRedis``.
    package var voiceRedis: RedisConfiguration?
    /// `DATABASE_URL` (with `sslmode`/`sslrootcert`), `DATABASE_POOL_SIZE`, `DATABASE_POOL_MIN` and
    /// `DATABASE_PREPARED_STATEMENTS`.
    package var database: DatabaseConfiguration
    /// This replica's name (`INSTANCE_ID`, default hostname-pid): consumer names, voice routing.
    package var instanceId: String
    /// Number of inbound partition streams (`TAC_INBOUND_PARTITIONS`); the same on every service.
    package var inboundPartitions: Int
    /// `BUS_STREAM_RETENTION_SECONDS`: how long entries stay on each stream (trimmed by age, `MINID`).
    package var streamRetentionSeconds: Int
    /// `BUS_DURABILITY`: what an accepted webhook waits for (`auto`: `WAITAOF` on Redis 7.2+ with AOF).
    package var busDurability: BusDurability

    package init(environment: Environment, defaultPort: Int) throws {
        host = environment.string("HTTP_HOST", default: "127.0.0.1")
        port = try environment.int("HTTP_PORT", default: defaultPort, range: 0...65535)
        // Parsed by their own types (not `Environment.url`), whose errors never show the password.
        redis = try RedisConfiguration(environment: environment)
        voiceRedis = try RedisConfiguration.voice(environment: environment)
        // The same keyspace named twice is one Redis (two readers of one partition would split its turns).
        if let voice = voiceRedis, voice.host == redis.host, voice.port == redis.port, voice.database == redis.database { voiceRedis = nil }
        database = try DatabaseConfiguration(
            url: environment.string("DATABASE_URL") ?? "postgres://agentconnect:agentconnect@127.0.0.1:5432/agentconnect")
        database.poolSize = try environment.int("DATABASE_POOL_SIZE", default: 10, range: 1...1000)
        database.minimumConnections = try environment.int(
            "DATABASE_POOL_MIN", default: min(DatabaseConfiguration.defaultMinimumConnections, database.poolSize), range: 0...1000)
        guard database.minimumConnections <= database.poolSize else {
            throw ConfigurationError(variable: "DATABASE_POOL_MIN", reason: "must not exceed DATABASE_POOL_SIZE (\(database.poolSize))")
        }
        database.preparedStatements = try environment.bool("DATABASE_PREPARED_STATEMENTS", default: true)
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "local"
        instanceId = environment.string("INSTANCE_ID") ?? "\(host)-\(ProcessInfo.processInfo.processIdentifier)"
        guard instanceId.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw ConfigurationError(variable: "INSTANCE_ID", reason: "may hold only letters, digits, '-', '_' and '.'")
        }
        inboundPartitions = try environment.int("TAC_INBOUND_PARTITIONS", default: 16, range: 1...1024)
        streamRetentionSeconds = try environment.int("BUS_STREAM_RETENTION_SECONDS", default: 7 * 86_400, range: 3600...365 * 86_400)
        guard let durability = BusDurability.fromSetting(environment.string("BUS_DURABILITY")) else {
            throw ConfigurationError(variable: "BUS_DURABILITY", reason: "must be auto, waitaof or none")
        }
        busDurability = durability
    }

    /// The Redis that carries calls: `VOICE_REDIS_URL` when set, else `REDIS_URL`.
    package var callsRedis: RedisConfiguration { voiceRedis ?? redis }
}
