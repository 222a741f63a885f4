import AgentConnectCore
import EventBus

/// Which conversation a call belongs to, for Twilio's call callbacks (status, AMD, recording, the
/// `<Connect action>`), which name only the CallSid: the relay records `tac:call-conversation:<CallSid>`
/// at `setup`; a callback for a call not (or no longer) recorded asks the orchestrator once
/// (orchestrated mode) and otherwise uses the CallSid (relay-only mode, where they are the same).
struct CallConversations: Sendable {
    static let ttlSeconds = 24 * 3600
    let redis: RedisClient
    let lookup: ConversationLookup?

    /// Records the call's conversation (a Redis failure only costs the callbacks an orchestrator lookup).
    func record(callSid: String, conversationId: String) async {
        guard callSid != conversationId else { return }
        _ = try? await redis.command(
            "SET", .string(RedisKeys.callConversation(callSid)), .string(conversationId), "EX", .string(String(Self.ttlSeconds)))
    }

    /// The call's conversation id.
    func conversationId(forCall callSid: String) async -> String {
        if let recorded = try? await redis.command("GET", .string(RedisKeys.callConversation(callSid))).string { return recorded }
        if let lookup, let found = await lookup.conversationId(forCall: callSid, within: .seconds(2)) {
            await record(callSid: callSid, conversationId: found)
            return found
        }
        return callSid
    }
}
