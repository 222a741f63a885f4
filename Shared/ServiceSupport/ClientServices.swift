import AgentConnectCore
import AsyncHTTPClient
import EventBus
import Logging
import ServiceLifecycle
import Store
import TwilioKit

/// Checks at start that Redis cannot evict our keys (`maxmemory-policy noeviction`, else the
/// service refuses to run), and closes the Redis client's connections when the group shuts down.
package struct RedisClientService: Service {
    let client: RedisClient

    package init(client: RedisClient) {
        self.client = client
    }

    package func run() async throws {
        try await cancelWhenGracefulShutdown { try await client.requireNoEviction() }
        try? await gracefulShutdown()
        client.shutdown()
    }
}

/// Shuts an HTTP client down when the group shuts down.
package struct HTTPClientService: Service {
    let shutdown: @Sendable () async throws -> Void

    package init(client: HTTPClient) {
        shutdown = { try await client.shutdown() }
    }

    package init(client: HTTP1Client) {
        shutdown = { await client.shutdown() }
    }

    package func run() async throws {
        try? await gracefulShutdown()
        try await shutdown()
    }
}

/// Checks the PostgreSQL settings once at start: a refused TLS handshake (wrong CA, host name, no TLS
/// under `require`) stops the service with an error naming `DATABASE_URL`, instead of a pool that
/// retries quietly. While the server is merely unreachable it keeps trying, and the service runs.
package struct DatabaseCheckService: Service {
    let configuration: DatabaseConfiguration
    let logger: Logger

    package init(configuration: DatabaseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    package func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await configuration.checkConnection(timeout: .seconds(10), logger: logger)
                    return
                } catch let error as ConfigurationError {
                    throw error
                } catch {
                    logger.warning("PostgreSQL not reachable yet", metadata: ["error": "\(error)"])
                    try await Task.sleep(for: .seconds(2))
                }
            }
        }
        try? await gracefulShutdown()
    }
}

/// The Redis clients of a service that keeps calls' keys or reads their streams: `main` (`REDIS_URL`)
/// and `calls` (``CommonConfiguration/callsRedis``), the same client when `VOICE_REDIS_URL` is unset.
package struct RedisClients: Sendable {
    package let main: RedisClient
    package let calls: RedisClient

    package init(common: CommonConfiguration, logger: Logger) {
        main = RedisClient(configuration: common.redis, logger: logger)
        calls = common.voiceRedis.map { RedisClient(configuration: $0, logger: logger) } ?? main
    }

    /// Whether calls are on a Redis of their own.
    package var separate: Bool { calls !== main }

    /// A ``RedisClientService`` for each client.
    package var services: [any Service] {
        separate ? [RedisClientService(client: main), RedisClientService(client: calls)] : [RedisClientService(client: main)]
    }
}
