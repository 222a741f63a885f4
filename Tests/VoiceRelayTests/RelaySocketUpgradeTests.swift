import AgentConnectCore
import EventBus
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import HummingbirdWSTesting
import HummingbirdWebSocket
import Logging
import ServiceSupport
import Testing
import TwilioKit

@testable import VoiceRelay

/// The relay's `/ws` upgrade on a live server in the test process (HTTP/1 with the WebSocket upgrade,
/// as the service serves it), with a Redis that never answers: every refusal here happens before, or
/// instead of, a look at Redis. Sockets with a real token, and calls, are the integration tests'.
@Suite("Relay socket upgrades")
struct RelaySocketUpgradeTests {
    static let authToken = "socket-test-token"
    static let domain = "relay.example.com"
    /// Well-formed (64 lower-case hex digits), so it would be looked up in Redis.
    static let wellFormedToken = String(repeating: "0123456789abcdef", count: 4)

    /// Runs `body` against a live relay; `draining`: the relay stopped taking calls (as after SIGTERM).
    func withRelay(draining: Bool = false, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let configuration = try VoiceConfiguration(
            environment: Environment(["TWILIO_AUTH_TOKEN": Self.authToken, "TWILIO_VOICE_PUBLIC_DOMAIN": Self.domain]))
        let logger = Logger(label: "voice-relay-test")
        // Nothing listens on port 1.
        let redis = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: 1), logger: logger)
        defer { redis.shutdown() }
        let registry = CallRegistry(instance: "relay-test", redis: redis, logger: logger)
        if draining { registry.stopAccepting() }
        let sockets = RelaySocketHandler(
            configuration: configuration, registry: registry, bus: InMemoryEventBus(),
            verifier: TwilioRequestVerifier(authToken: Self.authToken, publicDomain: Self.domain), tokens: RelayCallTokens(redis: redis),
            lookup: nil, logger: logger)
        let router = Router(context: BasicWebSocketRequestContext.self)
        VoiceRelay.addSocketRoute(to: router, registry: registry, sockets: sockets)
        let app = Application(
            router: router, server: VoiceRelay.webSocketServer(router: router, limits: configuration.httpLimits),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
        try await app.test(.live) { client in try await body(client) }
    }

    /// Opens `/ws?<query>` with `signature` (nil: signed as Twilio signs the public URL; "": none) and
    /// waits for the relay to close the socket.
    func upgrade(_ client: any TestClientProtocol, query: String, signature: String? = nil) async throws -> WebSocketCloseFrame? {
        let path = query.isEmpty ? "/ws" : "/ws?\(query)"
        var configuration = WebSocketClientConfiguration()
        let signature = signature ?? TwilioSignature(authToken: Self.authToken).compute(url: "wss://\(Self.domain)\(path)")
        if !signature.isEmpty { configuration.additionalHeaders[HTTPField.Name("X-Twilio-Signature")!] = signature }
        return try await client.ws(path, configuration: configuration) { inbound, _, _ in
            for try await _ in inbound {}
        }
    }

    @Test("a forged or missing signature is closed with 1008 before the token is looked at")
    func badSignature() async throws {
        try await withRelay { client in
            let forged = try await upgrade(client, query: "token=\(Self.wellFormedToken)", signature: "Zm9yZ2Vk")
            #expect(forged?.closeCode == .policyViolation && forged?.reason == "Invalid Twilio signature", "\(String(describing: forged))")
            let missing = try await upgrade(client, query: "token=\(Self.wellFormedToken)", signature: "")
            #expect(missing?.closeCode == .policyViolation && missing?.reason == "Missing Twilio signature", "\(String(describing: missing))")
            // Signed for another token than the one in the URL.
            let elsewhere = TwilioSignature(authToken: Self.authToken).compute(
                url: "wss://\(Self.domain)/ws?token=\(String(repeating: "f", count: 64))")
            let swapped = try await upgrade(client, query: "token=\(Self.wellFormedToken)", signature: elsewhere)
            #expect(swapped?.closeCode == .policyViolation && swapped?.reason == "Invalid Twilio signature")
        }
    }

    @Test("a signed upgrade without a token, or with one that is not 64 hex digits, is closed with 1008 without asking Redis")
    func malformedToken() async throws {
        try await withRelay { client in
            for query in ["", "token=", "token=nothex", "token=\(Self.wellFormedToken.uppercased())"] {
                let closed = try await upgrade(client, query: query)
                #expect(closed?.closeCode == .policyViolation && closed?.reason == "Unknown or already used call token", "\(query)")
            }
        }
    }

    @Test("a well-formed token that cannot be checked (Redis unreachable) is closed with 1011, so the call can be tried again")
    func tokenUnavailable() async throws {
        try await withRelay { client in
            let closed = try await upgrade(client, query: "token=\(Self.wellFormedToken)")
            #expect(closed?.closeCode == .unexpectedServerError && closed?.reason == "temporarily unavailable", "\(String(describing: closed))")
        }
    }

    @Test("a draining relay refuses the upgrade itself: no socket is opened")
    func draining() async throws {
        try await withRelay(draining: true) { client in
            await #expect(throws: (any Error).self) { try await upgrade(client, query: "token=\(Self.wellFormedToken)") }
        }
    }
}
