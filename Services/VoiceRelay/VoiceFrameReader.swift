import AgentConnectCore
import EventBus
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle
import ServiceSupport
import Foundation

/// Reads this relay's own stream (`tac:voice:<instance>`) and writes each reply frame to the socket
/// of its call, dropping frames of interrupted or superseded turns and replays of a redone turn. For
/// calls taken over from another relay it also reads that relay's stream, where their turns in
/// progress go on (``CallRegistry/adoptedPositions()``).
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
                    // The streams of relays whose calls were taken over here carry the rest of their turns in progress.
                    let positions = registry.adoptedPositions().merging([stream: position]) { _, own in own }
                    let entries = try await bus.read(after: positions, count: 256, blockMilliseconds: 500)
                    for entry in entries {
                        if entry.stream == stream { position = entry.id } else { registry.advance(entry.stream, to: entry.id) }
                    }
                    await registry.sendingBatch {
                        let batch = entries.compactMap { entry in
                            entry.event.flatMap { admit($0, entryId: entry.id, adopted: entry.stream != stream) }
                        }
                        await send(batch)
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
            // Left to expire rather than deleted: a relay that took this one's calls over reads the rest
            // of their turns in progress from it.
            _ = try? await redis.command("EXPIRE", .string(stream), "600")
        } onGracefulShutdown: {
            stopping.withLockedValue { $0 = true }
        }
    }

    /// A frame admitted for a caller, ready to write.
    private struct Outgoing {
        var session: CallSession
        var text: String
        var sent: CallRegistry.SentFrame
    }

    /// Whether a frame goes to its caller (see ``CallSession/admit(turnId:sequence:generation:isLast:adopted:)``).
    private func admit(_ event: BusEvent, entryId: String, adopted: Bool) -> Outgoing? {
        // A call being handed over gets nothing more here: the relay that takes it over sends the rest.
        guard event.type == EventType.voiceFrame, let session = registry.session(event.conversationId), !session.isHandedOver,
            let turnId = event.payload["turnId"]?.string, let frame = event.payload["frame"]
        else { return nil }
        let sequence = event.payload["seq"]?.int ?? 0
        let generation = event.payload["gen"]?.string
        let (forward, sincePrompt) = session.admit(
            turnId: turnId, sequence: sequence, generation: generation, isLast: frame["last"]?.bool == true, adopted: adopted)
        guard forward else {
            Counter(label: "agentconnect_voice_frames_dropped_total").increment()
            return nil
        }
        if let sincePrompt {
            Timer(label: "agentconnect_voice_first_token_seconds").recordNanoseconds(sincePrompt.nanoseconds)
        }
        if adopted { Counter(label: "agentconnect_voice_frames_adopted_total").increment() }
        let promptId = String(turnId.prefix { $0 != ":" })
        if sincePrompt != nil { session.promptSpans.event(promptId, "first token") }
        if frame["last"]?.bool == true { session.promptSpans.end(promptId, event: "last token") }
        if frame["type"]?.string == "text" { session.relayState.forwarded(turnId: turnId, isLast: frame["last"]?.bool == true) }
        guard let text = try? String(decoding: JSONEncoderShared.encode(frame), as: UTF8.self) else { return nil }
        return Outgoing(
            session: session, text: text,
            sent: .init(conversationId: event.conversationId, turnId: turnId, sequence: sequence, generation: generation, entryId: entryId))
    }

    /// Writes a batch of frames to their callers, having recorded (with `applicationReconnect`) what
    /// each call is about to be sent, so a relay that takes a call over sends none of it again.
    private func send(_ batch: [Outgoing]) async {
        guard !batch.isEmpty else { return }
        await registry.recordSent(batch.map(\.sent))
        for outgoing in batch {
            do {
                try await outgoing.session.writer.write(.text(outgoing.text))
            } catch {
                logger.debug("frame for a closed socket", metadata: ["call.sid": "\(outgoing.session.callSid)"])
            }
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
