import AgentConnectCore
import Foundation
import RelayCaller
import Testing

@Suite("Metrics and traces follow a turn across services")
struct ObservabilityTests {
    @Test("after an SMS turn and a voice turn, /metrics has a sample in each hop's histogram")
    func hopHistograms() async throws {
        var options = TestStack.Options()
        options.relays = 1
        options.extra["TWILIO_CONVERSATION_CONFIGURATION_ID"] = ""
        try await withStack(options) { stack in
            let sent = try await stack.customerSays("measure me", from: "+15557771000")
            _ = try await stack.agentMessages(conversationId: sent["conversationId"]?.string)
            var caller = RelayCaller(relayURL: "http://127.0.0.1:\(stack.relayPorts[0])", authToken: stack.environment["TWILIO_AUTH_TOKEN"] ?? "")
            caller.replyTimeout = .seconds(10)
            let (url, _) = try await caller.fetchTwiML(callSid: "CAmetrics", from: "+15556660000", to: "+15550000001")
            let call = try await caller.call(publicURL: url, callSid: "CAmetrics", from: "+15556660000", to: "+15550000001", script: [.say("hi")])
            #expect(call.turns.first?.text == "You said: hi")
            let ingress = stack.ingressPort
            let worker = try #require(stack.processes("agent-worker").first?.port)
            let outbound = try #require(stack.processes("outbound").first?.port)
            let relay = stack.relayPorts[0]
            let hops: [(String, Int, String)] = [
                ("agentconnect_webhook_accept_seconds_count", ingress, "webhook accepted"),
                ("agentconnect_bus_wait_seconds_count", worker, "bus wait (worker)"),
                ("agentconnect_bus_wait_seconds_count", outbound, "bus wait (outbound)"),
                ("agentconnect_agent_seconds_count", worker, "agent time"),
                ("agentconnect_delivery_seconds_count", outbound, "delivery"),
                ("agentconnect_voice_first_token_seconds_count", relay, "voice prompt→first token"),
            ]
            for (metric, port, hop) in hops {
                let value = try await stack.metric(metric, port: port)
                #expect(value >= 1, "no sample for \(hop)")
            }
        }
    }

    @Test("one turn's traceparent can be followed from webhook to delivery in the JSON logs")
    func traceparent() async throws {
        var options = TestStack.Options(outbound: false)
        options.extra["LOG_FORMAT"] = "json"
        // The per-message lines (webhook accepted, turn, reply delivered) are debug.
        options.extra["LOG_LEVEL"] = "debug"
        try await withStack(options) { stack in
            try await stack.launch("outbound", port: stack.outboundPort)
            let sent = try await stack.customerSays("trace me", from: "+15557771001")
            let conversationId = try #require(sent["conversationId"]?.string)
            _ = try await stack.agentMessages(conversationId: conversationId)
            func lines(_ executable: String) -> [[String: Any]] {
                stack.processes(executable).flatMap { process in
                    process.log.split(separator: "\n").compactMap {
                        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                    }
                }
            }
            // The logs are read from the processes' output as it comes: wait until outbound's delivery line is in.
            #expect(
                await eventually {
                    lines("outbound").contains { $0["msg"] as? String == "reply delivered" && $0["conversation.id"] as? String == conversationId }
                })
            let accepted = try #require(
                lines("messaging-ingress").first { $0["msg"] as? String == "webhook accepted" && $0["conversation.id"] as? String == conversationId })
            let trace = try #require((accepted["traceparent"] as? String)?.split(separator: "-").dropFirst().first.map(String.init))
            let turn = lines("agent-worker").first { $0["msg"] as? String == "turn" && ($0["traceparent"] as? String)?.contains(trace) == true }
            let delivered = lines("outbound").first {
                $0["msg"] as? String == "reply delivered" && ($0["traceparent"] as? String)?.contains(trace) == true
            }
            #expect(turn?["conversation.id"] as? String == conversationId)
            #expect(delivered?["conversation.id"] as? String == conversationId)
        }
    }
}
