import AgentConnectCore
import NIOConcurrencyHelpers

/// What an `Idempotency-Key` stands for when a request claims it.
package enum IdempotencyClaim: Sendable, Equatable {
    /// The key was free: this request goes ahead, and completes or releases it.
    case claimed
    /// An earlier request with this key is still running.
    case inProgress
    /// An earlier request with this key finished: its response body, answered again.
    case completed(String)
}

/// `Idempotency-Key` records: one request per key goes ahead, a retry answers its result (the
/// outbound API's). ``RedisIdempotencyRecords`` in the service, ``InMemoryIdempotencyRecords`` in tests.
package protocol IdempotencyRecords: Sendable {
    /// Claims `key` for a request (for `ttlSeconds`), or says what an earlier request with it left.
    func claim(_ key: String, ttlSeconds: Int) async throws -> IdempotencyClaim
    /// Stores the claimed request's response body, answered to every retry for `ttlSeconds`.
    func complete(_ key: String, response: [UInt8], ttlSeconds: Int) async throws
    /// Frees the key of a request that failed, so a retry runs again.
    func release(_ key: String) async throws
}

/// The records in Redis: `SET NX EX` of `pending`, then the response body; `DEL` on a release.
package struct RedisIdempotencyRecords: IdempotencyRecords {
    let redis: RedisClient

    package init(redis: RedisClient) {
        self.redis = redis
    }

    package func claim(_ key: String, ttlSeconds: Int) async throws -> IdempotencyClaim {
        let claimed = try await redis.command("SET", .string(key), "pending", "NX", "EX", .string(String(ttlSeconds)))
        guard claimed != .status("OK") else { return .claimed }
        let stored = try await redis.command("GET", .string(key)).string ?? "pending"
        return stored == "pending" ? .inProgress : .completed(stored)
    }

    package func complete(_ key: String, response: [UInt8], ttlSeconds: Int) async throws {
        _ = try await redis.command("SET", .string(key), .bytes(response), "EX", .string(String(ttlSeconds)))
    }

    package func release(_ key: String) async throws {
        _ = try await redis.command("DEL", .string(key))
    }
}

/// The records held in memory with Redis's rules, for tests (keys do not expire).
package final class InMemoryIdempotencyRecords: IdempotencyRecords {
    /// Each key's response body, or nil while its request runs.
    private let records = NIOLockedValueBox<[String: String?]>([:])

    package init() {}

    package func claim(_ key: String, ttlSeconds: Int) async throws -> IdempotencyClaim {
        records.withLockedValue { records in
            guard let stored = records[key] else {
                records[key] = .some(nil)
                return .claimed
            }
            return stored.map { .completed($0) } ?? .inProgress
        }
    }

    package func complete(_ key: String, response: [UInt8], ttlSeconds: Int) async throws {
        records.withLockedValue { $0[key] = .some(String(decoding: response, as: UTF8.self)) }
    }

    package func release(_ key: String) async throws {
        _ = records.withLockedValue { $0.removeValue(forKey: key) }
    }
}
