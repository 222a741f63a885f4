import AgentConnectCore
import AsyncHTTPClient
import EventBus
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOConcurrencyHelpers
import ServiceSupport
import Store
import TwilioKit

@testable import Outbound

/// Relay call tokens held in memory: each minted token and the CallSid bound to it.
final class InMemoryCallTokens: CallTokenIssuer {
    private let state = NIOLockedValueBox<(minted: [String], bound: [String: String])>(([], [:]))

    var minted: [String] { state.withLockedValue { $0.minted } }
    var bound: [String: String] { state.withLockedValue { $0.bound } }

    func mint(callSid: String?, conversationId: String?) async throws -> String {
        state.withLockedValue { state in
            let token = String(repeating: "0", count: 56) + String(format: "%08x", state.minted.count + 1)
            state.minted.append(token)
            return token
        }
    }

    func bind(_ token: String, callSid: String) async throws {
        state.withLockedValue { $0.bound[token] = callSid }
    }
}

/// outbound's real components on the twins: ``InMemoryStore``, in-memory `Idempotency-Key` records and
/// call tokens, and a ``FakeTwilio`` on localhost reached through the service's own Twilio client.
struct OutboundHarness: Sendable {
    static let token = "outbound-test-token"
    static let agent = "+15550002222"
    static let whatsAppAgent = "whatsapp:+15550003333"
    static let logger: Logger = {
        var logger = Logger(label: "outbound-test")
        logger.logLevel = .warning
        return logger
    }()

    let configuration: OutboundConfiguration
    let api: ConversationsAPI
    let store = InMemoryStore()
    let keys = InMemoryIdempotencyRecords()
    let callTokens = InMemoryCallTokens()
    let twilio: FakeTwilio

    /// Runs `body` against a live fake Twilio, with `settings` on top of the test configuration.
    static func run(_ settings: [String: String] = [:], _ body: @Sendable (OutboundHarness) async throws -> Void) async throws {
        let twilio = FakeTwilio()
        try await twilio.run { url in
            var values = [
                "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000001", "TWILIO_AUTH_TOKEN": "fake-twilio-token",
                "TWILIO_API_BASE_URL": url, "TWILIO_CONVERSATIONS_BASE_URL": url, "TWILIO_STUDIO_BASE_URL": url,
                "TWILIO_PHONE_NUMBER": agent, "TWILIO_WHATSAPP_NUMBER": whatsAppAgent, "TWILIO_RCS_SENDER_ID": "rcs:acme",
                "OUTBOUND_API_TOKEN": token, "OUTBOUND_RETRY_BASE_MS": "1", "OUTBOUND_RETRY_MAX_MS": "20", "TWILIO_HTTP_TIMEOUT_MS": "5000",
            ]
            values.merge(settings) { $1 }
            let configuration = try OutboundConfiguration(environment: Environment(values))
            let api = Outbound.makeAPI(configuration: configuration, httpClient: HTTP1Client.shared)
            try await body(OutboundHarness(configuration: configuration, api: api, twilio: twilio))
        }
    }

    /// The service's router on the twins, in process.
    func withRoutes(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let health = HealthState()
        health.markReady()
        let router = Outbound.makeRouter(
            configuration: configuration, api: api, store: store, keys: keys, callTokens: callTokens, health: health, readiness: nil,
            logger: Self.logger)
        try await Application(router: router).test(.router) { client in try await body(client) }
    }

    /// The service's reply deliverer on the twins.
    func deliverer(owner: String = "outbound-test/1") -> ReplyDeliverer {
        Outbound.makeDeliverer(configuration: configuration, api: api, store: store, logger: Self.logger, owner: owner)
    }

    /// A POST to the app-facing API with the bearer token (or `token`) and an optional `Idempotency-Key`.
    static func post(
        _ client: any TestClientProtocol, _ path: String, _ body: JSONValue, token: String? = OutboundHarness.token, key: String? = nil
    ) async throws -> (status: HTTPResponse.Status, json: JSONValue, body: String, headers: HTTPFields) {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let key { headers[HTTPField.Name("Idempotency-Key")!] = key }
        return try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body.compactJSON)) { response in
            let text = String(buffer: response.body)
            return (response.status, (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) ?? .null, text, response.headers)
        }
    }
}

/// A `reply.ready` envelope and the bus entry that carries it.
func replyEntry(
    _ reply: ReplyReady, id: String = BusEvent.newID(), conversationId: String = "conv-1", channel: ChannelKind = .sms
) throws -> (event: BusEvent, entry: BusEntry) {
    let event = try BusEvent(reply, id: id, conversationId: conversationId, channel: channel)
    return (event, BusEntry(stream: Streams.outbound, id: "1-0", event: event, raw: try event.encoded()))
}
