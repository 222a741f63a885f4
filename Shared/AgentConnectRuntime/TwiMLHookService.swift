import AgentConnect
package import AgentConnectCore
import EventBus
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import ServiceSupport

/// Answers voice-relay's per-call TwiML requests with the author's hook
/// (``VoiceChannel/onInboundCallTwiML(_:)``) through ``TwiMLHookRequests`` (Redis in production,
/// ``TwiMLHookChannel``); idle when no hook is registered.
struct TwiMLHookService: Service {
    let tac: TAC
    let requests: any TwiMLHookRequests

    func run() async throws {
        guard let hook = tac.callbacks.withLockedValue(\.twimlHook) else {
            try? await gracefulShutdown()
            return
        }
        let logger = tac.logger
        await cancelWhenGracefulShutdown {
            await requests.serve { fields in
                do {
                    return try await hook(TwiMLRequest(fields: fields))
                } catch {
                    logger.warning("the TwiML hook threw; the call gets the environment's settings", metadata: ["error": "\(error)"])
                    await tac.reportError(error, context: ["channel": "voice", "source": "twiml-hook", "call.sid": fields["CallSid"] ?? ""])
                    throw error
                }
            }
        }
    }
}

/// Where voice-relay's per-call TwiML requests reach a worker's hook.
package protocol TwiMLHookRequests: Sendable {
    /// Answers requests (a call's webhook fields) with `hook` until cancelled.
    func serve(_ hook: @escaping @Sendable ([String: String]) async throws -> ConversationRelayOptions?) async
}

/// The requests voice-relay pushes to Redis (``TwiMLHookChannel``).
struct RedisTwiMLHookRequests: TwiMLHookRequests {
    let redis: RedisClient

    func serve(_ hook: @escaping @Sendable ([String: String]) async throws -> ConversationRelayOptions?) async {
        await TwiMLHookChannel.serve(redis: redis, hook: hook)
    }
}

/// Requests made in memory, for tests: ``ask(_:)`` plays voice-relay's part.
package final class InMemoryTwiMLHookRequests: TwiMLHookRequests {
    private typealias Hook = @Sendable ([String: String]) async throws -> ConversationRelayOptions?
    private let hook = NIOLockedValueBox<Hook?>(nil)

    package init() {}

    /// Whether a worker is serving requests.
    package var isServed: Bool { hook.withLockedValue { $0 != nil } }

    /// The hook's answer to a call's webhook fields; nil when no worker serves requests.
    package func ask(_ fields: [String: String]) async throws -> ConversationRelayOptions? {
        guard let hook = hook.withLockedValue({ $0 }) else { return nil }
        return try await hook(fields)
    }

    package func serve(_ hook: @escaping @Sendable ([String: String]) async throws -> ConversationRelayOptions?) async {
        self.hook.withLockedValue { $0 = hook }
        let (parked, end) = AsyncStream<Never>.makeStream()
        await withTaskCancellationHandler {
            for await _ in parked {}
        } onCancel: {
            end.finish()
        }
        self.hook.withLockedValue { $0 = nil }
    }
}
