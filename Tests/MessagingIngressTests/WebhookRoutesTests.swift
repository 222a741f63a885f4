import AgentConnectCore
import EventBus
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import ServiceSupport
import Testing
import TwilioKit

@testable import MessagingIngress

/// messaging-ingress's routes as its composition root builds them, in process: an in-memory bus
/// stands for Redis Streams.
@Suite("Messaging ingress routes")
struct WebhookRoutesTests {
    static let authToken = "ingress-test-token"
    static let domain = "ingress.example.com"
    static let agent = "+15550002222"
    static let customer = "+15550001111"

    static func configuration() throws -> MessagingConfiguration {
        try MessagingConfiguration(
            environment: Environment([
                "TWILIO_AUTH_TOKEN": authToken, "TWILIO_WEBHOOK_PUBLIC_DOMAIN": domain, "TWILIO_PHONE_NUMBER": agent,
                "TWILIO_CONVERSATION_CONFIGURATION_ID": "CF1", "TWILIO_ACCOUNT_SID": "AC1", "WEBHOOK_MAX_BODY_BYTES": "1024",
                "TAC_INBOUND_PARTITIONS": "4",
            ]))
    }

    /// Runs `body` against the service's router, publishing on `bus`.
    /// - Parameter readiness: the dependency check behind `/health/ready` (nil: none).
    func withRoutes(
        bus: any EventBus = InMemoryEventBus(), readiness: (@Sendable () async -> Bool)? = nil,
        _ body: @Sendable (any TestClientProtocol, MessagingConfiguration) async throws -> Void
    ) async throws {
        let configuration = try Self.configuration()
        let health = HealthState()
        health.markReady()
        let router = MessagingIngress.buildRouter(
            configuration: configuration, bus: bus, health: health, readiness: readiness, logger: Logger(label: "messaging-ingress-test"))
        try await Application(router: router).test(.router) { client in try await body(client, configuration) }
    }

    /// Every event on the inbound partitions.
    func inbound(_ bus: InMemoryEventBus, _ configuration: MessagingConfiguration) -> [BusEvent] {
        (0..<configuration.common.inboundPartitions).flatMap { bus.events(on: Streams.inboundPartition($0)) }
    }

    /// A form POST signed as Twilio signs it for the public URL, or with `signature` as given (nil: none),
    /// with `headers` added (e.g. a fresh `I-Twilio-Idempotency-Token`, which Twilio does not sign).
    func postForm(
        _ client: any TestClientProtocol, _ path: String, _ fields: [(String, String)], signature: String?? = .none,
        headers: [(String, String)] = [], contentType: String = "application/x-www-form-urlencoded"
    ) async throws -> (status: HTTPResponse.Status, body: String) {
        let computed = TwilioSignature(authToken: Self.authToken).compute(url: "https://\(Self.domain)\(path)", params: fields)
        return try await post(
            client, path, body: Array(FormCoding.encode(fields).utf8), contentType: contentType,
            signature: signature ?? computed, headers: headers)
    }

    /// A JSON POST signed as Twilio signs JSON webhooks (`bodySHA256` in the URL), or with `signature` as given.
    func postJSON(
        _ client: any TestClientProtocol, _ path: String, _ body: [UInt8], signature: String?? = .none, headers: [(String, String)] = []
    ) async throws -> (status: HTTPResponse.Status, body: String) {
        let uri = "\(path)?bodySHA256=\(TwilioSignature.bodyHash(body))"
        let computed = TwilioSignature(authToken: Self.authToken).compute(url: "https://\(Self.domain)\(uri)")
        return try await post(client, uri, body: body, contentType: "application/json", signature: signature ?? computed, headers: headers)
    }

    func postJSON(
        _ client: any TestClientProtocol, _ path: String, _ json: JSONValue, headers: [(String, String)] = []
    ) async throws -> (status: HTTPResponse.Status, body: String) {
        try await postJSON(client, path, Array(json.compactJSON.utf8), headers: headers)
    }

