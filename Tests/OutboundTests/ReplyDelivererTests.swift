import AgentConnectCore
import EventBus
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import Store
import Testing
import TwilioKit

@testable import Outbound

/// outbound's `ReplyDeliverer` as the composition root builds it, on ``InMemoryStore`` and a fake
/// Twilio that, like Twilio, does not deduplicate a resend.
@Suite("Reply delivery")
struct ReplyDelivererTests {
    /// A reply of about 4,000 characters: three parts of at most 1,600.
    static let longText = (1...60).map { "Sentence number \($0) of a long answer about your booking options." }.joined(separator: " ")

    typealias Harness = OutboundHarness
    static let customer = "+15558881111"

    /// An SMS conversation's two participants in Twilio: the agent (`PA-agent`, of `agentType`) and
    /// the customer (`PA-customer`).
    static func smsParticipants(agentType: String) -> [JSONValue] {
        [
            ["id": "PA-agent", "type": .string(agentType), "addresses": [["channel": "SMS", "address": .string(Harness.agent)]]],
            ["id": "PA-customer", "type": "CUSTOMER", "addresses": [["channel": "SMS", "address": .string(customer)]]],
        ]
    }

    func classic(_ text: String, customer: String = ReplyDelivererTests.customer) -> ReplyReady {
        ReplyReady(text: text, mode: .classic, customerAddress: customer, agentAddress: Harness.agent)
    }

    @Test("a new reply is sent once and its row marked sent; the entry redelivered after that is skipped")
    func sentOnce() async throws {
        try await Harness.run { harness in
            let deliverer = harness.deliverer()
            let (event, entry) = try replyEntry(classic("Your table is booked"), id: "r-once")
            try await deliverer.deliver(event, entry: entry)
            let sent = try #require(harness.twilio.messages.first)
            #expect(sent.body == "Your table is booked" && sent.from == Harness.agent && sent.to == Self.customer)
            let row = try #require(harness.store.delivery(replyId: "r-once"))
            #expect(row.status == .sent && row.providerId == sent.sid && row.attempts == 1 && row.inDoubtSince == nil)
            #expect(harness.twilio.sendRequests.first?.headers["i-twilio-idempotency-token"] == "r-once")
            // Redelivered (by this process or another owner): already sent, not sent again.
            try await deliverer.deliver(event, entry: entry)
            try await harness.deliverer(owner: "outbound-test/2").deliver(event, entry: entry)
            #expect(harness.twilio.sendRequests.count == 1)
        }
    }

    @Test("a reply to a customer who opted out is recorded failed, not sent, not retried")
    func optedOut() async throws {
        try await Harness.run { harness in
            try await harness.store.setOptedOut(true, agent: Harness.agent, customer: Self.customer)
            let (event, entry) = try replyEntry(classic("Still there?"), id: "r-stop")
            try await harness.deliverer().deliver(event, entry: entry)
            #expect(harness.twilio.requests.isEmpty)
            let row = try #require(harness.store.delivery(replyId: "r-stop"))
            #expect(row.status == .failed && row.error?.contains("opted out") == true && row.attempts == 1)
        }
    }

    @Test("Twilio's 21610 (unsubscribed): the opt-out is remembered, the reply recorded failed, not retried")
    func unsubscribedByTwilio() async throws {
        try await Harness.run { harness in
            harness.twilio.fail(.answer(status: 400, code: MessageRules.ErrorCode.unsubscribed))
            let (event, entry) = try replyEntry(classic("Hello?"), id: "r-21610")
            try await harness.deliverer().deliver(event, entry: entry)
            #expect(harness.twilio.sendRequests.count == 1 && harness.twilio.messages.isEmpty)
            #expect(try await harness.store.isOptedOut(agent: Harness.agent, customer: Self.customer))
            #expect(harness.store.delivery(replyId: "r-21610")?.status == .failed)
        }
    }

