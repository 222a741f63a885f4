import AgentConnectCore
import EventBus
import Foundation
import Testing

/// A medium's `size` in an Orchestrator webhook is carried only as a number any reader can hold: a
/// size no `Int` holds must not trap the worker (it would again on every redelivery, stalling the
/// conversation's partition).
@Suite("Inbound media: a size no Int holds does not stop the worker", .serialized)
struct InboundMediaSizeTests {
    @Test("a picture with size 1e300 or -5.5: the turn runs, the worker lives, the size is unknown", arguments: ["1e300", "-5.5", "1e19"])
    func hugeSize(size: String) async throws {
        var options = TestStack.Options()
        options.outbound = false
        try await withStack(options) { stack in
            let body = Array(
                #"{"eventType":"COMMUNICATION_CREATED","data":{"id":"comms_size","conversationId":"conv_size","author":{"address":"+15554449901","channel":"SMS"},"content":{"text":"look","media":[{"url":"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1","contentType":"image/png","size":\#(size)}]},"recipients":[]}}"#
                    .utf8)
            let accepted = try await EdgeCaseTests.signedWebhook(port: stack.ingressPort, body: body)
            #expect(accepted.status == 200)
            // The echo agent's reply reaches tac:outbound (outbound is not running, so it stays there).
            let replied = try await eventually(timeout: .seconds(30)) { try await stack.length(of: Streams.outbound) >= 1 }
            #expect(replied, "no reply: \(stack.logs.suffix(3000))")
            #expect(stack.processes("agent-worker").count == 1)
            let client = stack.redis.client()
            defer { client.shutdown() }
            var texts: [String] = []
            for index in 0..<16 {
                Self.strings(try await client.command("XRANGE", .string(Streams.inboundPartition(index)), "-", "+"), into: &texts)
            }
            let event = texts.first { $0.contains("conv_size") && $0.contains("image/png") }
            #expect(event?.contains(#""size":null"#) == true, "\(texts)")
        }
    }

    /// Every string in a Redis reply, depth first.
    static func strings(_ value: RedisValue, into texts: inout [String]) {
        if let items = value.array {
            for item in items { strings(item, into: &texts) }
        } else if let text = value.string {
            texts.append(text)
        }
    }
}
