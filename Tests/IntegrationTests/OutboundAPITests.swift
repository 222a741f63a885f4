import AgentConnectCore
import EventBus
import Foundation
import PostgresNIO
import Testing

/// The app-facing API end to end, through real processes (the routes' rules — auth, validation,
/// Idempotency-Key replay and conflicts, opt-outs, WhatsApp's window, call options — are tested in
/// process in OutboundTests).
@Suite("Outbound API: agent-started conversations and calls")
struct OutboundAPITests {
    static let token = TestEnvironment.localEnv["OUTBOUND_API_TOKEN"] ?? ""

    func post(_ stack: TestStack, _ path: String, _ body: JSONValue, token: String? = OutboundAPITests.token, key: String? = nil) async throws
        -> TestStack.HTTPResult
    {
        var headers: [(String, String)] = []
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if let key { headers.append(("Idempotency-Key", key)) }
        return try await TestStack.request(.POST, "http://127.0.0.1:\(stack.outboundPort)\(path)", body: body, headers: headers)
    }

    @Test(
        "outbound SMS, WhatsApp and RCS: conversation created, first message sent, the customer's reply answered",
        arguments: [
            ("sms", "+15558880001"), ("whatsapp", "whatsapp:+15558880002"), ("rcs", "rcs:+15558880003"),
        ])
    func outboundMessaging(channel: String, customer: String) async throws {
        try await withStack { stack in
            var start: [String: JSONValue] = [
                "channel": .string(channel), "to": .string(customer), "message": "Your order shipped", "metadata": ["order": "42"],
            ]
            // A business-initiated WhatsApp conversation starts with an approved template (else Twilio's 63016).
            if channel == "whatsapp" { start["contentSid"] = "HX0123456789abcdef0123456789abcdef" }
            let started = try await post(stack, "/v1/conversations", .object(start))
            #expect(started.status == 201, "\(started.body)")
            let conversationId = try #require(started.json["conversationId"]?.string)
            let first = try await stack.agentMessages(conversationId: conversationId)
            #expect(first.map { $0["text"]?.string } == ["Your order shipped"])
            #expect(first.first?["to"]?.string == customer)
            let created = try await stack.simRequests(path: "/v2/Conversations")
            #expect(
                created.first { $0["method"]?.string == "POST" && $0["path"]?.string == "/v2/Conversations" }?["body"]?["metadata"]?["direction"]?
                    .string == "outbound")
            let reply = try await stack.customerSays("thanks", channel: channel, from: customer)
            #expect(reply["conversationId"]?.string == conversationId)
            let both = try await stack.agentMessages(conversationId: conversationId, count: 2)
            #expect(both.map { $0["text"]?.string } == ["Your order shipped", "You said: thanks"])
            let direction = try await stack.database.withClient { client in
                var value: String?
                for try await row in try await client.query("SELECT direction FROM conversations WHERE id = \(conversationId)").decode(String.self) {
                    value = row
                }
                return value
            }
            #expect(direction == "outbound")
        }
    }

    @Test("an outbound call: the sim answers, gets the welcome greeting, and the conversation flows")
    func outboundCall() async throws {
        var options = TestStack.Options()
        options.relays = 1
        options.ingress = false
        try await withStack(options) { stack in
            let placed = try await post(
                stack, "/v1/calls", ["to": "+15558880020", "welcomeGreeting": "Hi, this is Acme calling", "callOptions": ["statusCallback": true]])
            #expect(placed.status == 201, "\(placed.body)")
            let sid = try #require(placed.json["callSid"]?.string)
            let call = await stack.placedCall(sid)
            #expect(call["welcomeGreeting"]?.string == "Hi, this is Acme calling")
            #expect(call["turns"]?.array?.first?["text"]?.string == "You said: hello")
            let request = try await stack.simRequests(path: "/Calls.json").first
            #expect(request?["form"]?["StatusCallback"]?.string?.hasSuffix("/twilio/call-events/status") == true)
        }
    }
}

/// The Idempotency-Key records' rules as a contract: the same assertions against Redis (the service's)
/// and the in-memory twin the in-process outbound tests run on.
@Suite("Idempotency-Key records: Redis and its in-memory twin")
struct IdempotencyRecordsTests {
    enum Kind: String, CaseIterable, Sendable { case redis, memory }

    @Test("a key is claimed once, in progress until completed, then answers its response; a release frees it", arguments: Kind.allCases)
    func contract(kind: Kind) async throws {
        var redis: RedisClient?
        if kind == .redis { redis = try await TestRedis.make().client() }
        defer { redis?.shutdown() }
        let records: any IdempotencyRecords = redis.map { RedisIdempotencyRecords(redis: $0) } ?? InMemoryIdempotencyRecords()
        let key = RedisKeys.idempotency(route: "conversations", key: "order-1")
        #expect(try await records.claim(key, ttlSeconds: 60) == .claimed)
        #expect(try await records.claim(key, ttlSeconds: 60) == .inProgress)
        try await records.complete(key, response: Array(#"{"conversationId":"c1"}"#.utf8), ttlSeconds: 60)
        #expect(try await records.claim(key, ttlSeconds: 60) == .completed(#"{"conversationId":"c1"}"#))
        // Another route or key is another request.
        #expect(try await records.claim(RedisKeys.idempotency(route: "calls", key: "order-1"), ttlSeconds: 60) == .claimed)
        let failed = RedisKeys.idempotency(route: "conversations", key: "order-2")
        #expect(try await records.claim(failed, ttlSeconds: 60) == .claimed)
        try await records.release(failed)
        #expect(try await records.claim(failed, ttlSeconds: 60) == .claimed)
    }
}