    @Test("a 5xx after Twilio created the message: in doubt, found by reconciliation, not resent")
    func serverErrorReconciled() async throws {
        try await Harness.run { harness in
            harness.twilio.fail(.answer(status: 500, created: true))
            let (event, entry) = try replyEntry(classic("Your code is 1234"), id: "r-500")
            try await harness.deliverer().deliver(event, entry: entry)
            #expect(harness.twilio.sendRequests.count == 1 && harness.twilio.messages.count == 1)
            let row = try #require(harness.store.delivery(replyId: "r-500"))
            #expect(row.status == .sent && row.providerId == harness.twilio.messages.first?.sid)
        }
    }

    @Test("a 5xx before Twilio created anything: in doubt, not found by reconciliation, so sent again, once")
    func serverErrorResent() async throws {
        try await Harness.run { harness in
            harness.twilio.fail(.answer(status: 503))
            let (event, entry) = try replyEntry(classic("Your code is 5678"), id: "r-503")
            try await harness.deliverer().deliver(event, entry: entry)
            #expect(harness.twilio.sendRequests.count == 2 && harness.twilio.messages.count == 1)
            #expect(harness.store.delivery(replyId: "r-503")?.providerId == harness.twilio.messages.first?.sid)
        }
    }

    @Test("a send that times out after Twilio took it: reconciled, not resent")
    func timeoutReconciled() async throws {
        try await Harness.run(["TWILIO_HTTP_TIMEOUT_MS": "1000"]) { harness in
            harness.twilio.fail(.hold)
            let (event, entry) = try replyEntry(classic("See you at 7"), id: "r-timeout")
            try await harness.deliverer().deliver(event, entry: entry)
            #expect(harness.twilio.sendRequests.count == 1 && harness.twilio.messages.count == 1)
            #expect(harness.store.delivery(replyId: "r-timeout")?.status == .sent)
        }
    }

    @Test("a reply redelivered while its send is in doubt (the first owner died) is reconciled, not resent")
    func redeliveredInDoubt() async throws {
        try await Harness.run { harness in
            let (event, entry) = try replyEntry(classic("Booked for Friday"), id: "r-died")
            // The first owner claimed the row with its send recorded, and its request reached Twilio; then it died.
            let first = try await harness.store.claimForSending(
                replyId: "r-died", conversationId: "conv-1", channel: .sms, textHash: ReplyDeliverer.textHash("Booked for Friday"), owner: "dead",
                leaseMilliseconds: 1, optOut: (Harness.agent, Self.customer), targetKnown: true)
            #expect(first.sendRecorded)
            _ = try await harness.api.sendClassicMessage(from: Harness.agent, to: Self.customer, body: "Booked for Friday", idempotencyKey: "r-died")
            // Its lease (1 ms) is over by the time another owner gets the entry.
            try await harness.deliverer(owner: "outbound-test/2").deliver(event, entry: entry)
            #expect(harness.twilio.sendRequests.count == 1)
            #expect(harness.store.delivery(replyId: "r-died")?.providerId == harness.twilio.messages.first?.sid)
        }
    }

    @Test("a reply longer than 1,600 characters goes out as ordered parts, each with its row; redelivered, nothing is resent")
    func longReplySplit() async throws {
        try await Harness.run { harness in
            let text = Self.longText
            let expected = MessageSplitter.split(text, limit: 1600)
            #expect(expected.count >= 2)
            let (event, entry) = try replyEntry(classic(text), id: "r-long")
            try await harness.deliverer().deliver(event, entry: entry)
            #expect(harness.twilio.messages.map(\.body) == expected)
            let ids = ["r-long"] + (2...expected.count).map { "r-long:p\($0)" }
            #expect(ids.map { harness.store.delivery(replyId: $0)?.status } == ids.map { _ in .sent })
            try await harness.deliverer(owner: "outbound-test/2").deliver(event, entry: entry)
            #expect(harness.twilio.sendRequests.count == expected.count)
        }
    }

