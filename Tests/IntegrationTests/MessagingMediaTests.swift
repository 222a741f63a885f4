import AgentConnectCore
import EventBus
import Foundation
import PostgresNIO
import Testing

/// Messaging as customers use it, through twilio-sim as strict as Twilio: pictures both ways,
/// WhatsApp's 24-hour window and templates, long answers, STOP, delivery failures, Chat started by
/// the agent. The agent is `example-media-agent`.
@Suite("Messaging as people use it: media, templates, long replies, opt-outs, delivery status", .serialized)
struct MessagingMediaTests {
    /// A stack with example-media-agent as the worker. Outbound asks Twilio for status callbacks to
    /// messaging-ingress's `/message-status`.
    func withMediaStack<T>(classic: Bool = false, _ body: (TestStack) async throws -> T) async throws -> T {
        var options = TestStack.Options(workers: 0, outbound: false)
        if classic { options.extra["TWILIO_CONVERSATION_CONFIGURATION_ID"] = "" }
        return try await withStack(options) { stack in
            try await stack.launch(
                "outbound", port: stack.outboundPort,
                extra: ["TWILIO_MESSAGE_STATUS_CALLBACK_URL": "http://127.0.0.1:\(stack.ingressPort)/message-status"])
            try await stack.launch("example-media-agent", port: TestEnvironment.freePort(), extra: ["INSTANCE_ID": "media-agent"])
            return try await body(stack)
        }
    }

    /// `POST /v1/conversations` on outbound with the stack's bearer token.
    func startConversation(_ stack: TestStack, _ body: JSONValue) async throws -> TestStack.HTTPResult {
        try await TestStack.request(
            .POST, "http://127.0.0.1:\(stack.outboundPort)/v1/conversations", body: body,
            headers: [("Authorization", "Bearer \(stack.environment["OUTBOUND_API_TOKEN"] ?? "")")])
    }

    @Test("a WhatsApp picture with no text reaches the agent with its media (fetched with Twilio's credentials)", arguments: [false, true])
    func pictureWithoutText(classic: Bool) async throws {
        try await withMediaStack { stack in
            let customer = "whatsapp:+1555444000\(classic ? 1 : 2)"
            let sent = try await stack.customerSays(
                "", channel: "whatsapp", from: customer, extra: ["media": [["contentType": "image/png"]], "classic": .bool(classic)])
            #expect(sent["webhookStatus"]?.double == 200)
            let replies = try await stack.agentMessages(to: customer, waitMs: 30_000)
            // 94 bytes: the sim's sample picture, fetched from its Twilio-style media URL, which needs Basic auth.
            #expect(replies.map { $0["text"]?.string } == ["Thanks for the picture: image/png of 94 bytes"])
        }
    }

    @Test("a reply with an image arrives with it, through the Orchestrator and the Messages API", arguments: [false, true])
    func replyWithImage(classic: Bool) async throws {
        try await withMediaStack(classic: classic) { stack in
            let customer = "+1555444001\(classic ? 1 : 2)"
            _ = try await stack.customerSays("send me a picture", from: customer, extra: ["classic": .bool(classic)])
            let replies = try await stack.agentMessages(to: customer, waitMs: 30_000)
            #expect(replies.map { $0["text"]?.string } == ["Here is our owl."])
            #expect(replies.first?["media"]?.array?.compactMap(\.string) == ["https://demo.twilio.com/owl.png"])
            if classic {
                let sends = try await stack.simRequests(path: "/Messages.json").filter { $0["method"]?.string == "POST" }
                #expect(sends.first?["form"]?["MediaUrl"]?.string == "https://demo.twilio.com/owl.png")
            }
        }
    }

    @Test("an outbound WhatsApp start outside the 24-hour window: refused without a template, sent with one", arguments: [false, true])
    func whatsAppWindow(classic: Bool) async throws {
        try await withMediaStack(classic: classic) { stack in
            let customer = "whatsapp:+1555444002\(classic ? 1 : 2)"
            let refused = try await startConversation(stack, ["channel": "whatsapp", "to": .string(customer), "message": "Your order shipped"])
            #expect(refused.status == 409)
            #expect(refused.body.contains("24-hour") && refused.body.contains("63016") && refused.body.contains("contentSid"))
            let started = try await startConversation(
                stack,
                [
                    "channel": "whatsapp", "to": .string(customer), "contentSid": "HX0123456789abcdef0123456789abcdef",
                    "contentVariables": ["1": "Ada"],
                ])
            #expect(started.status == 201, "\(started.body)")
            let messages = try await stack.agentMessages(to: customer, waitMs: 30_000)
            #expect(messages.first?["contentSid"]?.string == "HX0123456789abcdef0123456789abcdef")
            #expect(messages.first?["contentVariables"]?["1"]?.string == "Ada")
            #expect(messages.count == 1)
        }
    }

