import AgentConnectCore
import EventBus
import Foundation
import Testing

/// `VOICE_REDIS_URL`: calls on a Redis of their own, messaging on `REDIS_URL`'s. Here the two are
/// databases of one server (what differs in production, the fsync policy, does not change the flows).
@Suite("Calls on a Redis of their own (VOICE_REDIS_URL)")
struct VoiceRedisTests {
    @Test(
        "placed, orchestrated and relay-answered calls and an SMS all flow with two workers; every call key, voice event and frame is on the calls' Redis, none on the main one, and no messaging event on the calls' Redis"
    )
    func callsApart() async throws {
        let voice = try await TestRedis.make()
        var options = TestStack.Options()
        options.relays = 1
        options.workers = 2
        options.extra = ["VOICE_REDIS_URL": voice.url]
        try await withStack(options) { stack in
            // A call placed through outbound: its socket token is issued on the calls' Redis.
            let placed = try await TestStack.request(
                .POST, "http://127.0.0.1:\(stack.outboundPort)/v1/calls", body: ["to": "+15558880030"],
                headers: [("Authorization", "Bearer \(OutboundAPITests.token)")])
            #expect(placed.status == 201, "\(placed.body)")
            let sid = try #require(placed.json["callSid"]?.string)
            let call = await stack.placedCall(sid)
            #expect(call["turns"]?.array?.first?["text"]?.string == "You said: hello", "\(call)")
            // An inbound call, the conversation found through the Conversations API.
            let answered = try await stack.sim(.POST, "/sim/calls", ["from": "+15556661122", "say": ["first", "second"]])
            #expect(answered["turns"]?.array?.compactMap { $0["text"]?.string } == ["You said: first", "You said: second"])
            // Messaging stays on the main Redis.
            _ = try await stack.customerSays("hello by text", from: "+15551239876")
            let replies = try await stack.agentMessages(to: "+15551239876")
            #expect(replies.first?["text"]?.string == "You said: hello by text", "\(replies)")

            let main = stack.redis.client()
            let calls = voice.client()
            defer {
                main.shutdown()
                calls.shutdown()
            }
            for prefix in ["tac:voice:", "tac:relay:"] {
                #expect(try await main.keys(prefix).isEmpty, "\(prefix)* on the main Redis")
                #expect(try await !calls.keys(prefix).isEmpty, "no \(prefix)* on the calls' Redis")
            }
            let mainEvents = try await main.inboundEvents()
            let callEvents = try await calls.inboundEvents()
            #expect(!mainEvents.isEmpty && mainEvents.allSatisfy { $0.channel != .voice }, "\(mainEvents.map(\.type))")
            #expect(callEvents.contains { $0.type == EventType.messageReceived && $0.channel == .voice })
            #expect(callEvents.allSatisfy { $0.channel == .voice }, "\(callEvents.map(\.channel))")
            #expect(try await calls.command("EXISTS", .string(Streams.outbound)).integer == 0)
            // Both Redis hold the workers' leases: each worker reads voice partitions too, and says so apart.
            #expect(try await !calls.keys("tac:lease:").isEmpty)
            for worker in stack.processes("agent-worker") {
                let metrics = try await TestStack.request(.GET, "http://127.0.0.1:\(worker.port)/metrics").body
                #expect(metrics.contains(#"agentconnect_worker_partitions{redis="main"}"#), "\(metrics)")
                #expect(metrics.contains(#"agentconnect_worker_partitions{redis="calls"}"#), "\(metrics)")
                let lag = metrics.split(separator: "\n").filter { $0.hasPrefix("agentconnect_stream_length{") }
                #expect(lag.contains { $0.contains(#"redis="calls""#) } && lag.contains { $0.contains(#"redis="main""#) }, "\(lag)")
            }
        }
    }

    @Test("a client of VOICE_REDIS_URL's Redis names that setting when it cannot connect")
    func voiceRedisErrorsNameTheirSetting() async throws {
        var configuration = try #require(
            try RedisConfiguration.voice(environment: Environment(["VOICE_REDIS_URL": "redis://127.0.0.1:1", "REDIS_CONNECT_TIMEOUT_MS": "500"])))
        configuration.commandTimeout = .milliseconds(500)
        let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        defer { client.shutdown() }
        let error = try await #require(throws: BusError.self) { try await client.command("PING") }
        #expect("\(error)".contains("(VOICE_REDIS_URL)"), "\(error)")
    }
}

extension RedisClient {
    /// The keys under `prefix` (a test's own database: `KEYS` is fine there).
    func keys(_ prefix: String) async throws -> [String] {
        try await command("KEYS", .string(prefix + "*")).array?.compactMap(\.string) ?? []
    }

    /// Every event on the inbound partitions.
    func inboundEvents() async throws -> [BusEvent] {
        let streams = try await keys(Streams.inbound + ":").filter { Int($0.split(separator: ":").last ?? "") != nil }
        var events: [BusEvent] = []
        for stream in streams {
            let entries = try await command("XRANGE", .string(stream), "-", "+").array ?? []
            for entry in entries {
                let fields = entry.array?.last?.array ?? []
                for case .bulk(let value) in fields { if let event = try? BusEvent.decode(value) { events.append(event) } }
            }
        }
        return events
    }
}
