import AgentConnectCore
import Foundation
import HTTPTypes
import Store
import Testing

@testable import Outbound

/// The app-facing API as outbound's composition root builds it, in process, on the twins and a fake Twilio.
@Suite("Outbound API routes")
struct OutboundAPIRoutesTests {
    typealias Harness = OutboundHarness
    static let customer = "+15558880000"

    @Test("no token or a wrong one → 401; a from that is not ours → 400 naming the allowed senders; bad bodies → 400; nothing reaches Twilio")
    func validation() async throws {
        try await Harness.run { harness in
            try await harness.withRoutes { client in
                let start: JSONValue = ["channel": "sms", "to": .string(Self.customer), "message": "hi"]
                #expect(try await Harness.post(client, "/v1/conversations", start, token: nil).status == .unauthorized)
                #expect(try await Harness.post(client, "/v1/conversations", start, token: "nope").status == .unauthorized)
                let badFrom = try await Harness.post(
                    client, "/v1/conversations", ["channel": "sms", "to": .string(Self.customer), "from": "+19999999999", "message": "hi"])
                #expect(badFrom.status == .badRequest)
                #expect(badFrom.body.contains(Harness.agent))
                #expect(try await Harness.post(client, "/v1/conversations", ["channel": "sms", "to": .string(Self.customer)]).status == .badRequest)
                #expect(try await Harness.post(client, "/v1/conversations", ["channel": "voice", "to": "+1", "message": "hi"]).status == .badRequest)
                #expect(try await Harness.post(client, "/v1/conversations", "not an object").status == .badRequest)
                let tooMuch = try await Harness.post(
                    client, "/v1/conversations",
                    [
                        "channel": "sms", "to": .string(Self.customer), "message": "hi",
                        "metadata": .object(Dictionary(uniqueKeysWithValues: (0..<9).map { ("k\($0)", JSONValue.string("v")) })),
                    ])
                #expect(tooMuch.status == .badRequest)
                #expect(try await Harness.post(client, "/v1/calls/end", ["callSid": "CA12"]).status == .badRequest)
            }
            #expect(harness.twilio.requests.isEmpty)
        }
    }

    @Test("a classic start sends one message, records its delivery row sent and the message in the history")
    func classicStart() async throws {
        try await Harness.run { harness in
            try await harness.withRoutes { client in
                let started = try await Harness.post(
                    client, "/v1/conversations", ["channel": "sms", "to": .string(Self.customer), "message": "Your order shipped"], key: "order-1")
                #expect(started.status == .created, "\(started.body)")
                let conversationId = try #require(started.json["conversationId"]?.string)
                let sent = try #require(harness.twilio.messages.first)
                #expect(harness.twilio.messages.count == 1)
                #expect(sent.body == "Your order shipped" && sent.from == Harness.agent && sent.to == Self.customer)
                let row = try #require(harness.store.delivery(replyId: "outbound:order-1"))
                #expect(row.status == .sent && row.providerId == sent.sid)
                let conversation = try #require(try await harness.store.conversation(id: conversationId))
                #expect(conversation.direction == "outbound" && conversation.metadata["mode"] == "classic")
                #expect(try await harness.store.history(conversationId: conversationId, limit: 10).map(\.body) == ["Your order shipped"])
            }
        }
    }

    @Test("an orchestrator start creates the conversation, remembers its reconciled participants and sends SEND_MESSAGE")
    func orchestratorStart() async throws {
        try await Harness.run(["TWILIO_CONVERSATION_CONFIGURATION_ID": "CF1"]) { harness in
            try await harness.withRoutes { client in
                let started = try await Harness.post(
                    client, "/v1/conversations",
                    ["channel": "sms", "to": .string(Self.customer), "message": "Hello from Acme", "metadata": ["order": "42"]])
                #expect(started.status == .created, "\(started.body)")
                let conversationId = try #require(started.json["conversationId"]?.string)
                let created = try #require(harness.twilio.requests.first { $0.method == "POST" && $0.path == "/v2/Conversations" })
                #expect(created.json?["metadata"]?["direction"]?.string == "outbound" && created.json?["metadata"]?["order"]?.string == "42")
                let communication = try #require(harness.twilio.communications(conversationId).first)
                #expect(communication["content"]?["text"]?.string == "Hello from Acme")
                let stored = try #require(try await harness.store.conversation(id: conversationId))
                #expect(stored.metadata[ParticipantReconciler.reconciledKey] == "1" && stored.metadata["mode"] == "orchestrator")
                #expect(communication["author"]?["participantId"]?.string == stored.agentParticipantId)
            }
        }
    }

