import AsyncHTTPClient
import EventBus
import ServiceLifecycle

/// Closes the Redis client's connections when the group shuts down.
public struct RedisClientService: Service {
    let client: RedisClient

    public init(client: RedisClient) {
        self.client = client
    }

    public func run() async throws {
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
