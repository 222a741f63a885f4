import AgentConnectCore
import EventBus
import NIOConcurrencyHelpers

/// Where live calls are: the voice-relay instance holding each call's socket, so frames sent outside
/// a turn reach the right relay.
package protocol CallRegistry: Sendable {
    /// The relay instance holding the call of `conversationId`; nil when there is no live call.
    func relayInstance(of conversationId: String) async throws -> String?
}

/// The calls voice-relay registers in Redis (``RedisKeys/call(_:)``).
struct RedisCallRegistry: CallRegistry {
    let redis: RedisClient

    func relayInstance(of conversationId: String) async throws -> String? {
        try await redis.command("GET", .string(RedisKeys.call(conversationId))).string
    }
}

/// Calls held in memory, for tests: ``register(_:relayInstance:)`` plays voice-relay's part.
package final class InMemoryCallRegistry: CallRegistry {
    private let calls = NIOLockedValueBox<[String: String]>([:])

    package init() {}

    /// Registers (or, with nil, forgets) the relay holding a call.
    package func register(_ conversationId: String, relayInstance: String?) {
        calls.withLockedValue { $0[conversationId] = relayInstance }
    }

    package func relayInstance(of conversationId: String) async throws -> String? {
        calls.withLockedValue { $0[conversationId] }
    }
}
