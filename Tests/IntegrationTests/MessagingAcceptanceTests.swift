import AgentConnectCore
import EventBus
import Foundation
import Testing
import TwilioKit

@Suite("Messaging end to end through real processes, Redis, PostgreSQL and twilio-sim")
struct MessagingAcceptanceTests {
    static let customers: [String: String] = [
        "sms": "+15557770001", "whatsapp": "whatsapp:+15557770002", "rcs": "rcs:+15557770003", "chat": "customer-chat-1",
    ]

    @Test("a customer message gets exactly one SEND_MESSAGE to the customer participant", arguments: ["sms", "whatsapp", "rcs", "chat"])
    func oneReplyPerChannel(channel: String) async throws {
        try await withStack { stack in
            let customer = try #require(Self.customers[channel])
            let sent = try await stack.customerSays("hello from \(channel)", channel: channel, from: customer)
            #expect(sent["webhookStatus"]?.double == 200)
            let conversationId = try #require(sent["conversationId"]?.string)
            let replies = try await stack.agentMessages(conversationId: conversationId)
            #expect(replies.map { $0["text"]?.string } == ["You said: hello from \(channel)"])
            #expect(replies.first?["to"]?.string == customer)
            #expect(await stack.settled())
            let actions = try await stack.simRequests(path: "/v2/Conversations/\(conversationId)/Actions")
            #expect(actions.count == 1)
            let participants = try await stack.sim(.GET, "/v2/Conversations/\(conversationId)/Participants")["participants"]?.array ?? []
            let customerId = participants.first { $0["type"]?.string == "CUSTOMER" }?["id"]?.string
            #expect(actions.first?["body"]?["payload"]?["to"]?.array?.first?["participantId"]?.string == customerId)
            if channel == "chat" {
                #expect(actions.first?["body"]?["payload"]?["channelSettings"]?["channelId"]?.string == "CHsimchat")
            }
        }
    }

    @Test("the same webhook delivered twice gets one reply")
    func duplicateWebhook() async throws {
        try await withStack { stack in
            let first = try await stack.customerSays("once please", from: "+15557770010", extra: ["token": "idem-duplicate-1"])
            let second = try await stack.customerSays("once please", from: "+15557770010", extra: ["token": "idem-duplicate-1"])
            #expect(first["webhookStatus"]?.double == 200 && second["webhookStatus"]?.double == 200)
            let conversationId = try #require(first["conversationId"]?.string)
            _ = try await stack.agentMessages(conversationId: conversationId)
            #expect(await stack.settled())
            #expect(try await stack.agentMessages(conversationId: conversationId, waitMs: 0).count == 1)
            #expect(try await stack.inboundLength() == 1)
        }
    }

    @Test(
        "a bad or missing signature, or one for the host the client sent instead of the public domain, gets 403 and nothing reaches the bus; the sim's, for the domain, passes"
    )
    func badSignature() async throws {
        var options = TestStack.Options(workers: 0, outbound: false)
        options.extra = ["TWILIO_WEBHOOK_PUBLIC_DOMAIN": "hooks.example.com"]
        try await withStack(options) { stack in
            let body: JSONValue = [
                "eventType": "COMMUNICATION_CREATED",
                "data": [
                    "id": "c1", "conversationId": "conv_x", "author": ["address": "+15550009999", "channel": "SMS"], "content": ["text": "hi"],
                ],
            ]
            let forged = try await stack.sim(.POST, "/sim/webhooks", ["body": body, "signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="])
            #expect(forged["status"]?.double == 403)
            let unsigned = try await TestStack.request(.POST, "http://127.0.0.1:\(stack.ingressPort)/webhook", body: body)
            #expect(unsigned.status == 403)
            let unsignedForm = try await TestStack.request(
                .POST, "http://127.0.0.1:\(stack.ingressPort)/webhook", rawBody: Array("From=%2B1&To=%2B2&Body=x&MessageSid=SM1".utf8),
                headers: [("Content-Type", "application/x-www-form-urlencoded")])
            #expect(unsignedForm.status == 403)
            // Signed for the URL the request was sent to: the process checks the configured domain only.
            let url = "http://127.0.0.1:\(stack.ingressPort)/webhook?bodySHA256=\(TwilioSignature.bodyHash(Array(body.compactJSON.utf8)))"
            let ownHost = try await TestStack.request(
                .POST, url, rawBody: Array(body.compactJSON.utf8),
                headers: [
                    ("Content-Type", "application/json"),
                    ("X-Twilio-Signature", TwilioSignature(authToken: stack.environment["TWILIO_AUTH_TOKEN"] ?? "").compute(url: url)),
                ])
            #expect(ownHost.status == 403)
            #expect(try await stack.inboundLength() == 0)
            // The sim signs for the configured domain, so Twilio's own webhooks still pass.
            #expect(try await stack.customerSays("through the domain", from: "+15554440041")["webhookStatus"]?.double == 200)
        }
    }

    @Test("a classic Messaging form webhook gets one reply through the Messages API")
    func classicWebhook() async throws {
        try await withStack { stack in
            let sent = try await stack.customerSays("plain number", from: "+15557770040", extra: ["classic": true])
            #expect(sent["webhookStatus"]?.double == 200)
            let replies = try await stack.agentMessages(to: "+15557770040")
            #expect(replies.map { $0["text"]?.string } == ["You said: plain number"])
            #expect(await stack.settled())
            let requests = try await stack.simRequests(path: "/Messages.json")
            #expect(requests.count == 1)
            #expect(requests.first?["form"]?["From"]?.string == stack.environment["TWILIO_PHONE_NUMBER"])
        }
    }
}

@Suite("Messaging delivery when Twilio fails", .serialized)
struct MessagingFailureTests {
    @Test("429 twice, then accepted: one delivery")
    func rateLimited() async throws {
        try await withStack { stack in
            _ = try await stack.sim(.POST, "/sim/faults", ["status": 429, "count": 2, "retryAfter": 0])
            let sent = try await stack.customerSays("retry me", from: "+15557770050")
            let conversationId = try #require(sent["conversationId"]?.string)
            let replies = try await stack.agentMessages(conversationId: conversationId)
            #expect(await stack.settled())
            #expect(replies.count == 1)
            #expect(try await stack.agentMessages(conversationId: conversationId, waitMs: 0).count == 1)
            let outbound = try #require(stack.processes("outbound").first)
            #expect(try await stack.metric("agentconnect_delivery_retries_total", port: outbound.port) >= 2)
        }
    }

    @Test("500 forever: the reply is dead-lettered after N attempts and counted in /metrics")
    func failingForever() async throws {
        var options = TestStack.Options()
        options.extra["OUTBOUND_MAX_ATTEMPTS"] = "3"
        try await withStack(options) { stack in
            _ = try await stack.sim(.POST, "/sim/faults", ["status": 500, "count": 100_000])
            _ = try await stack.customerSays("never arrives", from: "+15557770060")
            #expect(await eventually { ((try? await stack.length(of: Streams.dead)) ?? 0) == 1 })
            let outbound = try #require(stack.processes("outbound").first)
            #expect(try await stack.metric("agentconnect_dead_letters_total", port: outbound.port, matching: "tac:outbound") == 1)
            _ = try await stack.sim(.DELETE, "/sim/faults")
            #expect(try await stack.agentMessages(to: "+15557770060", waitMs: 0).isEmpty)
        }
    }
}
