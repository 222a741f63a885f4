import AgentConnectCore
import EventBus
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import ServiceLifecycle
import ServiceSupport
import TwilioKit

/// voice-relay: holds ConversationRelay sockets, publishes the caller's turns and streams replies back.
@main
struct VoiceRelay {
    static func main() async {
        await ServiceMain.run(service: "voice-relay", defaultThreads: nil) { environment, logger in
            try buildServiceGroup(configuration: VoiceConfiguration(environment: environment), logger: logger)
        }
    }

    /// The composition root: Redis, the frame reader, HTTP/WebSocket, then the call drain.
    static func buildServiceGroup(configuration: VoiceConfiguration, logger: Logger) throws -> ServiceGroup {
        let health = HealthState()
        // Everything a relay keeps in Redis is about calls: on `VOICE_REDIS_URL` when it is set, where
        // nothing waits for `WAITAOF` (README, "Calls on a Redis of their own").
        let redis = RedisClient(configuration: configuration.common.callsRedis, logger: logger)
        let bus = RedisStreamsEventBus(
            client: redis, retentionSeconds: configuration.common.streamRetentionSeconds,
            durability: configuration.common.voiceRedis == nil ? configuration.common.busDurability : .none)
        // `applicationReconnect="true"` in the TwiML (`CONVERSATION_RELAY_APPLICATION_RECONNECT`): calls may move between relays.
        let reconnect = configuration.relay.attributes.contains { $0.0 == "applicationReconnect" && $0.1.lowercased() == "true" }
        let registry = CallRegistry(
            instance: configuration.common.instanceId, redis: redis, reconnect: reconnect,
            livenessTTLMilliseconds: configuration.livenessTTLMilliseconds, logger: logger)
        let verifier = TwilioRequestVerifier(authToken: configuration.authToken, publicDomain: configuration.publicDomain)
        var services: [any Service] = [RedisClientService(client: redis)]
        var lookup: ConversationLookup?
        if let twilio = configuration.twilio {
            var httpConfiguration = HTTP1Client.Configuration()
            httpConfiguration.tracing = Traces.service != nil
            let http = HTTP1Client(configuration: httpConfiguration)
            services.append(HTTPClientService(client: http))
            lookup = ConversationLookup(rest: TwilioRESTClient(configuration: twilio, httpClient: http), logger: logger)
        }
        let tokens = RelayCallTokens(redis: redis, ttlSeconds: configuration.tokenTTLSeconds)
        let calls = CallConversations(redis: redis, lookup: lookup)
        let sockets = RelaySocketHandler(
            configuration: configuration, registry: registry, bus: bus, verifier: verifier, tokens: tokens, lookup: lookup, calls: calls,
            logger: logger)
        let router = Router(context: BasicWebSocketRequestContext.self)
        OperationalRoutes.add(to: router, health: health, readiness: DependencyProbe(redis: redis).check)
        VoiceCallbackRoutes(
            configuration: configuration, bus: bus, verifier: verifier, tokens: tokens, logger: logger, calls: calls, hookRedis: redis
        )
        .add(to: router)
        // A draining relay refuses the upgrade itself (no socket is opened), so a reconnect goes elsewhere.
        router.ws("/ws", shouldUpgrade: { _, _ in registry.isAccepting ? .upgrade([:]) : .dontUpgrade }) { inbound, outbound, context in
            await sockets.handle(inbound, outbound, context.request)
        }
        let app = Application(
            router: router,
            server: webSocketServer(router: router, limits: configuration.httpLimits),
            configuration: .init(address: .hostname(configuration.common.host, port: configuration.common.port), serverName: "voice-relay"),
            onServerRunning: { _ in health.markReady() }, logger: logger)
        services += [
            VoiceFrameReader(bus: bus, redis: redis, registry: registry, logger: logger),
            RelayLiveness(
                instance: configuration.common.instanceId, redis: redis, bus: bus, partitions: configuration.common.inboundPartitions,
                relayOnly: lookup == nil, logger: logger, ttlMilliseconds: configuration.livenessTTLMilliseconds,
                keepHeartbeatOnExit: { registry.handedOverCalls }),
            app,
            CallDrain(registry: registry, health: health, grace: .seconds(configuration.drainSeconds), logger: logger),
        ]
        return ServiceMain.group(services: services, health: health, logger: logger)
    }
}

extension VoiceRelay {
    /// HTTP/1 with the WebSocket upgrade; idle connections are closed (`HTTP_IDLE_TIMEOUT_SECONDS`),
    /// and so is one whose first request head is not complete within the same time.
    static func webSocketServer(router: Router<BasicWebSocketRequestContext>, limits: HTTPServerLimits) -> HTTPServerBuilder {
        let webSocketResponder = router.buildResponder()
        return HTTPServerBuilder { responder in
            HeaderDeadlineChannel(
                inner: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder,
                    configuration: .init(http1: limits.http1, ws: .init(autoPing: .disabled))),
                deadline: limits.idleTimeout,
                // Unanswered pings: the call's peer is gone (two and a half ping intervals without a byte).
                readIdleTimeout: .seconds(Int64(RelaySocketHandler.pingIntervalSeconds * 5 / 2)))
        }
    }
}

/// On SIGTERM: stop taking calls (ready turns 503) and wait for live calls to end, up to the grace
/// period; then the HTTP server and the frame reader stop. With `applicationReconnect`, live calls are
/// handed over instead: their sockets are closed (1012) and ConversationRelay reconnects each to
/// another relay, which takes it over (``CallRegistry``).
struct CallDrain: Service {
    let registry: CallRegistry
    let health: HealthState
    let grace: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        health.markDraining()
        registry.stopAccepting()
        let deadline = ContinuousClock.now + grace
        logger.info("draining calls", metadata: ["live": "\(registry.count)"])
        if registry.reconnect { await registry.handOverAll() }
        while registry.count > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(100))
        }
        logger.info("drained", metadata: ["remaining": "\(registry.count)"])
    }
}