    @Test("a retried POST with the same Idempotency-Key answers the first result and sends once")
    func idempotencyReplay() async throws {
        try await Harness.run { harness in
            try await harness.withRoutes { client in
                let body: JSONValue = ["channel": "sms", "to": .string(Self.customer), "message": "only once"]
                let first = try await Harness.post(client, "/v1/conversations", body, key: "order-77")
                let second = try await Harness.post(client, "/v1/conversations", body, key: "order-77")
                #expect(first.status == .created && second.status == .created)
                #expect(first.json["conversationId"] == second.json["conversationId"])
                #expect(first.headers[HTTPField.Name("Idempotent-Replayed")!] == nil)
                #expect(second.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
                // Another key is another request.
                #expect(try await Harness.post(client, "/v1/conversations", body, key: "order-78").status == .created)
            }
            #expect(harness.twilio.sendRequests.count == 2)
        }
    }

    @Test("a key whose request is still running → 409; a failed request frees its key for a retry")
    func idempotencyConflictAndRelease() async throws {
        try await Harness.run { harness in
            try await harness.withRoutes { client in
                let body: JSONValue = ["channel": "sms", "to": .string(Self.customer), "message": "hi"]
                #expect(try await harness.keys.claim(RedisKeys.idempotency(route: "conversations", key: "busy"), ttlSeconds: 60) == .claimed)
                let busy = try await Harness.post(client, "/v1/conversations", body, key: "busy")
                #expect(busy.status == .conflict && busy.body.contains("in progress"))
                #expect(harness.twilio.sendRequests.isEmpty)
                harness.twilio.fail(.answer(status: 400, code: 21211))
                let refused = try await Harness.post(client, "/v1/conversations", body, key: "retry-me")
                #expect(refused.status == .badGateway && refused.body.contains("21211"))
                let retried = try await Harness.post(client, "/v1/conversations", body, key: "retry-me")
                #expect(retried.status == .created)
                #expect(retried.headers[HTTPField.Name("Idempotent-Replayed")!] == nil)
            }
            #expect(harness.twilio.sendRequests.count == 2 && harness.twilio.messages.count == 1)
        }
    }

    @Test("a start to a customer who opted out (STOP) of the sender → 409 (21610), nothing sent; another sender may")
    func optOutRefused() async throws {
        try await Harness.run(["TWILIO_PHONE_NUMBERS": "+15550002222,+15550004444"]) { harness in
            try await harness.store.setOptedOut(true, agent: Harness.agent, customer: Self.customer)
            try await harness.withRoutes { client in
                let refused = try await Harness.post(client, "/v1/conversations", ["channel": "sms", "to": .string(Self.customer), "message": "hi"])
                #expect(refused.status == .conflict && refused.body.contains("21610"))
                #expect(harness.twilio.requests.isEmpty)
                let other = try await Harness.post(
                    client, "/v1/conversations", ["channel": "sms", "to": .string(Self.customer), "from": "+15550004444", "message": "hi"])
                #expect(other.status == .created, "\(other.body)")
            }
            #expect(harness.twilio.messages.map(\.from) == ["+15550004444"])
        }
    }

    @Test("WhatsApp: a free-form start only within 24 h of the customer's last message (else 409, 63016); a template any time")
    func whatsAppWindow() async throws {
        try await Harness.run { harness in
            let customer = "whatsapp:+15558880002"
            let start: JSONValue = ["channel": "whatsapp", "to": .string(customer), "message": "Your order shipped"]
            @Sendable func inbound(_ id: String, hoursAgo: Double) async throws {
                _ = try await harness.store.appendMessage(
                    MessageRecord(
                        id: id, conversationId: "wa-1", channel: .whatsapp, direction: .inbound, authorAddress: customer, body: "hi",
                        createdAt: Date().addingTimeInterval(-hoursAgo * 3600)))
            }
            try await harness.withRoutes { client in
                let never = try await Harness.post(client, "/v1/conversations", start)
                #expect(never.status == .conflict && never.body.contains("63016") && never.body.contains("has not written yet"))
                try await inbound("m1", hoursAgo: 25)
                #expect(try await Harness.post(client, "/v1/conversations", start).status == .conflict)
                #expect(harness.twilio.requests.isEmpty)
                var template = start.object ?? [:]
                template["contentSid"] = "HX0123456789abcdef0123456789abcdef"
                #expect(try await Harness.post(client, "/v1/conversations", .object(template)).status == .created)
                try await inbound("m2", hoursAgo: 1)
                #expect(try await Harness.post(client, "/v1/conversations", start).status == .created)
            }
            let sends = harness.twilio.sendRequests
            #expect(sends.map { $0.field("ContentSid") } == ["HX0123456789abcdef0123456789abcdef", nil])
            #expect(sends.map { $0.field("Body") } == [nil, "Your order shipped"])
        }
    }

