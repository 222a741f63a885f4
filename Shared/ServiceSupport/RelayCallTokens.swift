import AgentConnectCore
import EventBus
import Foundation

/// Single-use, per-call tokens for the ConversationRelay socket URL
/// (`<ConversationRelay url="wss://<domain>/ws?token=…">`).
///
/// Twilio signs the full socket URL, query included, so a token in it ties the upgrade's signature to
/// one call: a captured upgrade (URL + `X-Twilio-Signature`) cannot open a second socket, for that
/// call or another. `/twiml` mints a token bound to the CallSid of its signed request; the outbound
/// service mints one before it places a call and binds the CallSid once Twilio has answered with it.
/// voice-relay consumes a token atomically (`GETDEL`) on the upgrade and checks the `setup` frame's
/// `callSid` against it. Keys: `tac:relay:token:<token>` (the grant, JSON) and
/// `tac:relay:token-call:<token>` (a late CallSid binding), both expiring.
package struct RelayCallTokens: Sendable {
    /// What a token allows.
    package struct Grant: Sendable, Equatable {
        /// The call the token was minted for; nil until the outbound service binds it.
        package var callSid: String?
        /// The conversation id our own TwiML named (a signed `<Parameter>`), if any.
        package var conversationId: String?

        package init(callSid: String?, conversationId: String?) {
            self.callSid = callSid
            self.conversationId = conversationId
        }
    }

    /// How long an unused token stays valid (`VOICE_TOKEN_TTL_SECONDS` on voice-relay; covers ringing).
    package static let defaultTTLSeconds = 600

    let redis: RedisClient
    let ttlSeconds: Int

    package init(redis: RedisClient, ttlSeconds: Int = RelayCallTokens.defaultTTLSeconds) {
        self.redis = redis
        self.ttlSeconds = ttlSeconds
    }

    /// Whether `text` has the shape of a token (64 lower-case hex digits); anything else is never looked up.
    package static func isWellFormed(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// A new random token stored with `SET NX EX` (retried on the astronomically unlikely collision).
    package func mint(callSid: String?, conversationId: String?) async throws -> String {
        var fields: [String: JSONValue] = [:]
        if let callSid { fields["callSid"] = .string(callSid) }
        if let conversationId { fields["conversationId"] = .string(conversationId) }
        let value = Array(try JSONEncoder().encode(JSONValue.object(fields)))
        for _ in 0..<3 {
            var generator = SystemRandomNumberGenerator()
            let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
            let reply = try await redis.command("SET", .string(RedisKeys.relayToken(token)), .bytes(value), "NX", "EX", .string(String(ttlSeconds)))
            if reply == .status("OK") { return token }
        }
        throw BusError(.server, "could not store a relay call token")
    }

    /// Binds the CallSid Twilio gave a call placed with `token` (the outbound service, after `Calls.create`).
    package func bind(_ token: String, callSid: String) async throws {
        try await redis.command("SET", .string(RedisKeys.relayTokenCall(token)), .string(callSid), "EX", .string(String(ttlSeconds)))
    }

    /// Takes the token, once: the first caller gets its grant, every later one nil.
    package func consume(_ token: String) async throws -> Grant? {
        guard Self.isWellFormed(token) else { return nil }
        let reply = try await redis.command("GETDEL", .string(RedisKeys.relayToken(token)))
        guard case .bulk(let bytes) = reply, let json = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)) else { return nil }
        return Grant(callSid: json["callSid"]?.string, conversationId: json["conversationId"]?.string)
    }

    /// The CallSid bound to a token after it was minted (outbound calls), waiting up to `timeout` for it.
    package func boundCallSid(_ token: String, timeout: Duration) async throws -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let sid = try await redis.command("GET", .string(RedisKeys.relayTokenCall(token))).string { return sid }
            guard ContinuousClock.now < deadline else { return nil }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
