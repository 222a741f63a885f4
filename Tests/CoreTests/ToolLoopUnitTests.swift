import AgentConnect
import AgentConnectCore
import Foundation
import Store
import Testing

@testable import AgentConnectAgents

@Suite("Tool loop pieces: streamed calls, derived ids, history")
struct ToolLoopUnitTests {
    @Test("tool calls streamed in pieces, interleaved by index, are put back together in order")
    func assembler() {
        var assembler = ToolCallAssembler()
        #expect(assembler.assembled == nil)
        assembler.add([["index": 1, "id": "b", "function": ["name": "second", "arguments": "{\"x\":"]]])
        assembler.add([["index": 0, "id": "a", "function": ["name": "first", "arguments": ""]]])
        assembler.add([["index": 0, "function": ["arguments": "{}"]], ["index": 1, "function": ["arguments": "1}"]]])
        #expect(
            assembler.assembled == [
                ToolCallRequest(id: "a", name: "first", arguments: "{}"), ToolCallRequest(id: "b", name: "second", arguments: "{\"x\":1}"),
            ])
    }

    @Test("call ids are derived from the turn: the same for a redone turn, different per round and position")
    func derivedIds() {
        let round = ToolLoop.roundPrefix(turnKey: "event-1") + "0"
        #expect(ToolLoop.callId(roundId: round, position: 0) == ToolLoop.callId(roundId: round, position: 0))
        #expect(ToolLoop.callId(roundId: round, position: 0) != ToolLoop.callId(roundId: round, position: 1))
        #expect(ToolLoop.callId(roundId: round, position: 0) != ToolLoop.callId(roundId: ToolLoop.roundPrefix(turnKey: "event-2") + "0", position: 0))
        #expect(ToolLoop.callId(roundId: round, position: 0).hasPrefix("call_"))
    }

    @Test("history: each round's calls between the customer's message and the answer, results in the calls' order")
    func history() {
        let start = Date(timeIntervalSince1970: 1_000)
        let messages = [
            MessageRecord(
                id: "m1", conversationId: "c", channel: .sms, direction: .inbound, authorAddress: nil, body: "where is A-1?", createdAt: start),
            MessageRecord(
                id: "m2", conversationId: "c", channel: .sms, direction: .outbound, authorAddress: nil, body: "Shipped.", createdAt: start + 3),
        ]
        let calls = [
            ToolCallRecord(
                id: "k2", conversationId: "c", roundId: "e:t0", position: 1, name: "b", arguments: "{}", result: "2", createdAt: start + 1),
            ToolCallRecord(
                id: "k1", conversationId: "c", roundId: "e:t0", position: 0, name: "a", arguments: "{}", result: "1", createdAt: start + 2),
        ]
        let chat = ToolLoop.history(messages: messages, toolCalls: calls)
        #expect(chat.map(\.role) == ["user", "assistant", "tool", "tool", "assistant"])
        #expect(chat[1].toolCalls?.map(\.id) == ["k1", "k2"])
        #expect(chat[2].toolCallId == "k1" && chat[2].content == "1")
        #expect(chat[1].json["content"] == .null)
        #expect(chat[1].json["tool_calls"]?.array?.first?["function"]?["name"] == "a")
    }
}
