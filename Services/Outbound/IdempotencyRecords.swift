import AgentConnectCore
import EventBus
import ServiceSupport

/// What an `Idempotency-Key` stands for when a request claims it.
enum IdempotencyClaim: Sendable, Equatable {
    /// The key was free: this request goes ahead, and completes or releases it.
    case claimed
    /// An earlier request with this key is still running.
    case inProgress
    /// An earlier request with this key finished: its response body, answered again.
    case completed(String)
}

/// The app-facing API's `Idempotency-Key` records: one request per key goes ahead, a retry answers
/// its result. Redis in the service (``RedisIdempotencyRecords``), held in memory in tests.
protocol IdempotencyRecords: Sendable {
    /// Claims `key` for a request (for `ttlSeconds`), or says what an earlier request with it left.
    func claim(_ key: String, ttlSeconds: Int) async throws -> IdempotencyClaim
    /// Stores the claimed request's response body, answered to every retry for `ttlSeconds`.
    func complete(_ key: String, response: [UInt8], ttlSeconds: Int) async throws
    /// Frees the key of a request that failed, so a retry runs again.
    func release(_ key: String) async throws
}

/// The records in Redis: `SET NX EX` of `pending`, then the response body (`RedisKeys.idempotency`).
struct RedisIdempotencyRecords: IdempotencyRecords {
    let redis: RedisClient

    func claim(_ key: String, ttlSeconds: Int) async throws -> IdempotencyClaim {
        let claimed = try await redis.command("SET", .string(key), "pending", "NX", "EX", .string(String(ttlSeconds)))
        guard claimed != .status("OK") else { return .claimed }
        let stored = try await redis.command("GET", .string(key)).string ?? "pending"
        return stored == "pending" ? .inProgress : .completed(stored)
    }

    func complete(_ key: String, response: [UInt8], ttlSeconds: Int) async throws {
        _ = try await redis.command("SET", .string(key), .bytes(response), "EX", .string(String(ttlSeconds)))
    }

    func release(_ key: String) async throws {
        _ = try await redis.command("DEL", .string(key))
    }
}

/// The single-use socket tokens of placed calls (``RelayCallTokens`` in Redis; held in memory in tests).
protocol CallTokenIssuer: Sendable {
    /// A new token, bound to no call yet.
    func mint(callSid: String?, conversationId: String?) async throws -> String
    /// Binds the CallSid Twilio gave the call placed with `token`.
    func bind(_ token: String, callSid: String) async throws
}

extension RelayCallTokens: CallTokenIssuer {}
