import AgentConnectCore
import Foundation
import NIOConcurrencyHelpers
import RelayCaller
import Testing

/// `applicationReconnect` without faults: what a reconnect may and may not open (the faults
/// themselves — a relay killed, relays rolled — are in ``RelayReconnectFaultTests``).
@Suite("Reconnectable calls")
struct RelayReconnectTests {
    @Test("with applicationReconnect, a replayed upgrade for a call whose socket is up opens nothing (1008) and the call goes on")
    func replayedUpgradeRefused() async throws {
        let options = VoiceAcceptanceTests.relayOnly(extra: ["CONVERSATION_RELAY_APPLICATION_RECONNECT": "true"])
        try await withStack(options) { stack in
            var caller = RelayCaller(relayURL: "http://127.0.0.1:\(stack.relayPorts[0])", authToken: stack.environment["TWILIO_AUTH_TOKEN"] ?? "")
            caller.replyTimeout = .seconds(15)
            let callSid = "CAreplayreconnect000000000000000000"
            let (url, twiml) = try await caller.fetchTwiML(callSid: callSid, from: "+15556661234", to: "+15550000001")
            #expect(RelayCaller.attribute("applicationReconnect", in: twiml) == "true")
            caller.applicationReconnect = true
            let replay = NIOLockedValueBox<RelayCaller.Transcript?>(nil)
            let replayer = caller
            let transcript = try await caller.call(
                publicURL: url, callSid: callSid, from: "+15556661234", to: "+15550000001",
                script: [
                    .say("first"),
                    // The same URL and signature again, with the call's own setup: not a reconnect, its socket is up.
                    .action {
                        var attacker = replayer
                        attacker.applicationReconnect = false
                        let result = try? await attacker.call(
                            publicURL: url, callSid: callSid, from: "+15556661234", to: "+15550000001", script: [.pause(.seconds(20))])
                        replay.withLockedValue { $0 = result }
                    },
                    .say("second"),
                ])
            #expect(replay.withLockedValue { $0?.closeCode } == 1008)
            #expect(transcript.turns.map(\.text) == ["You said: first", "You said: second"])
            #expect(transcript.reconnects == 0)
            let relay = stack.relayPorts[0]
            #expect(try await stack.metric("agentconnect_voice_frames_total", port: relay, matching: "rejected_duplicate_call") == 1)
            #expect(try await stack.metric("agentconnect_voice_calls_taken_over_total", port: relay) == 0)
        }
    }
}
