import NIOConcurrencyHelpers

/// A Lua script sent as `EVALSHA` with its SHA-1 digest instead of its whole text with `EVAL` on
/// every call (Redis then neither reads nor hashes the text again).
///
/// The digest is learned once per process from `SCRIPT LOAD`, sent in the same write as the first
/// call's `EVAL`. A server that does not have the script (`NOSCRIPT`: restarted, `SCRIPT FLUSH`, a
/// failover) ran nothing, so the call is simply sent again with `EVAL` (and the digest re-learned).
/// A user not allowed `SCRIPT LOAD` (`NOPERM`) keeps using `EVAL`.
package final class RedisScript: Sendable {
    private enum Digest {
        case unknown
        case known(String)
        /// `SCRIPT LOAD` is refused: `EVAL` every time.
        case refused
    }

    /// The Lua source.
    package let source: String
    private let digest = NIOLockedValueBox(Digest.unknown)

    package init(_ source: String) {
        self.source = source
    }

    /// Whether calls go out as `EVALSHA` now (for tests).
    var sendsDigest: Bool {
        digest.withLockedValue {
            if case .known = $0 { return true }
            return false
        }
    }

    /// Runs the script with `keys` and `arguments`, followed in the same write by `then` (e.g.
    /// `WAITAOF`); returns the script's reply (an `.error` value for an error reply) followed by the
    /// replies of `then`.
    package func run(
        on client: RedisClient, keys: [RedisArgument], arguments: [RedisArgument], then: [[RedisArgument]] = []
    ) async throws -> [RedisValue] {
        let tail: [RedisArgument] = [.string(String(keys.count))] + keys + arguments
        switch digest.withLockedValue({ $0 }) {
        case .known(let sha):
            let replies = try await client.send([["EVALSHA", .string(sha)] + tail] + then)
            guard case .error(let message) = replies[0], message.hasPrefix("NOSCRIPT") else { return replies }
            // Nothing ran: send it again with its text.
            digest.withLockedValue { $0 = .unknown }
            return try await load(on: client, tail: tail, then: then)
        case .refused:
            return try await client.send([["EVAL", .string(source)] + tail] + then)
        case .unknown:
            return try await load(on: client, tail: tail, then: then)
        }
    }

    /// `SCRIPT LOAD` (to learn the digest) and `EVAL`, in one write.
    private func load(on client: RedisClient, tail: [RedisArgument], then: [[RedisArgument]]) async throws -> [RedisValue] {
        let replies = try await client.send([["SCRIPT", "LOAD", .string(source)], ["EVAL", .string(source)] + tail] + then)
        switch replies[0] {
        case .error(let message) where message.hasPrefix("NOPERM"):
            digest.withLockedValue { $0 = .refused }
        default:
            if let sha = replies[0].string { digest.withLockedValue { $0 = .known(sha) } }
        }
        return Array(replies.dropFirst())
    }
}