    private func post(
        _ client: any TestClientProtocol, _ uri: String, body: [UInt8], contentType: String, signature: String?,
        headers extra: [(String, String)] = []
    ) async throws -> (status: HTTPResponse.Status, body: String) {
        var headers: HTTPFields = [.contentType: contentType]
        if let signature { headers[HTTPField.Name("X-Twilio-Signature")!] = signature }
        for (name, value) in extra {
            if let name = HTTPField.Name(name) { headers.append(HTTPField(name: name, value: value)) }
        }
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(bytes: body)) {
            ($0.status, String(buffer: $0.body))
        }
    }

    static let sms = [("From", customer), ("To", agent), ("MessageSid", "SM1"), ("AccountSid", "AC1"), ("Body", "hello")]

    @Test("a webhook without a valid signature is refused (403) before its body is looked at, and publishes nothing")
    func signatures() async throws {
        let bus = InMemoryEventBus()
        try await withRoutes(bus: bus) { client, configuration async throws in
            #expect(try await postForm(client, "/webhook", Self.sms, signature: "bogus").status == .forbidden)
            #expect(try await postForm(client, "/webhook", Self.sms, signature: .some(nil)).status == .forbidden)
            // Signed for another path.
            let elsewhere = TwilioSignature(authToken: Self.authToken).compute(url: "https://\(Self.domain)/other", params: Self.sms)
            #expect(try await postForm(client, "/webhook", Self.sms, signature: elsewhere).status == .forbidden)
            #expect(try await postJSON(client, "/webhook", Array(#"{"eventType":"X","data":{}}"#.utf8), signature: "bogus").status == .forbidden)
            #expect(
                try await post(client, "/webhook", body: Array("%zz".utf8), contentType: "application/x-www-form-urlencoded", signature: nil).status
                    == .forbidden)
            #expect(try await postForm(client, "/message-status", [("MessageSid", "SM1")], signature: "bogus").status == .forbidden)
            #expect(try await postJSON(client, "/ci-webhook", Array(#"{"conversationId":"c"}"#.utf8), signature: "bogus").status == .forbidden)
            #expect(inbound(bus, configuration).isEmpty)
        }
    }

    @Test("with a public domain configured, a signature for the Host or X-Forwarded-Host the client sent is refused (403); the domain's is accepted")
    func spoofedHost() async throws {
        let bus = InMemoryEventBus()
        try await withRoutes(bus: bus) { client, configuration async throws in
            let body = Array(
                #"{"eventType":"COMMUNICATION_CREATED","data":{"id":"comms_spoof","conversationId":"conv_spoof","author":{"address":"+15554440040","channel":"SMS"},"content":{"text":"hi"}}}"#
                    .utf8)
            let target = "/webhook?bodySHA256=\(TwilioSignature.bodyHash(body))"
            let signer = TwilioSignature(authToken: Self.authToken)
            func post(signedFor url: String, headers: [(String, String)] = []) async throws -> HTTPResponse.Status {
                try await self.post(
                    client, target, body: body, contentType: "application/json", signature: signer.compute(url: url), headers: headers
                )
                .status
            }
            #expect(try await post(signedFor: "http://127.0.0.1:8082" + target, headers: [("Host", "127.0.0.1:8082")]) == .forbidden)
            #expect(
                try await post(
                    signedFor: "https://evil.example" + target, headers: [("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https")])
                    == .forbidden)
            #expect(try await post(signedFor: "http://evil.example" + target, headers: [("Host", "evil.example")]) == .forbidden)
            #expect(inbound(bus, configuration).isEmpty)
            #expect(try await post(signedFor: "https://\(Self.domain)" + target) == .ok)
            #expect(inbound(bus, configuration).count == 1)
        }
    }

    @Test("a classic SMS is published once as a classic message.received on its conversation's partition, then answered as a duplicate")
    func classicOnceThenDuplicate() async throws {
        let bus = InMemoryEventBus()
        try await withRoutes(bus: bus) { client, configuration async throws in
            let first = try await postForm(client, "/webhook", Self.sms)
            #expect(first.status == .ok && first.body == #"{"status":"ok"}"#)
            let conversationId = classicConversationId(channel: .sms, agent: Self.agent, customer: Self.customer)
            let stream = Partitioner.inboundStream(for: conversationId, partitions: configuration.common.inboundPartitions)
            let events = bus.events(on: stream)
            try #require(events.count == 1)
            #expect(events[0].conversationId == conversationId && events[0].id == WebhookClassifier.eventId("msg:SM1"))
            let message = try events[0].decode(MessageReceived.self)
            #expect(message.mode == .classic && message.text == "hello" && message.messageSid == "SM1" && message.agentAddress == Self.agent)

            // Twilio's retry, or a replay with a fresh (unsigned) idempotency token: the same event, not published again.
            let again = try await postForm(client, "/webhook", Self.sms)
            #expect(again.status == .ok && again.body == #"{"status":"duplicate"}"#)
            let replay = try await postForm(client, "/webhook", Self.sms, headers: [("I-Twilio-Idempotency-Token", UUID().uuidString)])
            #expect(replay.status == .ok && replay.body == #"{"status":"duplicate"}"#)
            #expect(inbound(bus, configuration).count == 1)
        }
    }

    @Test("a form is read as a form whatever the case of its Content-Type, and with a charset")
    func formContentTypeAnyCase() async throws {
        let bus = InMemoryEventBus()
        try await withRoutes(bus: bus) { client, configuration async throws in
            let answer = try await postForm(client, "/webhook", Self.sms, contentType: "Application/X-WWW-Form-URLEncoded; charset=UTF-8")
            #expect(answer.status == .ok && answer.body == #"{"status":"ok"}"#)
            let events = inbound(bus, configuration)
            try #require(events.count == 1)
            #expect(try events[0].decode(MessageReceived.self).text == "hello")
        }
    }

    @Test("an orchestrator COMMUNICATION_CREATED is published as an orchestrator message.received; CONVERSATION_UPDATED CLOSED as conversation.ended")
    func orchestratorEvents() async throws {
        let bus = InMemoryEventBus()
        try await withRoutes(bus: bus) { client, configuration async throws in
            let message: JSONValue = [
                "eventType": "COMMUNICATION_CREATED",
                "data": [
                    "id": "comm1", "conversationId": "conv1",
                    "author": ["channel": "SMS", "address": .string(Self.customer), "participantId": "PC1"],
                    "content": ["text": "hi"],
                ],
            ]
            #expect(try await postJSON(client, "/webhook", message).body == #"{"status":"ok"}"#)
            #expect(try await postJSON(client, "/webhook", message).body == #"{"status":"duplicate"}"#)
            let closed: JSONValue = [
                "eventType": "CONVERSATION_UPDATED", "data": ["id": "conv1", "configurationId": "CF1", "status": "CLOSED", "updatedAt": "t1"],
            ]
            #expect(try await postJSON(client, "/webhook", closed).body == #"{"status":"ok"}"#)
            let events = bus.events(on: Partitioner.inboundStream(for: "conv1", partitions: configuration.common.inboundPartitions))
            #expect(events.map(\.type) == [EventType.messageReceived, EventType.conversationEnded])
            let received = try #require(events.first).decode(MessageReceived.self)
            #expect(received.mode == .orchestrator && received.communicationId == "comm1" && received.agentAddress == Self.agent)
            let ended = try #require(events.last).decode(ConversationEnded.self)
            #expect(ended.reason == .orchestrator && ended.status == "CLOSED" && ended.channelKnown == false)
        }
    }

    @Test("ignored and dropped webhooks are answered 200 without a publish")
    func ignoredAndDropped() async throws {
        let bus = InMemoryEventBus()
        try await withRoutes(bus: bus) { client, configuration async throws in
            #expect(try await postJSON(client, "/webhook", ["eventType": "PARTICIPANT_REMOVED", "data": [:]]).body == #"{"status":"ignored"}"#)
            let own = [("From", Self.agent), ("To", Self.agent), ("MessageSid", "SM2"), ("Body", "echo")]
            #expect(try await postForm(client, "/webhook", own).body == #"{"status":"dropped"}"#)
            #expect(inbound(bus, configuration).isEmpty)
        }
    }

    @Test(
        "a signed body that is not JSON (truncated, invalid UTF-8) or not an object, a malformed form or a webhook missing a field is 400, and publishes nothing"
    )
    func malformedBodies() async throws {
        let bus = InMemoryEventBus()
        try await withRoutes(bus: bus) { client, configuration async throws in
            #expect(try await postJSON(client, "/webhook", Array("{not json".utf8)).status == .badRequest)
            #expect(try await postJSON(client, "/webhook", Array(#"{"eventType": "COMMUNICATION_CREA"#.utf8)).status == .badRequest)
            #expect(try await postJSON(client, "/webhook", Array("[1,2]".utf8)).status == .badRequest)
            #expect(try await postJSON(client, "/webhook", [0xff, 0xfe, 0x7b]).status == .badRequest)
            let malformed = try await post(
                client, "/webhook", body: Array("%zz=1".utf8), contentType: "application/x-www-form-urlencoded", signature: "anything")
            #expect(malformed.status == .badRequest)
            #expect(try await postForm(client, "/webhook", [("From", Self.customer), ("To", Self.agent)]).status == .badRequest)
            #expect(try await postJSON(client, "/ci-webhook", ["operatorResults": []]).status == .badRequest)
            #expect(try await postJSON(client, "/ci-webhook", .array([])).status == .badRequest)
            #expect(inbound(bus, configuration).isEmpty)
        }
    }

    @Test("a body over WEBHOOK_MAX_BODY_BYTES is refused with 413 and publishes nothing")
    func oversizeBody() async throws {
        let bus = InMemoryEventBus()
        try await withRoutes(bus: bus) { client, configuration async throws in
            let big = Self.sms.filter { $0.0 != "Body" } + [("Body", String(repeating: "a", count: 2048))]
            let response = try await postForm(client, "/webhook", big)
            #expect(response.status == .contentTooLarge)
            #expect(response.body.contains("1024"))
            #expect(inbound(bus, configuration).isEmpty)
        }
    }

    @Test("/message-status publishes message.status once per message and status")
    func messageStatus() async throws {
        let bus = InMemoryEventBus()
        try await withRoutes(bus: bus) { client, configuration async throws in
            let fields = [("MessageSid", "SM7"), ("MessageStatus", "failed"), ("ErrorCode", "30003"), ("From", Self.agent), ("To", Self.customer)]
            #expect(try await postForm(client, "/message-status", fields).body == #"{"status":"ok"}"#)
            #expect(try await postForm(client, "/message-status", fields).body == #"{"status":"duplicate"}"#)
            let delivered = fields.map { $0.0 == "MessageStatus" ? ($0.0, "delivered") : $0 }
            #expect(try await postForm(client, "/message-status", delivered).body == #"{"status":"ok"}"#)
            let statuses = try inbound(bus, configuration).map { try $0.decode(MessageStatus.self) }
            #expect(statuses.map(\.status) == ["failed", "delivered"])
            #expect(statuses.first?.errorCode == "30003" && statuses.first?.customerAddress == Self.customer)
        }
    }

    @Test("/ci-webhook publishes the result whole as intelligence.result, once whatever the idempotency header")
    func intelligenceResult() async throws {
        let bus = InMemoryEventBus()
        try await withRoutes(bus: bus) { client, configuration async throws in
            let body: JSONValue = ["conversationId": "conv9", "operatorResults": [["id": "OR1"]], "intelligenceConfiguration": ["id": "IC1"]]
            #expect(try await postJSON(client, "/ci-webhook", body, headers: [("I-Twilio-Idempotency-Token", "one")]).body == #"{"status":"ok"}"#)
            // A replay with another idempotency token is the same result (deduplicated on its operator result ids).
            #expect(
                try await postJSON(client, "/ci-webhook", body, headers: [("I-Twilio-Idempotency-Token", "two")]).body == #"{"status":"duplicate"}"#)
            let events = bus.events(on: Partitioner.inboundStream(for: "conv9", partitions: configuration.common.inboundPartitions))
            #expect(try events.map { try $0.decode(IntelligenceResult.self).body } == [body])
        }
    }

    @Test("with Redis unreachable /health/ready is 503 (live stays 200) and a webhook is answered 503, so Twilio retries")
    func busUnavailable() async throws {
        let logger = Logger(label: "messaging-ingress-test")
        // Nothing listens on port 1: every publish fails to connect.
        let redis = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: 1), logger: logger)
        defer { redis.shutdown() }
        let probe = DependencyProbe(redis: redis)
        try await withRoutes(bus: RedisStreamsEventBus(client: redis), readiness: { await probe.check() }) { client, _ async throws in
            #expect(try await client.execute(uri: "/health/live", method: .get) { $0.status } == .ok)
            #expect(try await client.execute(uri: "/health/ready", method: .get) { $0.status } == .serviceUnavailable)
            let response = try await postForm(client, "/webhook", Self.sms)
            #expect(response.status == .serviceUnavailable)
        }
    }

    @Test(
        "a medium's size no Int holds is published as unknown (null), so no reader traps on it; the message still goes through",
        arguments: ["1e300", "-5.5", "1e19"])
    func unrepresentableMediaSize(size: String) async throws {
        let bus = InMemoryEventBus()
        try await withRoutes(bus: bus) { client, configuration async throws in
            let body = Array(
                #"{"eventType":"COMMUNICATION_CREATED","data":{"id":"comms_size","conversationId":"conv_size","author":{"address":"+15554449901","channel":"SMS"},"content":{"text":"look","media":[{"url":"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1","contentType":"image/png","size":\#(size)}]},"recipients":[]}}"#
                    .utf8)
            #expect(try await postJSON(client, "/webhook", body).status == .ok)
            let events = bus.events(on: Partitioner.inboundStream(for: "conv_size", partitions: configuration.common.inboundPartitions))
            try #require(events.count == 1)
            #expect(events[0].payload["media"]?.array?.first?["size"] == .null)
            let media = try #require(try events[0].decode(MessageReceived.self).media?.first)
            #expect(media.size == nil && media.contentType == "image/png" && media.url.hasSuffix("/Media/ME1"))
        }
    }

    @Test("/health/live answers 200")
    func health() async throws {
        try await withRoutes { client, _ async throws in
            #expect(try await client.execute(uri: "/health/live", method: .get) { $0.status } == .ok)
        }
    }
}
