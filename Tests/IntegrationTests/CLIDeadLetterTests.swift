import AgentConnectCore
import EventBus
import Foundation
import Testing

/// `agentconnect dead-letters list|replay|drop`, run as the built executable against a real Redis.
@Suite("agentconnect dead-letters")
struct CLIDeadLetterTests {
    /// A customer message dead-lettered the way consumers do it (`EventBus.deadLetter` on an entry read
    /// through the group); returns the event and its entry.
    static func deadLetter(
        _ bus: RedisStreamsEventBus, stream: String, group: String, text: String, from customer: String, error: String
    ) async throws -> (event: BusEvent, entry: BusEntry) {
        try await bus.ensureGroup(group, on: stream)
        let event = BusEvent(
            type: EventType.replyReady, conversationId: "conv-\(UUID().uuidString.prefix(8))", channel: .sms,
            payload: ["to": .string(customer), "text": .string(text)])
        _ = try await bus.publish(event, to: stream)
        let entries = try await bus.readGroup(group, consumer: "dying", streams: [stream], count: 10, blockMilliseconds: 1000)
        let entry = try #require(entries.first { $0.event?.id == event.id })
        try await bus.deadLetter(entry, group: group, error: error)
        return (event, entry)
    }

    @Test("dead-letters list shows where each entry came from and why, never its body or the customer's number")
    func listDeadLetters() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        let bus = RedisStreamsEventBus(client: client)
        let (event, entry) = try await Self.deadLetter(
            bus, stream: Streams.outbound, group: "outbound", text: "my secret order details", from: "+15557654321",
            error: "delivery failed after 5 attempt(s): The 'To' number +15557654321 is not valid")
        let env = TestEnvironment.localEnv.merging(["REDIS_URL": redis.url]) { $1 }

        let listed = try await CLIRun.agentconnect(["dead-letters", "list", "--json"], environment: env)
        #expect(listed.status == 0, "\(listed.err)")
        let json = try JSONDecoder().decode(JSONValue.self, from: Data(listed.out.utf8))
        #expect(json["total"]?.double == 1)
        let first = try #require(json["entries"]?.array?.first)
        #expect(first["stream"]?.string == Streams.outbound)
        #expect(first["group"]?.string == "outbound")
        #expect(first["entry"]?.string == entry.id)
        #expect(first["deliveries"]?.double == 1)
        #expect(first["type"]?.string == EventType.replyReady)
        #expect(first["eventId"]?.string == event.id)
        #expect(first["error"]?.string?.contains("delivery failed after 5 attempt(s)") == true)

        let table = try await CLIRun.agentconnect(["dead-letters", "list"], environment: env)
        #expect(table.status == 0)
        #expect(table.out.contains(Streams.outbound) && table.out.contains(entry.id) && table.out.contains("1 of 1 dead letter(s)"))
        for output in [listed.out, table.out] {
            #expect(!output.contains("secret order") && !output.contains("5557654321"), "\(output)")
        }