    @Test("a part refused by Twilio is given up (dead-lettered); the parts after it never go out, even redelivered")
    func longReplyGivenUpPart() async throws {
        try await Harness.run { harness in
            let text = Self.longText
            let expected = MessageSplitter.split(text, limit: 1600)
            #expect(expected.count >= 3)
            let (event, entry) = try replyEntry(classic(text), id: "r-part")
            harness.twilio.fail(.succeed, .answer(status: 400, code: 21211))
            await #expect(throws: GiveUp.self) { try await harness.deliverer().deliver(event, entry: entry) }
            #expect(harness.twilio.messages.map(\.body) == [expected[0]])
            #expect(harness.store.delivery(replyId: "r-part")?.status == .sent && harness.store.delivery(replyId: "r-part:p2")?.status == .failed)
            // Redelivered (the entry was not acknowledged before the process died): part 1 is skipped, part 2 stops the rest,
            // both counted as duplicates on /metrics.
            let duplicates = try await duplicateDeliveries(harness)
            try await harness.deliverer(owner: "outbound-test/2").deliver(event, entry: entry)
            #expect(harness.twilio.sendRequests.count == 2)
            #expect(harness.store.delivery(replyId: "r-part:p3") == nil)
            #expect(try await duplicateDeliveries(harness) >= duplicates + 2)
        }
    }

