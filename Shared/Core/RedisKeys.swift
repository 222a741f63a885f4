/// Every Redis key the services share, other than the streams (``Streams``): one place to read what
/// lives in Redis and who writes it.
package enum RedisKeys {
    // MARK: Deduplication

    /// A published event's dedup key: the event is appended once while this key lives
    /// (messaging-ingress: `<what Twilio signed>`, e.g. `msg:<MessageSid>`).
    package static func dedup(_ key: String) -> String { "tac:dedup:\(key)" }

    /// The dedup key of a conversation's `conversation.ended`: it ends once, whoever notices first.
    package static func endedDedup(_ conversationId: String) -> String { dedup("ended:\(conversationId)") }

    // MARK: Calls (voice-relay)

    /// The relay instance holding a call's socket.
    package static func call(_ conversationId: String) -> String { "tac:call:\(conversationId)" }

    /// A call's state, kept while it outlives the relay holding it.
    package static func callState(_ conversationId: String) -> String { "tac:callstate:\(conversationId)" }

    /// The conversation of a CallSid (callbacks name only the call).
    package static func callConversation(_ callSid: String) -> String { "tac:call-conversation:\(callSid)" }

    /// The prefix of ``relayCalls(_:)`` (for `SCAN MATCH` and scripts).
    package static let relayCallsPrefix = "tac:relay:calls:"

    /// The set of calls a relay instance holds.
    package static func relayCalls(_ instance: String) -> String { relayCallsPrefix + instance }

    /// A relay instance's heartbeat.
    package static func relayAlive(_ instance: String) -> String { "tac:relay:alive:\(instance)" }

    /// The set of relay instances that may hold calls: each relay adds itself as it beats and lists a
    /// call; a peer removes one whose heartbeat expired once its call list is gone. The sweep for dead
    /// relays reads this set instead of scanning the keyspace.
    package static let relayInstances = "tac:relay:instances"

    /// The prefix of ``relayResume(_:)`` (for scripts).
    package static let relayResumePrefix = "tac:relay:resume:"

    /// A call's resume token: the socket URL that reopens the call on another relay.
    package static func relayResume(_ token: String) -> String { relayResumePrefix + token }

    /// A relay call token's grant (``RelayCallTokens``).
    package static func relayToken(_ token: String) -> String { "tac:relay:token:\(token)" }

    /// A relay call token's late CallSid binding.
    package static func relayTokenCall(_ token: String) -> String { "tac:relay:token-call:\(token)" }

    // MARK: Agent workers

    /// The live workers of a consumer group (a sorted set of heartbeats).
    package static func workers(group: String) -> String { "tac:workers:\(group)" }

    /// The lease of one inbound partition in a consumer group.
    package static func partitionLease(group: String, partition: Int) -> String { "tac:lease:\(group):\(partition)" }

    // MARK: The per-call TwiML hook (TwiMLHookChannel)

    /// Kept alive by workers that have a TwiML hook.
    package static let twimlHookLive = "tac:twiml-hook:live"

    /// The list of `/twiml` requests for the hook.
    package static let twimlHookRequests = "tac:twiml-hook:requests"

    /// The reply list of one hook request.
    package static func twimlHookReply(_ requestId: String) -> String { "tac:twiml-hook:reply:\(requestId)" }

    // MARK: Outbound API

    /// A stored answer to an outbound API request with an `Idempotency-Key`.
    package static func idempotency(route: String, key: String) -> String { "tac:idem:\(route):\(key)" }
}
