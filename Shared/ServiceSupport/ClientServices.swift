import AsyncHTTPClient
import EventBus
import ServiceLifecycle

/// Checks at start that Redis cannot evict our keys (`maxmemory-policy noeviction`, else the
/// service refuses to run), and closes the Redis client's connections when the group shuts down.
public struct RedisClientService: Service {
    let client: RedisClient

    public init(client: RedisClient) {
        self.client = client
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { try await client.requireNoEviction() }
        try? await gracefulShutdown()
        client.shutdown()
    }
}

/// Shuts an AsyncHTTPClient down when the group shuts down.
public struct HTTPClientService: Service {
    let client: HTTPClient

    public init(client: HTTPClient) {
        self.client = client
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}
