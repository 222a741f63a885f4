import AgentConnect
import EventBus
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import ServiceSupport

/// Answers voice-relay's per-call TwiML requests with the author's hook
/// (``VoiceChannel/onInboundCallTwiML(_:)``) through Redis (``TwiMLHookChannel``); idle when no hook
/// is registered.
struct TwiMLHookService: Service {
    let tac: TAC
    let redis: RedisClient

    func run() async throws {
        guard let hook = tac.callbacks.withLockedValue(\.twimlHook) else {
            try? await gracefulShutdown()
            return
        }
        let logger = tac.logger
        await cancelWhenGracefulShutdown {
            await TwiMLHookChannel.serve(redis: redis) { fields in
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