    /// `agentconnect_deliveries_total{outcome="duplicate"}` as outbound's `/metrics` renders it (0 before the first).
    func duplicateDeliveries(_ harness: Harness) async throws -> Double {
        let text = NIOLockedValueBox("")
        try await harness.withRoutes { client in
            let body = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            text.withLockedValue { $0 = body }
        }
        let line = text.withLockedValue { $0 }.split(separator: "\n").first { $0.hasPrefix(#"agentconnect_deliveries_total{outcome="duplicate"}"#) }
        return line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? 0
    }

    @Test(
        "an orchestrator reply to a message whose author is an agent participant (another AI agent) is not sent; its row is failed and the conversation names that participant as the agent"
    )
    func replyToAnAgentParticipant() async throws {
        try await Harness.run { harness in
            let other: JSONValue = ["id": "PA-other", "type": "AI_AGENT", "addresses": [["channel": "SMS", "address": "+15558882222"]]]
            let agent: JSONValue = ["id": "PA-agent", "type": "AI_AGENT", "addresses": [["channel": "SMS", "address": .string(Harness.agent)]]]
            harness.twilio.setParticipants("CO2", [other, agent])
            let reply = ReplyReady(
                text: "You said: hi", mode: .orchestrator, customerAddress: "+15558882222", customerParticipantId: "PA-other",
                agentAddress: Harness.agent)
            let (event, entry) = try replyEntry(reply, id: "r-agent-author", conversationId: "CO2")
            try await harness.deliverer().deliver(event, entry: entry)
            #expect(harness.twilio.sendRequests.isEmpty && harness.twilio.communications("CO2").isEmpty)
            #expect(harness.twilio.requests.allSatisfy { $0.method == "GET" })
            let row = try #require(harness.store.delivery(replyId: "r-agent-author"))
            #expect(row.status == .failed && row.error?.contains("own message") == true)
            #expect(try await harness.store.conversation(id: "CO2")?.agentParticipantId == "PA-other")
        }
    }

    @Test("retryable failures are retried up to OUTBOUND_MAX_ATTEMPTS, then the reply is given up and its row failed")
    func retriesThenGiveUp() async throws {
        try await Harness.run(["OUTBOUND_MAX_ATTEMPTS": "2"]) { harness in
            harness.twilio.fail(.answer(status: 429), .answer(status: 429))
            let (event, entry) = try replyEntry(classic("Try again"), id: "r-429")
            await #expect(throws: GiveUp.self) { try await harness.deliverer().deliver(event, entry: entry) }
            #expect(harness.twilio.sendRequests.count == 2 && harness.twilio.messages.isEmpty)
            #expect(harness.store.delivery(replyId: "r-429")?.status == .failed)
        }
    }

    @Test("a malformed reply.ready is given up at once (dead-lettered), nothing sent")
    func malformed() async throws {
        try await Harness.run { harness in
            let event = BusEvent(
                type: EventType.replyReady, conversationId: "conv-1", channel: .sms,
                payload: ["mode": "classic", "customerAddress": .string(Self.customer)])
            let entry = BusEntry(stream: Streams.outbound, id: "1-0", event: event, raw: try event.encoded())
            await #expect(throws: GiveUp.self) { try await harness.deliverer().deliver(event, entry: entry) }
            #expect(harness.twilio.requests.isEmpty && harness.store.delivery(replyId: event.id) == nil)
        }
    }

    @Test("an orchestrator reply: participants reconciled once (remembered), SEND_MESSAGE from the agent participant to the customer")
    func orchestrated() async throws {
        try await Harness.run { harness in
            harness.twilio.setParticipants("CO1", Self.smsParticipants(agentType: "UNKNOWN"))
            let reply = ReplyReady(text: "Hello from the agent", mode: .orchestrator, customerAddress: Self.customer, agentAddress: Harness.agent)
            let (first, firstEntry) = try replyEntry(reply, id: "r-o1", conversationId: "CO1")
            try await harness.deliverer().deliver(first, entry: firstEntry)
            let (second, secondEntry) = try replyEntry(reply, id: "r-o2", conversationId: "CO1")
            try await harness.deliverer().deliver(second, entry: secondEntry)
            let sent = harness.twilio.communications("CO1")
            #expect(sent.count == 2)
            #expect(sent.allSatisfy { $0["author"]?["participantId"]?.string == "PA-agent" })
            #expect(sent.allSatisfy { $0["recipients"]?.array?.first?["participantId"]?.string == "PA-customer" })
            // The agent was retyped AI_AGENT once; the second reply read the reconciled participants with its claim.
            let listed = harness.twilio.requests.filter { $0.method == "GET" && $0.path.hasSuffix("/Participants") }
            #expect(listed.count == 1)
            #expect(harness.twilio.requests.filter { $0.method == "PUT" }.first?.json?["type"]?.string == "AI_AGENT")
            #expect(try await harness.store.conversation(id: "CO1")?.metadata[ParticipantReconciler.reconciledKey] == "1")
        }
    }

    @Test(
        "a store read that never answers fails the reconciliation at its bound (retried in place, not held for good); the next attempt goes through")
    func stuckStoreRead() async throws {
        try await Harness.run { harness in
            harness.twilio.setParticipants("CO9", Self.smsParticipants(agentType: "AI_AGENT"))
            let store = FirstReadStuck()
            let reconciler = ParticipantReconciler(api: harness.api, store: store, logger: Harness.logger, storeTimeout: .milliseconds(300))
            let resolve: @Sendable () async throws -> ParticipantIds = {
                try await reconciler.resolve(
                    conversationId: "CO9", channel: .sms, agentAddress: Harness.agent, customerAddress: Self.customer, authorParticipantId: nil)
            }
            let started = ContinuousClock.now
            let error = await #expect(throws: TimeoutError.self) { try await resolve() }
            #expect(ContinuousClock.now - started < .seconds(10))
            // The consumer treats it as an outage: the delivery is retried in place.
            let transient = error.map { PostgresStore.isUnavailable($0) } ?? false
            #expect(transient)
            let resolved = try await resolve()
            #expect(resolved == ParticipantIds(agentId: "PA-agent", customerId: "PA-customer"))
            let stored = try await store.conversation(id: "CO9")
            #expect(stored?.metadata[ParticipantReconciler.reconciledKey] == "1")
        }
    }
}

/// A conversation store whose first read never answers (a query caught in PostgreSQL's crash);
/// everything else goes to an ``InMemoryStore``.
final class FirstReadStuck: ConversationStore {
    let inner = InMemoryStore()
    private let reads = NIOLockedValueBox(0)

    func conversation(id: String) async throws -> ConversationRecord? {
        if reads.withLockedValue({ count in
            count += 1
            return count == 1
        }) {
            try await Task.sleep(for: .seconds(3600))
        }
        return try await inner.conversation(id: id)
    }

    func upsertConversation(_ record: ConversationRecord) async throws { try await inner.upsertConversation(record) }
    func setStatus(conversationId: String, status: String) async throws { try await inner.setStatus(conversationId: conversationId, status: status) }
    func markEnded(conversationId: String, channel: ChannelKind) async throws -> Bool {
        try await inner.markEnded(conversationId: conversationId, channel: channel)
    }
}
