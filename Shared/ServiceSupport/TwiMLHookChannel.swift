import AgentConnectCore
import EventBus
import Foundation
import TwilioKit

/// The per-call TwiML hook across processes: voice-relay answers `/twiml`, but the author's hook
/// (`VoiceChannel.onInboundCallTwiML`) runs in the agent workers. They meet in Redis, which both
/// already use, so no new network path, port or credential is needed:
///
/// - a worker with a hook keeps `tac:twiml-hook:live` alive (a key with a 5 s expiry, renewed) and
///   waits on the list `tac:twiml-hook:requests` (`BLPOP`, on a connection of its own);
/// - `/twiml` checks the key (one `GET`; no worker with a hook costs nothing more), pushes the call's
///   webhook fields with a deadline, and waits on its own reply list for at most
///   `VOICE_TWIML_HOOK_TIMEOUT_MS` (1.5 s by default), well within Twilio's 15 s webhook timeout;
/// - any worker answers (the hook must be a pure function of the request, as in TAC); a request
///   whose deadline passed before a worker took it is skipped, and a late answer expires unread.
///
/// No answer in time, an error, or no live hook: the call gets the environment's settings
/// (`CONVERSATION_RELAY_*`), so the hook can never stop a call from being answered.
package enum TwiMLHookChannel {
    /// Renewed by workers that have a hook registered (``RedisKeys/twimlHookLive``).
    package static let liveKey = RedisKeys.twimlHookLive

    /// One request: the voice webhook's fields and the deadline (Unix milliseconds).
    package struct Request: Sendable, Codable {
        package var id: String
        package var deadlineMs: Int64
        package var fields: [String: String]

        package init(id: String, deadlineMs: Int64, fields: [String: String]) {
            self.id = id
            self.deadlineMs = deadlineMs
            self.fields = fields
        }
    }

    /// One answer: the call's options, or why there are none.
    package struct Reply: Sendable, Codable {
        package var options: ConversationRelayOptions?
        package var error: String?

        package init(options: ConversationRelayOptions?, error: String?) {
            self.options = options
            self.error = error
        }
    }

    /// Asks a worker's hook for a call's options; nil when no worker has a hook, none answered within
    /// `timeout`, the hook failed, or Redis is unavailable. Throws only ``CancellationError``.
    package static func ask(redis: RedisClient, fields: [String: String], timeout: Duration) async -> Reply? {
        guard (try? await redis.command("GET", .string(RedisKeys.twimlHookLive)).string) != nil else { return nil }
        let id = BusEvent.newID()
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        let request = Request(id: id, deadlineMs: Int64(deadline.timeIntervalSince1970 * 1000), fields: fields)
        guard let body = try? JSONEncoder().encode(request) else { return nil }
        do {
            try await redis.command("RPUSH", .string(RedisKeys.twimlHookRequests), .bytes(Array(body)))
            let seconds = String(format: "%.3f", max(0.01, Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18))
            let reply = try await withTimeout(timeout + .milliseconds(250), "waiting for the TwiML hook") {
                try await redis.withBlockingConnection { try await $0.command("BLPOP", .string(RedisKeys.twimlHookReply(id)), .string(seconds)) }
            }
            guard let text = reply.array?.last?.string else { return nil }
            return try JSONDecoder().decode(Reply.self, from: Data(text.utf8))
        } catch {
            return nil
        }
    }

    /// Serves requests with `hook` until cancelled (a worker's service).
    package static func serve(redis: RedisClient, hook: @escaping @Sendable ([String: String]) async throws -> ConversationRelayOptions?) async {
        var nextBeat = ContinuousClock.now
        while !Task.isCancelled {
            do {
                if ContinuousClock.now >= nextBeat {
                    nextBeat = .now + .milliseconds(1500)
                    try await redis.command("SET", .string(RedisKeys.twimlHookLive), "1", "PX", "5000")
                }
                let popped = try await redis.withBlockingConnection { try await $0.command("BLPOP", .string(RedisKeys.twimlHookRequests), "1") }
                guard let text = popped.array?.last?.string, let request = try? JSONDecoder().decode(Request.self, from: Data(text.utf8)) else {
                    continue
                }
                let remaining = Double(request.deadlineMs) / 1000 - Date().timeIntervalSince1970
                guard remaining > 0 else { continue }
                let reply: Reply
                do {
                    let options = try await withTimeout(.milliseconds(Int64(remaining * 1000)), "the TwiML hook") { try await hook(request.fields) }
                    reply = Reply(options: options, error: nil)
                } catch {
                    reply = Reply(options: nil, error: "\(error)")
                }
                let encoded = try JSONEncoder().encode(reply)
                _ = try await redis.send([
                    ["RPUSH", .string(RedisKeys.twimlHookReply(request.id)), .bytes(Array(encoded))],
                    ["PEXPIRE", .string(RedisKeys.twimlHookReply(request.id)), "10000"],
                ])
            } catch is CancellationError {
                return
            } catch {
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}