        // --calls: the calls' Redis's own dead letters (VOICE_REDIS_URL), and only with it set.
        let calls = try await TestRedis.make()
        let callsClient = calls.client()
        defer { callsClient.shutdown() }
        let (_, voiceEntry) = try await Self.deadLetter(
            RedisStreamsEventBus(client: callsClient), stream: Streams.inboundPartition(3), group: "agents", text: "a prompt",
            from: "+15550001111", error: "turn failed")
        let apart = env.merging(["VOICE_REDIS_URL": calls.url]) { $1 }
        let callsListed = try await CLIRun.agentconnect(["dead-letters", "list", "--calls", "--json"], environment: apart)
        let callsJSON = try JSONDecoder().decode(JSONValue.self, from: Data(callsListed.out.utf8))
        #expect(callsJSON["entries"]?.array?.map { $0["entry"]?.string } == [voiceEntry.id], "\(callsListed.out)\(callsListed.err)")
        let mainListed = try await CLIRun.agentconnect(["dead-letters", "list", "--json"], environment: apart)
        #expect(
            try JSONDecoder().decode(JSONValue.self, from: Data(mainListed.out.utf8))["entries"]?.array?.map { $0["entry"]?.string } == [entry.id])
        let dropped = try await CLIRun.agentconnect(["dead-letters", "drop", "--calls", "--all"], environment: apart)
        #expect(dropped.status == 0 && dropped.out.hasPrefix("dropped "), "\(dropped.out)\(dropped.err)")
        #expect(try await callsClient.command("XLEN", .string(Streams.dead)).integer == 0)
        #expect(try await client.command("XLEN", .string(Streams.dead)).integer == 1)
        let unset = try await CLIRun.agentconnect(["dead-letters", "list", "--calls"], environment: env)
        #expect(unset.status != 0 && unset.err.contains("VOICE_REDIS_URL is not set"), "\(unset.err)")
    }

    @Test("dead-letters replay puts entries back on their own streams, fields intact, where the group consumes them; tac:dead empties")
    func replayDeadLetters() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        let bus = RedisStreamsEventBus(client: client)
        let outbound = try await Self.deadLetter(bus, stream: Streams.outbound, group: "outbound", text: "a", from: "+15550001111", error: "boom")
        let inbound = try await Self.deadLetter(
            bus, stream: Streams.inboundPartition(3), group: "agents", text: "b", from: "+15550002222", error: "boom")
        let env = TestEnvironment.localEnv.merging(["REDIS_URL": redis.url]) { $1 }
        let deadIds = try await DeadLetterIds.read(client)
        #expect(deadIds.count == 2)

        let one = try await CLIRun.agentconnect(["dead-letters", "replay", deadIds[0]], environment: env)
        #expect(one.status == 0, "\(one.err)")
        #expect(one.out.contains("replayed \(deadIds[0]) → \(Streams.outbound) "))
        #expect(try await bus.length(of: Streams.dead) == 1)
        // A consumer of the original group gets the entry again, byte for byte.
        let again = try await bus.readGroup("outbound", consumer: "healthy", streams: [Streams.outbound], count: 10, blockMilliseconds: 2000)
        #expect(again.count == 1)
        #expect(again.first?.raw == outbound.entry.raw)
        #expect(again.first?.event == outbound.event)
        #expect(again.first?.id != outbound.entry.id)

        let twice = try await CLIRun.agentconnect(["dead-letters", "replay", deadIds[0]], environment: env)
        #expect(twice.status == 1)
        #expect(twice.err.contains("not found: \(deadIds[0])"))

        let rest = try await CLIRun.agentconnect(["dead-letters", "replay", "--all"], environment: env)
        #expect(rest.status == 0, "\(rest.err)")
        #expect(rest.out.contains("replayed \(deadIds[1]) → \(Streams.inboundPartition(3)) "))
        #expect(try await bus.length(of: Streams.dead) == 0)
        let agents = try await bus.readGroup(
            "agents", consumer: "healthy", streams: [Streams.inboundPartition(3)], count: 10, blockMilliseconds: 2000)
        #expect(agents.map(\.event) == [inbound.event])
    }

    /// A dead letter of `tac:outbound` written as is (`id`: `*` for now), with `envelope` as its event
    /// field; returns its id.
    static func outboundDeadLetter(_ client: RedisClient, id: String = "*", envelope: String, error: String) async throws -> String {
        try #require(
            try await client.command(
                "XADD", .string(Streams.dead), .string(id), "e", .string(envelope), "stream", .string(Streams.outbound), "group", "outbound",
                "entry", "1-0", "deliveries", "10", "error", .string(error)
            ).string)
    }

    struct Lengths: Equatable {
        var dead: Int64?
        var outbound: Int64?
    }

    /// How many entries `tac:dead` and `tac:outbound` hold.
    static func lengths(_ client: RedisClient) async throws -> Lengths {
        Lengths(
            dead: try await client.command("XLEN", .string(Streams.dead)).integer,
            outbound: try await client.command("XLEN", .string(Streams.outbound)).integer)
    }

    @Test("dead-letters replay refuses an entry whose content is gone, and leaves it in tac:dead")
    func replayWithoutContent() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        // What a consumer writes for an entry trimmed from its stream while pending: ids, no content.
        let id = try await Self.outboundDeadLetter(client, envelope: "", error: "trimmed")
        let env = TestEnvironment.localEnv.merging(["REDIS_URL": redis.url]) { $1 }
        let result = try await CLIRun.agentconnect(["dead-letters", "replay", id], environment: env)
        #expect(result.status == 1)
        #expect(result.err.contains("drop it"), "\(result.err)")
        #expect(try await Self.lengths(client) == Lengths(dead: 1, outbound: 0))
    }

    @Test("dead-letters replay refuses an entry dead longer than delivery rows outlive the streams (a second send), unless rows stay")
    func replayPastTheWindow() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        // Dead-lettered in 2001: far past any window.
        let id = try await Self.outboundDeadLetter(client, id: "1000000000000-0", envelope: "{}", error: "boom")
        let env = TestEnvironment.localEnv.merging(["REDIS_URL": redis.url]) { $1 }
        let refused = try await CLIRun.agentconnect(["dead-letters", "replay", id], environment: env)
        #expect(refused.status == 1)
        #expect(refused.err.contains("past the replay window of 552 h"), "\(refused.err)")
        #expect(try await Self.lengths(client) == Lengths(dead: 1, outbound: 0))
        // Rows kept forever: nothing to fear.
        let kept = try await CLIRun.agentconnect(
            ["dead-letters", "replay", id], environment: env.merging(["DELIVERY_RETENTION_SECONDS": "0"]) { $1 })
        #expect(kept.status == 0, "\(kept.err)")
        #expect(try await Self.lengths(client) == Lengths(dead: 0, outbound: 1))
    }

    @Test("dead-letters drop deletes the given entries, --all the rest, and says which ids were not there")
    func dropDeadLetters() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        let bus = RedisStreamsEventBus(client: client)
        for index in 0..<3 {
            _ = try await Self.deadLetter(bus, stream: Streams.outbound, group: "outbound", text: "t\(index)", from: "+15550003333", error: "boom")
        }
        let env = TestEnvironment.localEnv.merging(["REDIS_URL": redis.url]) { $1 }
        let ids = try await DeadLetterIds.read(client)
        #expect(ids.count == 3)

        let one = try await CLIRun.agentconnect(["dead-letters", "drop", ids[1]], environment: env)
        #expect(one.status == 0, "\(one.err)")
        #expect(one.out == "dropped \(ids[1])\n")
        #expect(try await DeadLetterIds.read(client) == [ids[0], ids[2]])

        let rest = try await CLIRun.agentconnect(["dead-letters", "drop", "--all"], environment: env)
        #expect(rest.status == 0)
        #expect(rest.lines == ["dropped \(ids[0])", "dropped \(ids[2])"])
        #expect(try await bus.length(of: Streams.dead) == 0)
        #expect(try await bus.length(of: Streams.outbound) == 3)  // dropping never touches the original stream

        let gone = try await CLIRun.agentconnect(["dead-letters", "drop", ids[0]], environment: env)
        #expect(gone.status == 1)
        #expect(gone.err.contains("not found: \(ids[0])"))
        let empty = try await CLIRun.agentconnect(["dead-letters", "list"], environment: env)
        #expect(empty.out == "no dead letters\n")
        let invalid = try await CLIRun.agentconnect(["dead-letters", "drop", "not-an-id"], environment: env)
        #expect(invalid.status != 0 && invalid.err.contains("not a stream entry id"))
    }
}

/// Ids on `tac:dead`, oldest first.
enum DeadLetterIds {
    static func read(_ client: RedisClient) async throws -> [String] {
        try await client.command("XRANGE", .string(Streams.dead), "-", "+").array?.compactMap { $0.array?.first?.string } ?? []
    }
}
