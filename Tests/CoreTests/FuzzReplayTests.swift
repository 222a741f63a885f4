import AgentConnect
import AgentConnectAgents
import AgentConnectCore
import Foundation
import Store
import Testing
import TwilioKit

@testable import AgentConnectRuntime

/// A seed-corpus replay with mutations (deterministic, so a failure reproduces): the parsers that
/// see untrusted bytes must never crash, and must keep their invariants.
@Suite("Fuzz: seed corpus with mutations through the parsers")
struct FuzzReplayTests {
    static let seeds: [String] = [
        #"{"eventType":"COMMUNICATION_CREATED","data":{"id":"comms_communication_1","conversationId":"conv_conversation_1","author":{"address":"+15551230000","channel":"SMS","participantId":"comms_participant_1"},"content":{"type":"TEXT","text":"hello"},"recipients":[{"address":"+15550000001","channel":"SMS"}]}}"#,
        #"{"eventType":"CONVERSATION_UPDATED","data":{"id":"conv_conversation_1","configurationId":"conv_configuration_dev","status":"CLOSED"}}"#,
        #"{"type":"setup","sessionId":"VX1","callSid":"CA1","from":"+1555","to":"+1666","customParameters":{"conversationId":"c"}}"#,
        #"{"type":"prompt","voicePrompt":"what time is it","lang":"en-US","last":true}"#,
        #"{"type":"interrupt","utteranceUntilInterrupt":"You said","durationUntilInterruptMs":"420"}"#,
        "AccountSid=AC1&MessageSid=SM1&From=%2B15551230000&To=%2B15550000001&Body=hello+there&NumMedia=0",
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ]

    static func mutate(_ bytes: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var out = bytes
        for _ in 0..<Int.random(in: 1...8, using: &random) {
            switch Int.random(in: 0..<6, using: &random) {
            case 0 where !out.isEmpty: out[Int.random(in: 0..<out.count, using: &random)] ^= UInt8(1 << Int.random(in: 0..<8, using: &random))
            case 1 where !out.isEmpty: out.removeSubrange(Int.random(in: 0..<out.count, using: &random)..<out.count)
            case 2: out.insert(UInt8.random(in: 0...255, using: &random), at: Int.random(in: 0...out.count, using: &random))
            case 3 where !out.isEmpty:
                let at = Int.random(in: 0..<out.count, using: &random)
                out.insert(contentsOf: out[at..<min(out.count, at + 16)], at: at)
            case 4: out.insert(contentsOf: Array(#"{"[%\u0000"#.utf8).shuffled(using: &random), at: Int.random(in: 0...out.count, using: &random))
            default: if !out.isEmpty { out.swapAt(Int.random(in: 0..<out.count, using: &random), Int.random(in: 0..<out.count, using: &random)) }
            }
        }
        return out
    }

    @Test("8,000 mutated inputs through JSON, forms, bus events, traceparent, signatures, SSE and CI results")
    func replay() throws {
        var random = SplitMix64(seed: 0xA6E7_C0DE)
        let signer = TwilioSignature(authToken: "fuzz")
        var parsedJSON = 0
        for iteration in 0..<8_000 {
            let seed = Array(Self.seeds[iteration % Self.seeds.count].utf8)
            let input = Self.mutate(seed, &random)
            if let json = try? JSONDecoder().decode(JSONValue.self, from: Data(input)) {
                parsedJSON += 1
                // What parsed re-encodes and parses to the same value.
                let again = try JSONDecoder().decode(JSONValue.self, from: Data(json.compactJSON.utf8))
                #expect(again == json)
                _ = IntelligenceResults.items(IntelligenceResults.content(of: json), kind: .summary)
            }
            let text = String(decoding: input, as: UTF8.self)
            let pairs = FormCoding.decode(text)
            #expect(FormCoding.decode(FormCoding.encode(pairs)).map { [$0.0, $0.1] } == pairs.map { [$0.0, $0.1] })
            _ = FormCoding.decodeStrict(text)
            _ = try? BusEvent.decode(input)
            if let parent = Traceparent(text) { #expect(Traceparent(parent.description) != nil) }
            _ = Traceparent.continuing(text)
            let signature = signer.compute(url: "https://example.com/webhook?" + text, params: pairs)
            #expect(signer.isValid(signature, url: "https://example.com/webhook?" + text, params: pairs))
            _ = signer.isValidJSON(text, url: "https://example.com/webhook?bodySHA256=" + TwilioSignature.bodyHash(input), body: input)
            var sse = ServerSentEvents()
            _ = sse.feed(input)
            _ = ProfileIdentifier(address: text)
            _ = RecallRequest(query: text).tsQuery
        }
        #expect(parsedJSON > 100)
    }
}
