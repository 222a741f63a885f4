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
        // No worker: the test plays both generations. The second starts well within the takeover window.
        let options = VoiceAcceptanceTests.relayOnly(workers: 0, extra: ["VOICE_GENERATION_TAKEOVER_MS": "1500"])
        try await withStack(options) { stack in
            let redis = stack.redis.client()
            defer { redis.shutdown() }
            let callSid = "CAredoneturn0000000000000000000001"
            let caller = RelayCaller(relayURL: "http://127.0.0.1:\(stack.relayPorts[0])", authToken: stack.environment["TWILIO_AUTH_TOKEN"] ?? "")
            let (url, _) = try await caller.fetchTwiML(callSid: callSid, from: "+15556660001", to: "+15550000001")

            func frame(_ turnId: String, _ sequence: Int, _ generation: String, token: String, last: Bool = false) throws -> [RedisArgument] {
                let event = BusEvent(
                    id: "\(turnId):f\(sequence)", type: EventType.voiceFrame, conversationId: callSid, channel: .voice,
                    payload: [
                        "turnId": .string(turnId), "seq": .number(Double(sequence)), "gen": .string(generation),
                        "frame": ["type": "text", "token": .string(token), "last": .bool(last)],
                    ])
                return ["XADD", .string(Streams.voice(instance: "relay-0")), "*", "e", .bytes(try event.encoded())]
            }
            // Worker A sends three tokens and is fenced; worker B redoes the whole turn at once.
            let turn = "PROMPTredone:r1"
            var redone = try [1, 2, 3].map { try frame(turn, $0, "worker-a", token: "a\($0) ") }
            redone += try (1...5).map { try frame(turn, $0, "worker-b", token: "b\($0) ") }
            redone.append(try frame(turn, 6, "worker-b", token: "", last: true))
            let next = try frame("PROMPTnext:r1", 1, "worker-b", token: "", last: true)
            let transcript = try await caller.call(
                publicURL: url, callSid: callSid, from: "+15556660001", to: "+15550000001",
                script: [
                    .action { [redone] in
                        // The relay holds the call once it lists it (after it took it in locally).
                        let deadline = ContinuousClock.now + .seconds(10)
                        while (try? await redis.command("SISMEMBER", .string(RedisKeys.relayCalls("relay-0")), .string(callSid)))?.integer != 1,
                            ContinuousClock.now < deadline
                        {
                            try? await Task.sleep(for: .milliseconds(20))
                        }
                        _ = try? await redis.send(redone)
                    },
                    .waitForTokens(6, timeout: .seconds(20)),
                    // A later turn: anything repeated of the first would have come before it.
                    .action { _ = try? await redis.send([next]) },
                    .waitForTokens(1, timeout: .seconds(20)),
                ])
            let texts = transcript.otherFrames.filter { $0["type"]?.string == "text" }
            #expect(texts.map { $0["token"]?.string ?? "?" } == ["a1 ", "a2 ", "a3 ", "b4 ", "b5 ", "", ""])
            #expect(texts.map { $0["last"]?.bool == true } == [false, false, false, false, false, true, true])
            #expect(transcript.closeCode == nil || transcript.closeCode == 1000)
        }
    }
}
