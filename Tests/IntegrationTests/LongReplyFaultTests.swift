import AgentConnectCore
import Foundation
import Testing

/// `make test-faults`: a long answer goes out as ordered parts, each exactly once, even when outbound
/// is killed (`kill -9`) while a part's send is on its way to Twilio.
@Suite("Long replies through an outbound crash", .serialized, .enabled(if: ProcessInfo.processInfo.environment["AGENTCONNECT_FAULTS"] == "1"))
struct LongReplyFaultTests {
    @Test("a 4,000-character answer arrives as ordered messages, once each, although outbound is killed mid-sequence")
    func killedMidSequence() async throws {
        var options = TestStack.Options(workers: 0, outbound: false)
        options.extra = ["OUTBOUND_VISIBILITY_TIMEOUT_MS": "3000", "TWILIO_HTTP_TIMEOUT_MS": "10000"]
        try await withFaultStack(options) { stack in
            try await stack.launch("outbound", port: stack.outboundPort)
            try await stack.launch("example-media-agent", port: TestEnvironment.freePort(), extra: ["INSTANCE_ID": "media-agent"])
            // Every send is held 2 s before Twilio takes it: the crash lands while a part is on its way.
            _ = try await stack.sim(.POST, "/sim/faults", ["status": 200, "delayMs": 2000, "count": 20, "pathContains": "/Actions"])
            let sent = try await stack.customerSays("long answer", from: "+15554440070")
            let conversationId = try #require(sent["conversationId"]?.string)
            let first = try await stack.agentMessages(conversationId: conversationId, count: 1, waitMs: 60_000)
            #expect(first.count == 1)
            // The second part's request is now held by the sim; kill outbound before it is answered.
            try await Task.sleep(for: .milliseconds(500))
            let outbound = try #require(stack.processes("outbound").first)
            _ = await outbound.signal(SIGKILL, timeout: .seconds(5))
            let deliveredAtCrash = try await stack.agentMessages(conversationId: conversationId, waitMs: 0).count
            #expect(deliveredAtCrash < 3, "the crash came mid-sequence")
            try await stack.launch("outbound", port: stack.outboundPort)
            let expected = (1...70).map { "Sentence \($0) of the long answer explains one more detail." }.joined(separator: " ")
            _ = await eventually(timeout: .seconds(120)) {
                ((try? await stack.agentMessages(conversationId: conversationId, waitMs: 0).count) ?? 0) >= 3
            }
            try await Task.sleep(for: .seconds(3))
            let final = try await stack.agentMessages(conversationId: conversationId, waitMs: 0).compactMap { $0["text"]?.string }
            print(
                "fault-table: \("long reply, outbound killed mid-sequence".padding(toLength: 46, withPad: " ", startingAt: 0)) sent 3  replies \(final.count)  lost \(max(0, 3 - Set(final).count))  duplicated \(final.count - Set(final).count)"
            )
            #expect(final.count == 3, "each part once: \(final.map { $0.prefix(20) })")
            #expect(final.joined(separator: " ") == expected, "in order, nothing lost")
            let rows = try await stack.strings("SELECT reply_id || ':' || status FROM deliveries ORDER BY reply_id")
            #expect(rows.count == 3 && rows.allSatisfy { $0.hasSuffix(":sent") }, "\(rows)")
        }
    }
}
