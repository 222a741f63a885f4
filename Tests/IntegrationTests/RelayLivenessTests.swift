import AgentConnectCore
import EventBus
import Testing

@testable import VoiceRelay

/// The sweep for relays that died, against a real Redis: it finds them through the set of relays
/// (and, once, through the call lists of relays that never joined it), ends their calls once, and
/// leaves live peers alone.
@Suite("Relay liveness against a real Redis")
struct RelayLivenessTests {
    @Test("a dead relay's calls end once, a live peer's stay, a relay from before the set is found by the first sweep")
    func sweep() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        let bus = RedisStreamsEventBus(client: client)
        // relay-dead listed two calls and stopped beating; relay-peer beats and holds a call;
        // relay-old (a version before the set) listed a call and died; relay-gone left cleanly.
        func listCall(_ conversationId: String, on relay: String) -> [[RedisArgument]] {
            [
                ["SET", .string(RedisKeys.call(conversationId)), .string(relay)],
                ["SADD", .string(RedisKeys.relayCalls(relay)), .string(conversationId)],
            ]
        }
        // relay-idle (also from before the set) beats and holds no call yet.
        let setup: [[RedisArgument]] =
            listCall("conv-a", on: "relay-dead") + listCall("conv-b", on: "relay-dead") + listCall("conv-c", on: "relay-peer")
            + listCall("conv-d", on: "relay-old") + [
                ["SADD", .string(RedisKeys.relayInstances), "relay-dead", "relay-peer", "relay-gone"],
                ["SET", .string(RedisKeys.relayAlive("relay-peer")), "1", "PX", "60000"],
                ["SET", .string(RedisKeys.relayAlive("relay-idle")), "1", "PX", "60000"],
            ]
        let replies = try await client.send(setup)
        #expect(!replies.contains { $0.isError })

        let liveness = RelayLiveness(
            instance: "relay-me", redis: client, bus: bus, partitions: 1, relayOnly: true, logger: TestEnvironment.logger)
        try await liveness.beatOnce()
        #expect(try await client.command("EXISTS", .string(RedisKeys.relayAlive("relay-me"))).integer == 1)
        try await liveness.joinUnlistedRelays()
        try await liveness.sweep()

        let stream = Partitioner.inboundStream(for: "conv-a", partitions: 1)
        func ended() async throws -> [String: ConversationEnded.Reason] {
            let entries = try await bus.read(after: [stream: "0"], count: 100, blockMilliseconds: 1)
            var result: [String: ConversationEnded.Reason] = [:]
            for entry in entries {
                let event = try #require(entry.event)
                #expect(event.type == EventType.conversationEnded)
                result[event.conversationId] = try event.decode(ConversationEnded.self).reason
            }
            #expect(entries.count == result.count, "each call ended once")
            return result
        }
        #expect(try await ended() == ["conv-a": .relayLost, "conv-b": .relayLost, "conv-d": .relayLost])
        // The live peer's call is untouched; the dead relays' calls, lists and set entries are gone.
        #expect(try await client.command("GET", .string(RedisKeys.call("conv-c"))).string == "relay-peer")
        for conversationId in ["conv-a", "conv-b", "conv-d"] {
            #expect(try await client.command("EXISTS", .string(RedisKeys.call(conversationId))).integer == 0)
        }
        for relay in ["relay-dead", "relay-old"] {
            #expect(try await client.command("EXISTS", .string(RedisKeys.relayCalls(relay))).integer == 0)
        }
        func members() async throws -> Set<String> {
            Set(try await client.command("SMEMBERS", .string(RedisKeys.relayInstances)).array?.compactMap(\.string) ?? [])
        }
        #expect(try await members() == ["relay-me", "relay-peer", "relay-idle"])

        // A relay with a heartbeat stays in the set, listed calls or not; a claim leaves its call alone.
        #expect(try await client.command(RelayLiveness.leaveCommand("relay-idle")).integer == 0)
        let claim = try await client.command(
            "EVAL", .string(RelayLiveness.claimScript), "3", .string(RedisKeys.call("conv-c")), .string(RedisKeys.relayCalls("relay-peer")),
            .string(RedisKeys.relayAlive("relay-peer")), "relay-peer", .string(CallRegistry.tombstone("relay-peer")), "conv-c")
        #expect(claim.integer == 0)
        #expect(try await client.command("GET", .string(RedisKeys.call("conv-c"))).string == "relay-peer")
        #expect(try await client.command("SISMEMBER", .string(RedisKeys.relayCalls("relay-peer")), "conv-c").integer == 1)

        // A relay from before the set that lists a call after the first scan is found by the next one.
        _ = try await client.send(listCall("conv-e", on: "relay-late"))
        try await liveness.sweep()
        #expect(try await client.command("GET", .string(RedisKeys.call("conv-e"))).string == "relay-late")
        try await liveness.joinUnlistedRelays()
        try await liveness.sweep()
        #expect(try await ended().keys.sorted() == ["conv-a", "conv-b", "conv-d", "conv-e"])

        // The peer stops beating: it stays in the set while its call is listed, and is swept then.
        try await client.command("DEL", .string(RedisKeys.relayAlive("relay-peer")))
        #expect(try await client.command(RelayLiveness.leaveCommand("relay-peer")).integer == 0)
        try await liveness.sweep()
        #expect(try await ended()["conv-c"] == .relayLost)
        #expect(try await client.command("EXISTS", .string(RedisKeys.call("conv-c"))).integer == 0)
        #expect(try await members() == ["relay-me", "relay-idle"])
    }

    @Test("a relay that takes a call over joins the set with it, so its own death ends the call")
    func takeoverJoins() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        try await client.command("SET", .string(RedisKeys.call("conv-t")), "relay-a")
        let taken = try await client.command(
            "EVAL", .string(CallRegistry.takeoverScript), "3", .string(RedisKeys.call("conv-t")), .string(RedisKeys.relayCalls("relay-b")),
            .string(RedisKeys.callState("conv-t")), "relay-a", "relay-b", "conv-t", "60")
        #expect(taken.integer == 1)
        #expect(try await client.command("SISMEMBER", .string(RedisKeys.relayInstances), "relay-b").integer == 1)
        #expect(try await client.command("SISMEMBER", .string(RedisKeys.relayCalls("relay-b")), "conv-t").integer == 1)
        // relay-b dies before its first heartbeat: a peer's sweep still finds and ends the call.
        let bus = RedisStreamsEventBus(client: client)
        let peer = RelayLiveness(instance: "relay-c", redis: client, bus: bus, partitions: 1, relayOnly: true, logger: TestEnvironment.logger)
        try await peer.sweep()
        #expect(try await client.command("EXISTS", .string(RedisKeys.call("conv-t"))).integer == 0)
        let entries = try await bus.read(
            after: [Partitioner.inboundStream(for: "conv-t", partitions: 1): "0"], count: 10, blockMilliseconds: 1)
        #expect(entries.compactMap(\.event?.conversationId) == ["conv-t"])
    }
}
