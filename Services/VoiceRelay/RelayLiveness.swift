import AgentConnectCore
import EventBus
import Logging
import Metrics
import ServiceLifecycle

/// Calls on a relay that died (`kill -9`, a lost node) still end, once.
///
/// Every relay keeps `tac:relay:alive:<instance>` alive (a beat a second, expiring after
/// `VOICE_RELAY_LIVENESS_TTL_MS`, 15 s: a relay that stalls a few seconds is not dead) and lists its calls in
/// `tac:relay:calls:<instance>`. Each relay also looks for call lists whose owner stopped beating:
/// their conversations get `conversation.ended` (reason `relay_lost`, with the same dedup key a normal
/// hang-up uses, so it is published once whoever notices first), and the list is removed. A call that
/// another relay took over meanwhile (a reconnect) is left alone: each call is first claimed for
/// ending atomically (its registration must still name the dead relay; it then holds a tombstone no
/// takeover accepts), and only then ended.
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

    func run() async throws {
        var sinceSweep = Duration.zero
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await redis.command("SET", .string(RedisKeys.relayAlive(instance)), "1", "PX", .string(String(ttlMilliseconds)))
                if sinceSweep >= .seconds(2) {
                    sinceSweep = .zero
                    try await sweep()
                }
            } catch {
                logger.warning("relay liveness: Redis unavailable", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: beat)
            sinceSweep += beat
        }
        // A relay that drained its calls leaves nothing to sweep; stop beating.
        if !keepHeartbeatOnExit() { _ = try? await redis.command("DEL", .string(RedisKeys.relayAlive(instance))) }
    }

    /// Ends the calls of relays that stopped beating.
    func sweep() async throws {
        var cursor = "0"
        repeat {
            let reply = try await redis.command("SCAN", .string(cursor), "MATCH", .string(RedisKeys.relayCallsPrefix + "*"), "COUNT", "200")
            guard case .array(let parts) = reply, parts.count == 2 else { return }
            cursor = parts[0].string ?? "0"
            for key in parts[1].array?.compactMap(\.string) ?? [] {
                let owner = String(key.dropFirst(RedisKeys.relayCallsPrefix.count))
                guard owner != instance else { continue }
                if try await redis.command("EXISTS", .string(RedisKeys.relayAlive(owner))).integer == 1 { continue }
                try await endCalls(of: owner, key: key)
            }
        } while cursor != "0"
    }

    private func endCalls(of owner: String, key: String) async throws {
        let members = try await redis.command("SMEMBERS", .string(key)).array?.compactMap(\.string) ?? []
        var ended = 0
        for conversationId in members {
            let claimed = try await redis.command(
                "EVAL", .string(Self.claimScript), "2", .string(RedisKeys.call(conversationId)), .string(key), .string(owner),
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
    /// tombstone of an earlier, unfinished claim); a call that moved on is only dropped from the list.
    static let claimScript = """
        local holder = redis.call('GET', KEYS[1])
        if holder == ARGV[1] or holder == ARGV[2] then
            redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
            return 1
        end
        redis.call('SREM', KEYS[2], ARGV[3])
        return 0
        """
}
