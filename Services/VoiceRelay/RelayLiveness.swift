import AgentConnectCore
import EventBus
import Logging
import Metrics
import ServiceLifecycle

/// Calls on a relay that died (`kill -9`, a lost node) still end, once.
///
/// Every relay keeps `tac:relay:alive:<instance>` alive (a beat a second, expiring after
/// `VOICE_RELAY_LIVENESS_TTL_MS`, 15 s: a relay that stalls a few seconds is not dead) and lists its calls in
/// `tac:relay:calls:<instance>`, and names itself in `tac:relay:instances`. Every two seconds each
/// relay reads that set (a few members, whatever the size of the keyspace: no `SCAN`) for relays that
/// stopped beating: their conversations get `conversation.ended` (reason `relay_lost`, with the same
/// dedup key a normal hang-up uses, so it is published once whoever notices first), the list is
/// removed, and then the relay leaves the set. A call that another relay took over meanwhile (a
/// reconnect) is left alone: each call is first claimed for ending atomically (its registration must
/// still name the dead relay; it then holds a tombstone no takeover accepts), and only then ended.
/// A relay's first sweep, and one every ``legacyScanInterval`` after, also scans the keyspace for
/// relays that never joined the set (a version before it, during a rolling upgrade).
struct RelayLiveness: Service {
    let instance: String
    let redis: RedisClient
    let bus: any EventBus
    let partitions: Int
    let relayOnly: Bool
    let logger: Logger
    var beat: Duration = .seconds(1)
    var ttlMilliseconds = 15_000
    /// Whether to leave the heartbeat to expire on exit instead of deleting it (calls were handed over:
    /// their reconnects get the heartbeat's lifetime before a peer's sweep ends the ones not taken over).
    var keepHeartbeatOnExit: @Sendable () -> Bool = { false }
    /// How often the keyspace is scanned for relays of a version before the set (the first sweep
    /// scans too).
    var legacyScanInterval: Duration = .seconds(600)

    func run() async throws {
        var sinceSweep = Duration.zero
        var nextScan = ContinuousClock.now
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await beatOnce()
                if sinceSweep >= .seconds(2) {
                    sinceSweep = .zero
                    if ContinuousClock.now >= nextScan {
                        try await joinUnlistedRelays()
                        nextScan = .now + legacyScanInterval
                    }
                    try await sweep()
                }
            } catch {
                logger.warning("relay liveness: Redis unavailable", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: beat)
            sinceSweep += beat
        }
        // A relay that drained its calls leaves nothing to sweep; stop beating, and leave the set.
        if !keepHeartbeatOnExit() {
            _ = try? await redis.send([["DEL", .string(RedisKeys.relayAlive(instance))], Self.leaveCommand(instance)])
        }
    }

    /// The heartbeat, and this relay's name in the set of relays (one round trip).
    func beatOnce() async throws {
        let replies = try await redis.send([
            ["SET", .string(RedisKeys.relayAlive(instance)), "1", "PX", .string(String(ttlMilliseconds))],
            ["SADD", .string(RedisKeys.relayInstances), .string(instance)],
        ])
        if let error = replies.first(where: \.isError) { throw BusError(.server, "relay heartbeat refused: \(error)") }
    }

    /// Ends the calls of relays that stopped beating, and drops them from the set once their call
    /// list is gone.
    func sweep() async throws {
        let members = try await redis.command("SMEMBERS", .string(RedisKeys.relayInstances)).array?.compactMap(\.string) ?? []
        for owner in members where owner != instance {
            if try await redis.command("EXISTS", .string(RedisKeys.relayAlive(owner))).integer == 1 { continue }
            try await endCalls(of: owner, key: RedisKeys.relayCalls(owner))
            try await redis.command(Self.leaveCommand(owner))
        }
    }

    /// Adds to the set the relays that are not in it: call lists and heartbeats written by relays of a
    /// version before the set (a live one, idle now, is swept when it dies). Scans the keyspace, so
    /// it runs rarely (``legacyScanInterval``).
    func joinUnlistedRelays() async throws {
        var owners: Set<String> = []
        for prefix in [RedisKeys.relayCallsPrefix, RedisKeys.relayAlive("")] {
            var cursor = "0"
            repeat {
                let reply = try await redis.command("SCAN", .string(cursor), "MATCH", .string(prefix + "*"), "COUNT", "1000")
                guard case .array(let parts) = reply, parts.count == 2 else { return }
                cursor = parts[0].string ?? "0"
                for key in parts[1].array?.compactMap(\.string) ?? [] { owners.insert(String(key.dropFirst(prefix.count))) }
            } while cursor != "0"
        }
        guard !owners.isEmpty else { return }
        try await redis.command(["SADD", .string(RedisKeys.relayInstances)] + owners.sorted().map { .string($0) })
    }

    /// Removes `owner` from the set of relays, only while it has no heartbeat and no call list (a
    /// relay that came back, or listed a call meanwhile, stays).
    static func leaveCommand(_ owner: String) -> [RedisArgument] {
        [
            "EVAL", .string(leaveScript), "3", .string(RedisKeys.relayAlive(owner)), .string(RedisKeys.relayCalls(owner)),
            .string(RedisKeys.relayInstances), .string(owner),
        ]
    }

    static let leaveScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
        return redis.call('SREM', KEYS[3], ARGV[1])
        """

    private func endCalls(of owner: String, key: String) async throws {
        let members = try await redis.command("SMEMBERS", .string(key)).array?.compactMap(\.string) ?? []
        guard !members.isEmpty else { return }
        var ended = 0
        for conversationId in members {
            let claimed = try await redis.command(
                "EVAL", .string(Self.claimScript), "3", .string(RedisKeys.call(conversationId)), .string(key),
                .string(RedisKeys.relayAlive(owner)), .string(owner),
                .string(CallRegistry.tombstone(owner)), .string(conversationId))
            guard claimed.integer == 1 else { continue }
            ended += 1
            if relayOnly {
                let event = try ConversationEnded.event(conversationId: conversationId, channel: .voice, reason: .relayLost, relayInstance: owner)
                _ = try await bus.publish(
                    event, to: Partitioner.inboundStream(for: conversationId, partitions: partitions),
                    dedupKey: ConversationEnded.dedupKey(conversationId: conversationId), ttlSeconds: ConversationEnded.dedupTTLSeconds)
            }
            _ = try await redis.send(
                CallRegistry.releaseCommands(conversationId: conversationId, owner: CallRegistry.tombstone(owner), list: owner))
        }
        Counter(label: "agentconnect_relay_lost_calls_total").increment(by: ended)
        logger.warning("ended the calls of a relay that stopped", metadata: ["relay": "\(owner)", "calls": "\(ended)"])
    }

    /// Claims a dead relay's call for ending: its registration must still name the relay (or hold the
    /// tombstone of an earlier, unfinished claim) and the relay must still have no heartbeat (it may
    /// have come back between the check and the claim); a call that moved on is only dropped from the list.
    static let claimScript = """
        local holder = redis.call('GET', KEYS[1])
        if holder == ARGV[1] and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
        if holder == ARGV[1] or holder == ARGV[2] then
            redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
            return 1
        end
        redis.call('SREM', KEYS[2], ARGV[3])
        return 0
        """
}
