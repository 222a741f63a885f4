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

@testable import VoiceRelay

/// The relay's signed Twilio routes, in process: an in-memory bus stands for Redis Streams. No test
/// here reaches Redis (the socket token of a successful `/twiml` is minted there: the integration
/// tests cover it).
@Suite("Voice callback routes")
struct VoiceCallbackRoutesTests {
    static let authToken = "route-test-token"
    static let domain = "relay.example.com"

    /// Runs `body` against the routes of a relay-only configuration (with `environment` added), with the
    /// bus they publish on.
    func withRoutes(
        environment: [String: String] = [:], _ body: @Sendable (any TestClientProtocol, InMemoryEventBus, VoiceConfiguration) async throws -> Void
    ) async throws {
        let configuration = try VoiceConfiguration(
            environment: Environment(
                ["TWILIO_AUTH_TOKEN": Self.authToken, "TWILIO_VOICE_PUBLIC_DOMAIN": Self.domain].merging(environment) { _, new in new }))
        let logger = Logger(label: "voice-relay-test")
        let bus = InMemoryEventBus()
        // Never connected: the routes tested here answer before a socket token is minted.
        let redis = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: 1), logger: logger)
        defer { redis.shutdown() }
        let router = Router()
        VoiceCallbackRoutes(
            configuration: configuration, bus: bus, verifier: TwilioRequestVerifier(authToken: Self.authToken, publicDomain: Self.domain),
            tokens: RelayCallTokens(redis: redis), logger: logger
        ).add(to: router)
        try await Application(router: router).test(.router) { client in try await body(client, bus, configuration) }
    }

    /// A form POST signed as Twilio signs it (for the public URL), or with `signature` as given ("": none),
    /// with `headers` added.
    func post(
        _ client: any TestClientProtocol, _ path: String, _ fields: [(String, String)], signature: String? = nil,
        headers extra: [(String, String)] = []
    ) async throws -> (status: HTTPResponse.Status, body: String) {
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        let signature = signature ?? TwilioSignature(authToken: Self.authToken).compute(url: "https://\(Self.domain)\(path)", params: fields)
        if !signature.isEmpty { headers[HTTPField.Name("X-Twilio-Signature")!] = signature }
        for (name, value) in extra {
            if let name = HTTPField.Name(name) { headers.append(HTTPField(name: name, value: value)) }
        }
        return try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: FormCoding.encode(fields))) {
            ($0.status, String(buffer: $0.body))
        }
    }

    func inbound(_ bus: InMemoryEventBus, _ configuration: VoiceConfiguration, conversationId: String) -> [BusEvent] {
        bus.events(on: Partitioner.inboundStream(for: conversationId, partitions: configuration.common.inboundPartitions))
    }

    @Test("/twiml with a wrong or no signature is refused (403) and publishes nothing")
    func twimlBadSignature() async throws {
        try await withRoutes { client, bus, configuration in
            let response = try await post(client, "/twiml", [("CallSid", "CA1"), ("From", "+15550001111")], signature: "bogus")
            #expect(response.status == .forbidden)
            #expect(try await post(client, "/twiml", [("CallSid", "CA1")], signature: "").status == .forbidden)
            #expect(inbound(bus, configuration, conversationId: "CA1").isEmpty)
        }
    }

    @Test("/twiml signed but without a CallSid is a bad request")
    func twimlWithoutCallSid() async throws {
        try await withRoutes { client, _, _ in
            let response = try await post(client, "/twiml", [("From", "+15550001111")])
            #expect(response.status == .badRequest)
        }
    }

    @Test("a status callback becomes voice.call-status on the call's conversation")
    func callStatus() async throws {
        try await withRoutes { client, bus, configuration in
            let response = try await post(client, "/twilio/call-events/status", [("CallSid", "CA2"), ("CallStatus", "ringing")])
            #expect(response.status == .ok)
            let events = inbound(bus, configuration, conversationId: "CA2")
            #expect(events.map(\.type) == [EventType.voiceCallStatus])
            #expect(events.first?.payload["kind"]?.string == "status")
            #expect(events.first?.payload["callSid"]?.string == "CA2")
            #expect(events.first?.payload["fields"]?["CallStatus"]?.string == "ringing")
        }
    }

    @Test("the session's end ends a relay-only conversation once, however often Twilio says so")
    func sessionEnded() async throws {
        try await withRoutes { client, bus, configuration in
            for _ in 0..<2 {
                let response = try await post(client, "/conversation-relay-callback", [("CallSid", "CA3"), ("SessionStatus", "ended")])
                #expect(response.status == .ok)
                #expect(response.body.isEmpty)
            }
            let events = inbound(bus, configuration, conversationId: "CA3")
            #expect(events.map(\.type) == [EventType.voiceCallStatus, EventType.conversationEnded, EventType.voiceCallStatus])
            let ended = events.first { $0.type == EventType.conversationEnded }
            #expect(ended?.payload["reason"]?.string == "hangup")
            #expect(ended?.payload["callSid"]?.string == "CA3")
            #expect(ended?.channel == .voice)
        }
    }

    @Test("a handoff with nowhere to go ends the conversation as a handoff and answers empty TwiML")
    func handoffWithoutDestination() async throws {
        try await withRoutes { client, bus, configuration in
            let response = try await post(client, "/conversation-relay-callback", [("CallSid", "CA4"), ("HandoffData", #"{"reason":"billing"}"#)])
            #expect(response.status == .ok)
            #expect(response.body.isEmpty)
            let ended = inbound(bus, configuration, conversationId: "CA4").first { $0.type == EventType.conversationEnded }
            #expect(ended?.payload["reason"]?.string == "handoff")
            #expect(ended?.payload["handoffData"]?.string == #"{"reason":"billing"}"#)
        }
    }

    @Test("a callback with a wrong signature is refused (403) and publishes nothing")
    func callbackBadSignature() async throws {
        try await withRoutes { client, bus, configuration in
            let response = try await post(
                client, "/conversation-relay-callback", [("CallSid", "CA5"), ("SessionStatus", "ended")], signature: "bogus")
            #expect(response.status == .forbidden)
            #expect(inbound(bus, configuration, conversationId: "CA5").isEmpty)
        }
    }

    @Test("/twiml signed for the Host or X-Forwarded-Host the client sent, not the public domain, is refused (403)")
    func twimlSpoofedHost() async throws {
        try await withRoutes { client, bus, configuration in
            let fields = [("CallSid", "CA6"), ("From", "+15554440042"), ("To", "+15550000001")]
            let signer = TwilioSignature(authToken: Self.authToken)
            let own = try await post(
                client, "/twiml", fields, signature: signer.compute(url: "http://127.0.0.1:8081/twiml", params: fields),
                headers: [("Host", "127.0.0.1:8081")])
            #expect(own.status == .forbidden)
            let forwarded = try await post(
                client, "/twiml", fields, signature: signer.compute(url: "https://evil.example/twiml", params: fields),
                headers: [("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https")])
            #expect(forwarded.status == .forbidden)
            #expect(inbound(bus, configuration, conversationId: "CA6").isEmpty)
        }
    }

    @Test("call events (status, amd, recording) answer 200 with an empty body and are published with their kind; no CallSid is 400; unsigned is 403")
    func callEvents() async throws {
        try await withRoutes { client, bus, configuration in
            for kind in ["status", "amd", "recording"] {
                let response = try await post(client, "/twilio/call-events/\(kind)", [("CallSid", "CA7"), ("CallStatus", "completed")])
                #expect(response.status == .ok && response.body.isEmpty, "\(kind)")
            }
            let events = inbound(bus, configuration, conversationId: "CA7")
            #expect(events.map { $0.payload["kind"]?.string } == ["status", "amd", "recording"])
            #expect(try await post(client, "/twilio/call-events/status", [("CallStatus", "completed")]).status == .badRequest)
            #expect(try await post(client, "/twilio/call-events/amd", [("CallSid", "CA8")], signature: "").status == .forbidden)
            #expect(inbound(bus, configuration, conversationId: "CA8").isEmpty)
        }
    }

    @Test("the <Connect action> callback of a completed call with handoff data answers 200 empty and ends the conversation once, as a handoff")
    func completedCallWithHandoffData() async throws {
        try await withRoutes { client, bus, configuration in
            let fields = [
                ("AccountSid", "AC1"), ("CallSid", "CA9"), ("CallStatus", "completed"), ("SessionId", "VX1"), ("SessionStatus", "ended"),
                ("SessionDuration", "12"), ("HandoffData", #"{"reason":"human"}"#),
            ]
            for _ in 0..<2 {
                let response = try await post(client, "/conversation-relay-callback", fields)
                #expect(response.status == .ok && response.body.isEmpty)
            }
            let ended = inbound(bus, configuration, conversationId: "CA9").filter { $0.type == EventType.conversationEnded }
            #expect(ended.count == 1)
            #expect(ended.first?.payload["reason"]?.string == "handoff")
        }
    }

    @Test("a voice handoff goes where VOICE_HANDOFF_TO says: a number is <Dial>ed; a Studio flow gets the handoff data, reason and conversation")
    func handoffDestinations() async throws {
        let handoff = [("CallSid", "CA10"), ("HandoffData", #"{"reason":"caller asked for a human","attributes":{"queue":"billing"}}"#)]
        try await withRoutes(environment: ["VOICE_HANDOFF_TO": "+15557654321"]) { client, _, _ in
            let response = try await post(client, "/conversation-relay-callback", handoff)
            #expect(response.status == .ok)
            #expect(response.body.contains("<Dial><Number>+15557654321</Number></Dial>"), "\(response.body)")
        }
        let studio = ["TWILIO_ACCOUNT_SID": "AC1", "TWILIO_STUDIO_HANDOFF_FLOW_SID": "FW00000000000000000000000000000042"]
        try await withRoutes(environment: studio) { client, _, _ in
            let response = try await post(client, "/conversation-relay-callback", handoff)
            #expect(response.status == .ok)
            #expect(
                response.body.contains("https://webhooks.twilio.com/v1/Accounts/AC1/Flows/FW00000000000000000000000000000042?"), "\(response.body)")
            let query = try #require(response.body.split(separator: "?").last?.split(separator: "<").first)
            let parameters = Dictionary(
                FormCoding.decode(String(query).replacingOccurrences(of: "&amp;", with: "&")), uniquingKeysWith: { first, _ in first })
            #expect(parameters["HandoffReason"] == "caller asked for a human")
            #expect(parameters["ConversationId"] == "CA10")
            #expect(parameters["HandoffData"]?.contains(#""queue":"billing""#) == true)
        }
    }
}
