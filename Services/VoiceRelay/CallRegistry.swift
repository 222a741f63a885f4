import AgentConnectCore
import EventBus
import Logging
import Metrics
import NIOConcurrencyHelpers

/// The calls this relay holds, and their registration in Redis (`tac:call:<conversation id>` →
/// this instance, with expiry) so a worker on any machine knows where to send the reply frames.
final class CallRegistry: Sendable {
    static let registrationSeconds = 4 * 3600

    let instance: String
    private let redis: RedisClient
    private let calls = NIOLockedValueBox<[String: CallSession]>([:])
    private let accepting = NIOLockedValueBox(true)

    init(instance: String, redis: RedisClient) {
        self.instance = instance
        self.redis = redis
    }

    /// Whether new calls are taken (false while draining).
    var isAccepting: Bool { accepting.withLockedValue { $0 } }

    /// Stops taking new calls.
    func stopAccepting() {
        accepting.withLockedValue { $0 = false }
    }

    var count: Int { calls.withLockedValue { $0.count } }

    func session(_ conversationId: String) -> CallSession? {
        calls.withLockedValue { $0[conversationId] }
    }

    /// Registers a call in Redis with `SET NX` and then locally; false (nothing changed) when the
    /// conversation already has a live call registered, here or on another relay.
    func register(_ session: CallSession) async throws -> Bool {
        let replies = try await redis.send([
            [
                "SET", .string("tac:call:\(session.conversationId)"), .string(instance), "NX", "EX", .string(String(Self.registrationSeconds)),
            ]
        ])
        if let error = replies.first(where: \.isError) { throw BusError(.server, "could not register the call: \(error)") }
        guard replies.first == .status("OK") else { return false }
        calls.withLockedValue { $0[session.conversationId] = session }
        Gauge(label: "agentconnect_live_calls").record(count)
        let listed = try await redis.send([["SADD", .string(RelayLiveness.callsKey(instance)), .string(session.conversationId)]])
        if let error = listed.first(where: \.isError) {
            await unregister(session.conversationId)
            throw BusError(.server, "could not list the call: \(error)")
        }
        return true
    }

    /// Removes a call; the Redis key is deleted only if it still names this instance.
    func unregister(_ conversationId: String) async {
        calls.withLockedValue { $0[conversationId] = nil }
        Gauge(label: "agentconnect_live_calls").record(count)
        _ = try? await redis.send(Self.releaseCommands(conversationId: conversationId, owner: instance))
    }

    /// Drops a call's registration — the `tac:call:<id>` key only while it still names `owner` — and
    /// its entry in the owner's call list (a hang-up here, or the sweep of a dead relay's calls).
    static func releaseCommands(conversationId: String, owner: String) -> [[RedisArgument]] {
        [
            [
                "EVAL", "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", "1",
                .string("tac:call:\(conversationId)"), .string(owner),
            ],
            ["SREM", .string(RelayLiveness.callsKey(owner)), .string(conversationId)],
        ]
    }
}
