import AgentConnectCore
import EventBus
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle
import ServiceSupport
import Foundation

/// Reads this relay's own stream (`tac:voice:<instance>`) and writes each reply frame to the socket
/// of its call, dropping frames of interrupted or superseded turns and replays of a redone turn.
struct VoiceFrameReader: Service {
    let bus: any EventBus
    let redis: RedisClient
    let registry: CallRegistry
    let logger: Logger

    func run() async throws {
        let stream = Streams.voice(instance: registry.instance)
        let stopping = NIOLockedValueBox(false)
        await withGracefulShutdownHandler {
            var position = "$"
            var backoff = Backoff()
            var lastTrim = ContinuousClock.now
            while !stopping.withLockedValue({ $0 }) {
                do {
                    if position == "$" {
                        // Start after the newest entry: frames for calls we no longer hold are of no use.
                        let last = try await redis.command("XREVRANGE", .string(stream), "+", "-", "COUNT", "1")
                        position = last.array?.first?.array?.first?.string ?? "0-0"
                    }
                    let entries = try await bus.read(after: [stream: position], count: 256, blockMilliseconds: 500)
                    for entry in entries {
                        position = entry.id
                        if let event = entry.event { await forward(event) }
                    }
                    if ContinuousClock.now - lastTrim > .seconds(5) {
                        lastTrim = .now
                        try await redis.command("XTRIM", .string(stream), "MAXLEN", "~", "10000")
                    }
                    backoff.reset()
                } catch {
                    if stopping.withLockedValue({ $0 }) { break }
                    let delay = backoff.next()
                    logger.warning("voice stream read failed; retrying", metadata: ["error": "\(error)", "retry.ms": "\(delay.milliseconds)"])
                    try? await Task.sleep(for: delay)
                }
            }
            _ = try? await redis.command("DEL", .string(stream))
        } onGracefulShutdown: {
            stopping.withLockedValue { $0 = true }
        }
    }

    private func forward(_ event: BusEvent) async {
        guard event.type == EventType.voiceFrame, let session = registry.session(event.conversationId),
            let turnId = event.payload["turnId"]?.string, let frame = event.payload["frame"]
        else { return }
        let (forward, sincePrompt) = session.admit(
            turnId: turnId, sequence: Int(event.payload["seq"]?.double ?? 0), generation: event.payload["gen"]?.string,
            isLast: frame["last"]?.bool == true)
        guard forward else {
            Counter(label: "agentconnect_voice_frames_dropped_total").increment()
            return
        }
        if let sincePrompt {
            Timer(label: "agentconnect_voice_first_token_seconds").recordNanoseconds(sincePrompt.nanoseconds)
        }
        let promptId = String(turnId.prefix { $0 != ":" })
        if sincePrompt != nil { session.promptSpans.event(promptId, "first token") }
        if frame["last"]?.bool == true { session.promptSpans.end(promptId, event: "last token") }
        guard let text = try? String(decoding: JSONEncoderShared.encode(frame), as: UTF8.self) else { return }
        do {
            try await session.writer.write(.text(text))
        } catch {
            logger.debug("frame for a closed socket", metadata: ["call.sid": "\(session.callSid)"])
        }
    }
}

/// Compact JSON for outbound frames.
enum JSONEncoderShared {
    static func encode(_ value: JSONValue) throws -> [UInt8] {
        Array(try encoder.encode(value))
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()
}
