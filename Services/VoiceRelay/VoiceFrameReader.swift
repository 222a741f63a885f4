import AgentConnectCore
import EventBus
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle
import ServiceSupport

/// Reads this relay's own stream (`tac:voice:<instance>`) and writes each reply frame to the socket
/// of its call, dropping frames of interrupted or superseded turns and replays of a redone turn. For
/// calls taken over from another relay it also reads that relay's stream, where their turns in
/// progress go on (``CallRegistry/readPositions(_:)``).
struct VoiceFrameReader: Service {
    let bus: any EventBus
    let redis: RedisClient
    let registry: CallRegistry
    let logger: Logger

    func run() async throws {
        let stream = Streams.voice(instance: registry.instance)
        let stopping = NIOLockedValueBox(false)
        await withGracefulShutdownHandler {
            var started = false
            var backoff = Backoff()
            var lastTrim = ContinuousClock.now
            // Calls holding a later generation's frames, and when those may take their turn over.
            var held: [String: ContinuousClock.Instant] = [:]
            while !stopping.withLockedValue({ $0 }) {
                do {
                    if !started {
                        // Start after the newest entry: frames for calls we no longer hold are of no use.
                        let last = try await redis.command("XREVRANGE", .string(stream), "+", "-", "COUNT", "1")
                        registry.readPositions { $0.start(after: last.array?.first?.array?.first?.string ?? "0-0") }
                        started = true
                    }
                    // The own stream, and those of relays whose calls were taken over here (the rest of their turns).
                    let read = registry.readPositions { $0.beginRead(now: .now) }
                    // The read waits no longer than the earliest held turn's takeover (a timer per held turn).
                    let entries = try await bus.read(
                        after: read.positions, count: 256, blockMilliseconds: Self.block(until: held.values.min()))
                    held = await registry.sendingBatch {
                        var batch: [Outgoing] = []
                        var held = held
                        for entry in entries {
                            guard let event = entry.event else { continue }
                            batch += admit(event, entry: entry, read: read, held: &held)
                        }
                        batch += expireHeld(&held)
                        await send(batch)
                        return held
                    }
                    // After the batch: a call taken over meanwhile has its frames in it read again.
                    var last: [String: String] = [:]
                    for entry in entries { last[entry.stream] = entry.id }
                    if !last.isEmpty { registry.readPositions { $0.advance(last) } }
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
        var frame: JSONValue
        var sent: CallRegistry.SentFrame
    }

    /// The frames to write for one read from a voice stream (see ``VoiceTurnGate``); a call that now
    /// holds a later generation's frames is noted in `held` with when they may take their turn over.
    private func admit(
        _ event: BusEvent, entry: BusEntry, read: VoiceReadPositions.Read, held: inout [String: ContinuousClock.Instant]
    ) -> [Outgoing] {
        // A call being handed over gets nothing more here: the relay that takes it over sends the rest.
        guard event.carries(VoiceFrame.self), let session = registry.session(event.conversationId), !session.isHandedOver,
            // Nil: taken over while this read ran; its frames from the old stream come again, in order, next read.
            let resumed = session.fromResumedStream(entry.stream, read: read.number), let frame = Self.voiceFrame(event, logger: logger)
        else { return [] }
        guard let adopted = read.isAdopted(stream: entry.stream, id: entry.id, resumed: resumed) else { return [] }
        var forward: [VoiceTurnGate.Forward] = []
        for (sequence, payload) in frame.frames {
            let (admitted, heldUntil) = session.admit(
                VoiceTurnGate.Frame(
                    turnId: frame.turnId, sequence: sequence, generation: frame.gen, frame: payload, entryId: entry.id, adopted: adopted))
            held[session.conversationId] = heldUntil
            if admitted.isEmpty { Counter(label: "agentconnect_voice_frames_dropped_total").increment() }
            forward += admitted
        }
        return forward.map { outgoing($0, session: session) }
    }

    /// The reply frame an event carries, or nil (logged at warning, once per event) when its payload
    /// does not decode: the frame is dropped, and the caller may miss part of a turn.
    static func voiceFrame(_ event: BusEvent, logger: Logger) -> VoiceFrame? {
        do {
            return try event.decode(VoiceFrame.self)
        } catch {
            logger.warning(
                "voice frame does not decode; dropped",
                metadata: ["event.id": "\(event.id)", "conversation.id": "\(event.conversationId)", "error": "\(error)"])
            return nil
        }
    }

    /// The held frames of calls whose turn owner went silent (``CallSession/expireHeld(now:)``), for
    /// the calls in `held` whose time has come.
    private func expireHeld(_ held: inout [String: ContinuousClock.Instant]) -> [Outgoing] {
        let now = ContinuousClock.now
        var batch: [Outgoing] = []
        for (conversationId, until) in held where until <= now {
            guard let session = registry.session(conversationId), !session.isHandedOver else {
                held[conversationId] = nil
                continue
            }
            let (forward, heldUntil) = session.expireHeld(now: now)
            held[conversationId] = heldUntil
            batch += forward.map { outgoing($0, session: session) }
        }
        return batch
    }

    /// A frame the gate let through, with its metrics and spans, ready to write.
    private func outgoing(_ forward: VoiceTurnGate.Forward, session: CallSession) -> Outgoing {
        let frame = forward.frame
        if let sincePrompt = forward.sincePrompt {
            Timer(label: "agentconnect_voice_first_token_seconds").recordNanoseconds(sincePrompt.nanoseconds)
            session.promptSpans.event(frame.promptId, "first token")
        }
        if frame.adopted { Counter(label: "agentconnect_voice_frames_adopted_total").increment() }
        if frame.isLast { session.promptSpans.end(frame.promptId, event: "last token") }
        if frame.frame["type"]?.string == "text" { session.relayState.forwarded(turnId: frame.turnId, isLast: frame.isLast) }
        return Outgoing(
            session: session, frame: frame.frame,
            sent: .init(
                conversationId: session.conversationId, turnId: frame.turnId, sequence: frame.sequence, generation: frame.generation,
                entryId: frame.entryId, isLast: frame.isLast))
    }

    /// How long a read may wait: 500 ms, or less when a held turn's takeover comes sooner (at least 1 ms:
    /// 0 would wait forever).
    static func block(until deadline: ContinuousClock.Instant?) -> Int {
        guard let deadline else { return 500 }
        return Int(max(1, min(500, (deadline - .now).milliseconds + 1)))
    }

    /// Writes a batch of frames to their callers, having recorded (with `applicationReconnect`) what
    /// each call is about to be sent, so a relay that takes a call over sends none of it again.
    private func send(_ batch: [Outgoing]) async {
        guard !batch.isEmpty else { return }
        await registry.recordSent(batch.map(\.sent))
        for (first, frame) in Self.messages(batch.map { (ObjectIdentifier($0.session), $0.sent.turnId, $0.frame) }) {
            let session = batch[first].session
            guard let text = try? String(decoding: CompactJSON.encode(frame), as: UTF8.self) else { continue }
            do {
                try await session.writer.write(.text(text))
            } catch {
                logger.debug("frame for a closed socket", metadata: ["call.sid": "\(session.callSid)"])
            }
        }
    }

    /// A batch's frames as the messages to write, each call's in order: text tokens of one turn that
    /// follow each other for a call go out as one message (tokens joined, the last one's `last`). Tokens
    /// read together reach the caller together anyway, and each message costs a write and a flush here
    /// and a read on the caller's side (a reply read at once goes out as one message, not one per word).
    /// Each message is returned with the place in `frames` of its first frame (its call's).
    static func messages<Call: Hashable>(_ frames: [(call: Call, turnId: String, frame: JSONValue)]) -> [(first: Int, frame: JSONValue)] {
        var messages: [(first: Int, frame: JSONValue)] = []
        var lastOfCall: [Call: Int] = [:]
        for (index, item) in frames.enumerated() {
            if let open = lastOfCall[item.call], frames[messages[open].first].turnId == item.turnId,
                let joined = joined(messages[open].frame, item.frame)
            {
                messages[open].frame = joined
            } else {
                lastOfCall[item.call] = messages.count
                messages.append((index, item.frame))
            }
        }
        return messages
    }

    /// Two text frames as one (tokens joined, the second's `last`) when the first does not end the
    /// reply and nothing else (language, interruptibility) tells them apart; nil otherwise.
    static func joined(_ first: JSONValue, _ second: JSONValue) -> JSONValue? {
        guard case .object(var head) = first, case .object(var tail) = second, head["type"] == "text", tail["type"] == "text",
            head["last"]?.bool != true, let headToken = head.removeValue(forKey: "token")?.string,
            let tailToken = tail.removeValue(forKey: "token")?.string
        else { return nil }
        head["last"] = nil
        let last = tail.removeValue(forKey: "last")
        guard head == tail else { return nil }
        head["token"] = .string(headToken + tailToken)
        head["last"] = last
        return .object(head)
    }
}
