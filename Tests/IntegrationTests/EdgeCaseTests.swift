import AgentConnectCore
import Foundation
import RelayCaller
import Testing

/// The relay's edges that need real processes: the orchestrator lookup and a drain on SIGTERM. Limits,
/// outages and callbacks of one service are tested in process (MessagingIngressTests, VoiceRelayTests).
@Suite("Edges: orchestrated calls, draining")
struct EdgeCaseTests {
    static let token = TestEnvironment.localEnv["TWILIO_AUTH_TOKEN"] ?? ""

    @Test("orchestrated voice: the relay finds the conversation ConversationRelay created, and the call flows")
    func orchestratedCall() async throws {
        var options = TestStack.Options()
        options.relays = 1
        options.outbound = false
        options.ingress = false
        try await withStack(options) { stack in
            let result = try await stack.sim(.POST, "/sim/calls", ["from": "+15556661111", "say": ["hello orchestrator", "second turn"]])
            let texts = result["turns"]?.array?.compactMap { $0["text"]?.string }
            #expect(texts == ["You said: hello orchestrator", "You said: second turn"])
            let conversations = try await stack.sim(.GET, "/v2/Conversations?channelId=\(result["callSid"]?.string ?? "")")["conversations"]?.array
            #expect(conversations?.count == 1)
        }
    }

    @Test("SIGTERM on voice-relay: ready turns 503, new calls are refused, the live call continues, then it exits 0")
    func relayDrain() async throws {
        try await withStack(VoiceAcceptanceTests.relayOnly(extra: ["VOICE_DRAIN_SECONDS": "20"])) { stack in
            let relay = try #require(stack.processes("voice-relay").first)
            var caller = RelayCaller(relayURL: "http://127.0.0.1:\(relay.port)", authToken: Self.token)
            caller.replyTimeout = .seconds(10)
            let (url, _) = try await caller.fetchTwiML(callSid: "CAdrain", from: "+15556660000", to: "+15550000001")
            let transcript = try await caller.call(
                publicURL: url, callSid: "CAdrain", from: "+15556660000", to: "+15550000001",
                script: [
                    .say("before"),
                    .sayWithAction("during the drain", afterTokens: 0) {
                        kill(relay.pid, SIGTERM)
                        _ = await eventually { (try? await TestStack.request(.GET, "http://127.0.0.1:\(relay.port)/health/ready").status) == 503 }
                    },
                    .say("still answered"),
                ])
            #expect(transcript.turns.map(\.text) == ["You said: before", "You said: during the drain", "You said: still answered"])
            let ready = try? await TestStack.request(.GET, "http://127.0.0.1:\(relay.port)/health/ready")
            #expect(ready?.status == 503 || ready == nil)
            #expect(await relay.waitForExit(timeout: .seconds(15)) == 0)
        }
    }

}
