import AgentConnectCore
import EventBus
import Foundation
import RelayCaller
import Testing

/// A voice turn redone by the partition's next owner (the first worker's lease lapsed: it was fenced
/// mid-turn and publishes nothing more) reaches the caller whole, through a real relay: the frames of
/// both generations are put on the relay's voice stream directly, in the order a fenced worker and
/// its successor produce them.
@Suite("Redone voice turns")
struct VoiceRedoneTurnTests {
    @Test("a turn redone right after its first worker was fenced reaches the caller: every token once, then last: true")
    func fencedTurnRedone() async throws {
        // Worker A sends three tokens and is fenced; worker B redoes the whole turn at once.
        let turn = "PROMPTredone:r1"
        var redone = (1...3).map { Self.frames(turn, $0, "worker-a", tokens: ["a\($0) "]) }
        redone += (1...5).map { Self.frames(turn, $0, "worker-b", tokens: ["b\($0) "]) }
        redone.append(Self.frames(turn, 6, "worker-b", tokens: [""], last: true))
        try await expectWholeTurn(redone, callSid: "CAredoneturn0000000000000000000001")
    }

    @Test("frames carried several to an event are admitted one by one: the redone turn's batch skips what the caller already has")
    func batchedFramesRedone() async throws {
        // Worker A's three tokens ride in one event; worker B's whole redo (five tokens and the end) in another.
        let turn = "PROMPTredone:r1"
        let redone = [
            Self.frames(turn, 1, "worker-a", tokens: ["a1 ", "a2 ", "a3 "]),
            Self.frames(turn, 1, "worker-b", tokens: ["b1 ", "b2 ", "b3 ", "b4 ", "b5 ", ""], last: true),
        ]
        try await expectWholeTurn(redone, callSid: "CAredoneturn0000000000000000000002")
    }

    /// A `voice.frame` event carrying text tokens of one turn from `sequence` on (the last one
    /// `last: true` when `last`), as its generation's worker publishes it.
    private static func frames(_ turnId: String, _ sequence: Int, _ generation: String, tokens: [String], last: Bool = false) -> BusEvent {
        let frames: [JSONValue] = tokens.enumerated().map { index, token in
            ["type": "text", "token": .string(token), "last": .bool(last && index == tokens.count - 1)]
        }
        var payload: [String: JSONValue] = [
            "turnId": .string(turnId), "seq": .number(Double(sequence)), "gen": .string(generation), "frame": frames[0],
        ]
        if frames.count > 1 { payload["more"] = .array(Array(frames.dropFirst())) }
        return BusEvent(id: "\(turnId):f\(sequence)", type: EventType.voiceFrame, conversationId: "", channel: .voice, payload: .object(payload))
    }

    /// Puts `redone` on the relay's voice stream for a live call, then a later turn, and expects the
    /// caller to hear a1 a2 a3 b4 b5 and the end of the turn, each once, then the later turn's end.
    private func expectWholeTurn(_ redone: [BusEvent], callSid: String) async throws {
        // No worker: the test plays both generations. The second starts well within the takeover window.
        let options = VoiceAcceptanceTests.relayOnly(workers: 0, extra: ["VOICE_GENERATION_TAKEOVER_MS": "1500"])
        try await withStack(options) { stack in
            let redis = stack.redis.client()
            defer { redis.shutdown() }
            let caller = RelayCaller(relayURL: "http://127.0.0.1:\(stack.relayPorts[0])", authToken: stack.environment["TWILIO_AUTH_TOKEN"] ?? "")
            let (url, _) = try await caller.fetchTwiML(callSid: callSid, from: "+15556660001", to: "+15550000001")
            func xadd(_ event: BusEvent) throws -> [RedisArgument] {
                var event = event
                event.conversationId = callSid
                return ["XADD", .string(Streams.voice(instance: "relay-0")), "*", "e", .bytes(try event.encoded())]
            }
            let commands = try redone.map(xadd)
            let next = try xadd(Self.frames("PROMPTnext:r1", 1, "worker-b", tokens: [""], last: true))
            let transcript = try await caller.call(
                publicURL: url, callSid: callSid, from: "+15556660001", to: "+15550000001",
                script: [
                    .action {
                        // The relay holds the call once it lists it (after it took it in locally).
                        let deadline = ContinuousClock.now + .seconds(10)
                        while (try? await redis.command("SISMEMBER", .string(RedisKeys.relayCalls("relay-0")), .string(callSid)))?.integer != 1,
                            ContinuousClock.now < deadline
                        {
                            try? await Task.sleep(for: .milliseconds(20))
                        }
                        _ = try? await redis.send(commands)
                    },
                    .waitForLast(timeout: .seconds(20)),
                    // A later turn: anything repeated of the first would have come before it.
                    .action { _ = try? await redis.send([next]) },
                    .waitForLast(timeout: .seconds(20)),
                ])
            // Tokens read together may come joined in one message: the words and where each turn ends count.
            let texts = transcript.otherFrames.filter { $0["type"]?.string == "text" }
            #expect(texts.map { $0["token"]?.string ?? "?" }.joined() == "a1 a2 a3 b4 b5 ", "\(texts)")
            #expect(texts.map { $0["last"]?.bool == true }.suffix(2) == [true, true], "\(texts)")
            #expect(texts.dropLast(2).allSatisfy { $0["last"]?.bool != true }, "\(texts)")
            #expect(texts.last?["token"]?.string == "", "\(texts)")
            #expect(transcript.closeCode == nil || transcript.closeCode == 1000)
        }
    }
}