    @Test("the window is the customer's last message: a start within 24 hours of it goes out free-form, one after 25 hours is refused")
    func windowFromLastMessage() async throws {
        try await withMediaStack(classic: true) { stack in
            let customer = "whatsapp:+15554440025"
            try await stack.customerSays("hi", channel: "whatsapp", from: customer, extra: ["classic": true])
            _ = try await stack.agentMessages(to: customer, waitMs: 30_000)
            let sql = "SELECT count(*)::int FROM messages WHERE author_address = '\(customer)' AND direction = 'inbound'"
            #expect(await eventually(timeout: .seconds(20)) { ((try? await stack.count(sql)) ?? 0) == 1 })
            let open = try await startConversation(stack, ["channel": "whatsapp", "to": .string(customer), "message": "Your order shipped"])
            #expect(open.status == 201, "\(open.body)")
            #expect(try await stack.agentMessages(to: customer, count: 2, waitMs: 30_000).last?["text"]?.string == "Your order shipped")
            try await stack.database.withClient { client in
                _ = try await client.query(
                    PostgresQuery(unsafeSQL: "UPDATE messages SET created_at = now() - interval '25 hours' WHERE author_address = '\(customer)'"))
            }
            let closed = try await startConversation(stack, ["channel": "whatsapp", "to": .string(customer), "message": "Still there?"])
            #expect(closed.status == 409 && closed.body.contains("25 h ago"), "\(closed.body)")
        }
    }

    @Test("twilio-sim is as strict as Twilio: free-form WhatsApp outside the window fails with 63016, bodies over 1,600 characters get 21617")
    func simStrictness() async throws {
        try await withStack(TestStack.Options(workers: 0, outbound: false, ingress: false)) { stack in
            let account = stack.environment["TWILIO_ACCOUNT_SID"] ?? ""
            let url = "http://127.0.0.1:\(stack.simPort)/2010-04-01/Accounts/\(account)/Messages.json"
            func send(_ fields: [(String, String)]) async throws -> TestStack.HTTPResult {
                try await TestStack.request(
                    .POST, url,
                    rawBody: Array(
                        fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
                            .utf8),
                    headers: [("Content-Type", "application/x-www-form-urlencoded")])
            }
            let whatsapp = stack.environment["TWILIO_WHATSAPP_NUMBER"] ?? ""
            let outside = try await send([("From", whatsapp), ("To", "whatsapp:+15554440030"), ("Body", "hello")])
            #expect(outside.status == 201)
            let failed = await eventually(timeout: .seconds(20)) {
                let undelivered = (try? await stack.sim(.GET, "/sim/messages/undelivered"))?["messages"]?.array ?? []
                return undelivered.contains { $0["to"]?.string == "whatsapp:+15554440030" && $0["errorCode"]?.double == 63016 }
            }
            #expect(failed)
            #expect(try await stack.agentMessages(to: "whatsapp:+15554440030", waitMs: 0).isEmpty)
            let long = try await send([
                ("From", stack.environment["TWILIO_PHONE_NUMBER"] ?? ""), ("To", "+15554440031"), ("Body", String(repeating: "a", count: 1601)),
            ])
            #expect(long.status == 400 && long.json["code"]?.double == 21617)
        }
    }

    @Test("a 4,000-character answer arrives as ordered messages, each once, each within 1,600 characters")
    func longAnswer() async throws {
        try await withMediaStack { stack in
            let sent = try await stack.customerSays("long answer", from: "+15554440040")
            let conversationId = try #require(sent["conversationId"]?.string)
            let expected = (1...70).map { "Sentence \($0) of the long answer explains one more detail." }.joined(separator: " ")
            let parts = try await stack.agentMessages(conversationId: conversationId, count: 3, waitMs: 45_000).compactMap { $0["text"]?.string }
            #expect(parts.count == 3)
            #expect(parts.allSatisfy { $0.utf16.count <= 1600 })
            #expect(parts.joined(separator: " ") == expected)
            #expect(parts.allSatisfy { $0.hasSuffix(".") })
            #expect(await stack.settled())
            #expect(try await stack.agentMessages(conversationId: conversationId, waitMs: 0).count == 3)
        }
    }

