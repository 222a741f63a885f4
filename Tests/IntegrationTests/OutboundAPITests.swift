import AgentConnectCore
import Foundation
import PostgresNIO
import Testing

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

    @Test("no token → 401; a from that is not ours → 400 naming the allowed senders; bad bodies → 400")
    func validation() async throws {
        var options = TestStack.Options()
        options.workers = 0
        try await withStack(options) { stack in
            let noToken = try await post(stack, "/v1/conversations", ["channel": "sms", "to": "+15558880000", "message": "hi"], token: nil)
            #expect(noToken.status == 401)
            let wrongToken = try await post(stack, "/v1/conversations", ["channel": "sms", "to": "+15558880000", "message": "hi"], token: "nope")
            #expect(wrongToken.status == 401)
            let badFrom = try await post(
                stack, "/v1/conversations", ["channel": "sms", "to": "+15558880000", "from": "+19999999999", "message": "hi"])
            #expect(badFrom.status == 400)
            #expect(badFrom.body.contains(stack.environment["TWILIO_PHONE_NUMBER"] ?? "?"))
            let noMessage = try await post(stack, "/v1/conversations", ["channel": "sms", "to": "+15558880000"])
            #expect(noMessage.status == 400)
            let tooMuch = try await post(
                stack, "/v1/conversations",
                [
                    "channel": "sms", "to": "+15558880000", "message": "hi",
                    "metadata": .object(Dictionary(uniqueKeysWithValues: (0..<9).map { ("k\($0)", JSONValue.string("v")) })),
                ])
            #expect(tooMuch.status == 400)
            #expect(try await stack.simRequests(path: "/v2/Conversations").isEmpty)
        }
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

    @Test("a retried POST with the same Idempotency-Key creates one conversation and sends once")
    func idempotency() async throws {
        var options = TestStack.Options()
        options.workers = 0
        try await withStack(options) { stack in
            let body: JSONValue = ["channel": "sms", "to": "+15558880010", "message": "only once"]
            let first = try await post(stack, "/v1/conversations", body, key: "order-77")
            let second = try await post(stack, "/v1/conversations", body, key: "order-77")
            #expect(first.status == 201 && second.status == 201)
            #expect(first.json["conversationId"] == second.json["conversationId"])
            // No agent-worker here: only the outbound stream has a reader.
            #expect(await stack.settled(streams: [Streams.outbound]))
            let creations = try await stack.simRequests(path: "/v2/Conversations").filter {
                $0["method"]?.string == "POST" && $0["path"]?.string == "/v2/Conversations"
            }
            #expect(creations.count == 1)
            #expect(try await stack.agentMessages(to: "+15558880010", waitMs: 0).count == 1)
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
            var call: JSONValue = .null
            _ = await eventually(timeout: .seconds(20)) {
                call = (try? await stack.sim(.GET, "/sim/calls/\(sid)")) ?? .null
                return call["turns"] != nil || call["error"] != nil
            }
            #expect(call["welcomeGreeting"]?.string == "Hi, this is Acme calling")
            #expect(call["turns"]?.array?.first?["text"]?.string == "You said: hello")
            let request = try await stack.simRequests(path: "/Calls.json").first
            #expect(request?["form"]?["StatusCallback"]?.string?.hasSuffix("/twilio/call-events/status") == true)
        }
    }
}
