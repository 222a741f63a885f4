import AgentConnectCore
import EventBus
import Foundation
import Testing

/// A long reply whose part was given up on by an outbound that died before acknowledging the entry:
/// the redelivered reply must not send the parts after it (the customer would read part 3 without part 2).
@Suite("Long replies: nothing after a part given up on", .serialized)
struct LongReplyGivenUpPartTests {
    @Test("a redelivered long reply whose part 2 was given up on sends neither part 2 nor part 3")
    func noPartAfterAGivenUpOne() async throws {
        var options = TestStack.Options(workers: 0, outbound: true)
        options.extra["TWILIO_CONVERSATION_CONFIGURATION_ID"] = ""
        try await withStack(options) { stack in
            let customer = "+15554440081"
            let agent = stack.environment["TWILIO_PHONE_NUMBER"] ?? ""
            let conversationId = classicConversationId(channel: .sms, agent: agent, customer: customer)
            // What the first copy left: part 1 sent, part 2 given up on (dead-lettered), the entry not acknowledged.
            _ = try await stack.strings(
                """
                INSERT INTO deliveries (reply_id, conversation_id, channel, status, attempts, provider_id, error, sent_at)
                VALUES ('given-up-1', '\(conversationId)', 'sms', 'sent', 1, 'SM00000000000000000000000000000001', NULL, now()),
                       ('given-up-1:p2', '\(conversationId)', 'sms', 'failed', 5, NULL, 'delivery failed after 5 attempt(s)', NULL)
                RETURNING reply_id
                """)
            let text = (1...70).map { "Sentence \($0) of the long answer explains one more detail." }.joined(separator: " ")
            let client = stack.redis.client()
            defer { client.shutdown() }
            let reply = BusEvent(
                id: "given-up-1", type: EventType.replyReady, conversationId: conversationId, channel: .sms,
                traceparent: Traceparent.random().description,
                payload: ["text": .string(text), "mode": "classic", "customerAddress": .string(customer), "agentAddress": .string(agent)])
            _ = try await RedisStreamsEventBus(client: client).publish(reply, to: Streams.outbound)
            // Parts 1 and 2 are found finished (counted as duplicates) whatever happens next.
            let seen = await eventually(timeout: .seconds(20)) {
                ((try? await stack.metric("agentconnect_deliveries_total", port: stack.outboundPort, matching: "duplicate")) ?? 0) >= 2
            }
            #expect(seen)
            // Part 3 would be claimed and sent right after; give it the time a send takes here.
            let third = await eventually(timeout: .seconds(3)) {
                ((try? await stack.strings("SELECT reply_id FROM deliveries WHERE reply_id = 'given-up-1:p3'")) ?? []).isEmpty == false
            }
            #expect(!third, "part 3 was claimed although part 2 was given up on")
            let sends = try await stack.simRequests(path: "/Messages.json").filter { $0["method"]?.string == "POST" }
            #expect(sends.isEmpty, "nothing goes to Twilio: \(sends.count) send(s)")
        }
    }
}