    @Test("calls: 503 without a voice domain; placed with a socket token bound to the CallSid; URL options refused; ended by CallSid")
    func calls() async throws {
        try await Harness.run { harness in
            try await harness.withRoutes { client in
                let unconfigured = try await Harness.post(client, "/v1/calls", ["to": "+15558880020"])
                #expect(unconfigured.status == .serviceUnavailable && unconfigured.body.contains("TWILIO_VOICE_PUBLIC_DOMAIN"))
            }
        }
        try await Harness.run(["TWILIO_VOICE_PUBLIC_DOMAIN": "voice.example.com"]) { harness in
            try await harness.withRoutes { client in
                let refused = try await Harness.post(client, "/v1/calls", ["to": "+15558880020", "callOptions": ["url": "https://evil.example"]])
                #expect(refused.status == .badRequest)
                let placed = try await Harness.post(
                    client, "/v1/calls", ["to": "+15558880020", "welcomeGreeting": "Hi, this is Acme", "callOptions": ["statusCallback": true]])
                #expect(placed.status == .created, "\(placed.body)")
                let sid = try #require(placed.json["callSid"]?.string)
                let token = try #require(harness.callTokens.minted.first)
                #expect(harness.callTokens.minted.count == 1 && harness.callTokens.bound[token] == sid)
                let request = try #require(harness.twilio.requests.first { $0.path.hasSuffix("/Calls.json") })
                #expect(request.field("Twiml")?.contains("wss://voice.example.com/ws?token=\(token)") == true)
                #expect(request.field("Twiml")?.contains("Hi, this is Acme") == true)
                #expect(request.field("StatusCallback") == "https://voice.example.com/twilio/call-events/status")
                let ended = try await Harness.post(client, "/v1/calls/end", ["callSid": .string(sid)])
                #expect(ended.status == .created && ended.json["ended"] == true)
                let unknown = try await Harness.post(client, "/v1/calls/end", ["callSid": .string("CA" + String(repeating: "f", count: 32))])
                #expect(unknown.status == .badGateway && unknown.body.contains("404"))
            }
        }
    }

    @Test("a messaging handoff: 400 without a Studio flow; with one, a Studio execution with HandoffData and the conversation INACTIVE")
    func handoff() async throws {
        let conversation = ConversationRecord(
            id: "conv-h", channel: .sms, customerAddress: Self.customer, agentAddress: Harness.agent, profileId: "MP1",
            metadata: ["mode": "classic"])
        try await Harness.run { harness in
            try await harness.store.upsertConversation(conversation)
            try await harness.withRoutes { client in
                let refused = try await Harness.post(client, "/v1/handoffs", ["conversationId": "conv-h"])
                #expect(refused.status == .badRequest && refused.body.contains("TWILIO_STUDIO_HANDOFF_FLOW_SID"))
                #expect(try await Harness.post(client, "/v1/handoffs", [:]).status == .badRequest)
            }
        }
        try await Harness.run(["TWILIO_STUDIO_HANDOFF_FLOW_SID": "FW1"]) { harness in
            try await harness.store.upsertConversation(conversation)
            try await harness.withRoutes { client in
                #expect(try await Harness.post(client, "/v1/handoffs", ["conversationId": "unknown"]).status == .notFound)
                let handed = try await Harness.post(client, "/v1/handoffs", ["conversationId": "conv-h", "attributes": ["reason": "billing"]])
                #expect(handed.status == .created && handed.json["status"] == "handoff_initiated")
            }
            let execution = try #require(harness.twilio.requests.first { $0.path == "/v2/Flows/FW1/Executions" })
            #expect(execution.field("To") == Self.customer && execution.field("From") == Harness.agent)
            let data = try JSONDecoder().decode(JSONValue.self, from: Data((execution.field("Parameters") ?? "").utf8))
            #expect(data["HandoffData"]?["profileId"]?.string == "MP1" && data["HandoffData"]?["attributes"]?["reason"]?.string == "billing")
            #expect(try await harness.store.conversation(id: "conv-h")?.status == "INACTIVE")
        }
    }
}
