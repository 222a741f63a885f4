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

    /// Runs `body` against the routes of a relay-only configuration, with the bus they publish on.
    func withRoutes(_ body: @Sendable (any TestClientProtocol, InMemoryEventBus, VoiceConfiguration) async throws -> Void) async throws {
        let configuration = try VoiceConfiguration(
            environment: Environment(["TWILIO_AUTH_TOKEN": Self.authToken, "TWILIO_VOICE_PUBLIC_DOMAIN": Self.domain]))
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

    /// A form POST signed as Twilio signs it (for the public URL), or with `signature` as given.
    func post(
        _ client: any TestClientProtocol, _ path: String, _ fields: [(String, String)], signature: String? = nil
    ) async throws -> (status: HTTPResponse.Status, body: String) {
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        headers[HTTPField.Name("X-Twilio-Signature")!] =
            signature ?? TwilioSignature(authToken: Self.authToken).compute(url: "https://\(Self.domain)\(path)", params: fields)
        return try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: FormCoding.encode(fields))) {
            ($0.status, String(buffer: $0.body))
        }
    }

    func inbound(_ bus: InMemoryEventBus, _ configuration: VoiceConfiguration, conversationId: String) -> [BusEvent] {
        bus.events(on: Partitioner.inboundStream(for: conversationId, partitions: configuration.common.inboundPartitions))
    }

    @Test("/twiml with a wrong signature is refused (403) and publishes nothing")
    func twimlBadSignature() async throws {
        try await withRoutes { client, bus, configuration in
            let response = try await post(client, "/twiml", [("CallSid", "CA1"), ("From", "+15550001111")], signature: "bogus")
            #expect(response.status == .forbidden)
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
}