    @Test("after STOP no reply is sent and none is retried; START lifts it (and is answered)")
    func optOut() async throws {
        try await withMediaStack(classic: true) { stack in
            let customer = "+15554440050"
            let agent = stack.environment["TWILIO_PHONE_NUMBER"] ?? ""
            try await stack.customerSays("hi", from: customer, extra: ["classic": true])
            #expect(try await stack.agentMessages(to: customer, waitMs: 30_000).count == 1)
            try await stack.customerSays("STOP", from: customer, extra: ["classic": true])
            #expect(await eventually(timeout: .seconds(20)) { ((try? await stack.count("SELECT count(*)::int FROM opt_outs")) ?? 0) == 1 })
            // A reply to the opted-out customer (as a turn already under way would publish it): recorded, never sent.
            let conversationId = classicConversationId(channel: .sms, agent: agent, customer: customer)
            let client = stack.redis.client()
            defer { client.shutdown() }
            let reply = BusEvent(
                id: "optout-reply-1", type: EventType.replyReady, conversationId: conversationId, channel: .sms,
                traceparent: Traceparent.random().description,
                payload: ["text": "one more thing", "mode": "classic", "customerAddress": .string(customer), "agentAddress": .string(agent)])
            _ = try await RedisStreamsEventBus(client: client).publish(reply, to: Streams.outbound)
            #expect(
                await eventually(timeout: .seconds(20)) {
                    ((try? await stack.strings("SELECT status FROM deliveries WHERE reply_id = 'optout-reply-1'")) ?? []) == ["failed"]
                })
            #expect(try await stack.strings("SELECT error FROM deliveries WHERE reply_id = 'optout-reply-1'").first?.contains("opted out") == true)
            let refused = try await startConversation(stack, ["channel": "sms", "to": .string(customer), "message": "We miss you"])
            #expect(refused.status == 409 && refused.body.contains("21610"))
            #expect(await stack.settled())
            let sends = try await stack.simRequests(path: "/Messages.json").filter { $0["method"]?.string == "POST" }
            #expect(sends.count == 1, "only the reply before STOP went to Twilio")
            #expect(try await stack.length(of: Streams.dead) == 0)
            try await stack.customerSays("START", from: customer, extra: ["classic": true])
            #expect(await eventually(timeout: .seconds(20)) { ((try? await stack.count("SELECT count(*)::int FROM opt_outs")) ?? 1) == 0 })
            try await stack.customerSays("hello again", from: customer, extra: ["classic": true])
            let replies = try await stack.agentMessages(to: customer, count: 3, waitMs: 30_000)
            #expect(replies.compactMap { $0["text"]?.string } == ["You said: hi", "You said: START", "You said: hello again"])
        }
    }

    @Test("Twilio's 21610 for a STOP we had not heard of yet: the reply is recorded, the opt-out remembered, nothing retried or dead-lettered")
    func unsubscribedRace() async throws {
        try await withMediaStack(classic: true) { stack in
            let customer = "+15554440055"
            // A number of ours the ingress does not know: Twilio (the sim) records the STOP, we never see it.
            let otherSender = "+15550009999"
            _ = try await stack.customerSays("STOP", from: customer, extra: ["classic": true, "to": .string(otherSender)])
            let client = stack.redis.client()
            defer { client.shutdown() }
            let reply = BusEvent(
                id: "race-reply-1", type: EventType.replyReady,
                conversationId: classicConversationId(channel: .sms, agent: otherSender, customer: customer),
                channel: .sms, traceparent: Traceparent.random().description,
                payload: ["text": "your code is 1234", "mode": "classic", "customerAddress": .string(customer), "agentAddress": .string(otherSender)])
            _ = try await RedisStreamsEventBus(client: client).publish(reply, to: Streams.outbound)
            #expect(
                await eventually(timeout: .seconds(20)) {
                    ((try? await stack.strings("SELECT status || ':' || error FROM deliveries WHERE reply_id = 'race-reply-1'")) ?? []).first?
                        .contains("21610") == true
                })
            #expect(try await stack.strings("SELECT customer_address FROM opt_outs") == [customer])
            #expect(await stack.settled())
            let sends = try await stack.simRequests(path: "/Messages.json").filter { $0["method"]?.string == "POST" }
            #expect(sends.count == 1, "refused once, never retried")
            #expect(try await stack.length(of: Streams.dead) == 0)
        }
    }

    @Test("a failed delivery is recorded on the reply's row and reaches onError with Twilio's code")
    func failedDelivery() async throws {
        try await withMediaStack(classic: true) { stack in
            let customer = "+15554440060"
            _ = try await stack.sim(.POST, "/sim/recipients", ["address": .string(customer), "status": "undelivered", "errorCode": 30006])
            try await stack.customerSays("are you there?", from: customer, extra: ["classic": true])
            let agent = try #require(stack.processes("example-media-agent").first)
            let reported = await eventually(timeout: .seconds(30)) {
                agent.log.split(separator: "\n").contains { $0.contains("onError") && $0.contains("error.code=30006") }
            }
            #expect(reported, "\(agent.log.suffix(2000))")
            #expect(try await stack.strings("SELECT delivery_status || ':' || delivery_error_code FROM deliveries") == ["undelivered:30006"])
            #expect(try await stack.agentMessages(to: customer, waitMs: 0).isEmpty)
        }
    }

    @Test("a Chat conversation started by the agent reaches the customer, and the customer's answer is answered")
    func chatStart() async throws {
        try await withMediaStack { stack in
            let missing = try await startConversation(stack, ["channel": "chat", "to": "chat-customer-77", "message": "Hello from the agent"])
            #expect(missing.status == 400 && missing.body.contains("channelId"))
            let started = try await startConversation(
                stack, ["channel": "chat", "to": "chat-customer-77", "message": "Hello from the agent", "channelId": "CHsimchat"])
            #expect(started.status == 201, "\(started.body)")
            let conversationId = try #require(started.json["conversationId"]?.string)
            #expect(
                try await stack.agentMessages(conversationId: conversationId, waitMs: 30_000).compactMap { $0["text"]?.string } == [
                    "Hello from the agent"
                ])
            try await stack.customerSays("hi agent", channel: "chat", from: "chat-customer-77", extra: ["conversationId": .string(conversationId)])
            #expect(
                try await stack.agentMessages(conversationId: conversationId, count: 2, waitMs: 30_000).last?["text"]?.string == "You said: hi agent")
        }
    }

    @Test("the dev phone shows pictures both ways and each reply's delivery status, failures included")
    func devPhone() async throws {
        try await withMediaStack { stack in
            _ = try await stack.sim(.POST, "/sim/recipients", ["address": "whatsapp:+15554440091", "status": "undelivered", "errorCode": 30006])
            let browser = try await Chromium.launch()
            defer { browser.close() }
            try await browser.withPage { page in
                _ = try await page.send("Page.navigate", ["url": .string("http://127.0.0.1:\(stack.simPort)/")])
                #expect(try await page.waitFor("document.body && document.body.dataset.live === '1'"))
                try await page.evaluate(
                    ##"$("channel").value = "whatsapp"; $("from").value = "+15554440090"; $("text").value = "my cat"; $("picture").click();"##)
                // The customer's picture (the sim's 16×16 sample, shown through the page) and the agent's answer, with its status.
                #expect(
                    try await page.waitFor(
                        ##"[...document.querySelectorAll("#thread .customer img")].some(i => i.naturalWidth === 16)"##, timeout: .seconds(30)))
                #expect(
                    try await page.waitFor(
                        ##"[...document.querySelectorAll("#thread .agent")].some(d => d.querySelector(".text").textContent === "Thanks for the picture: image/png of 94 bytes (my cat)" && (d.querySelector(".status")?.textContent || "").includes("sent"))"##,
                        timeout: .seconds(30)))
                try await page.evaluate(##"$("text").value = "send me a picture"; $("send").click();"##)
                #expect(
                    try await page.waitFor(
                        ##"[...document.querySelectorAll("#thread .agent img")].some(i => i.src === "https://demo.twilio.com/owl.png")"##,
                        timeout: .seconds(30)))
                // A reply Twilio could not deliver shows as failed, with Twilio's code.
                try await page.evaluate(##"$("from").value = "+15554440091"; $("text").value = "hello"; $("send").click();"##)
                #expect(
                    try await page.waitFor(
                        ##"[...document.querySelectorAll("#thread .agent.failed .status")].some(s => s.textContent.includes("30006"))"##,
                        timeout: .seconds(30)))
            }
        }
    }
}
