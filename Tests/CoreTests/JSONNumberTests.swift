import AgentConnect
import AgentConnectCore
import Testing

@testable import AgentConnectAgents

@Suite("Numbers from outside never trap")
struct JSONNumberTests {
    @Test("JSONValue.int is a whole number in range, else nil: 1e300, 1e19, NaN, -5.5 and junk strings are refused")
    func intIsExact() {
        #expect(JSONValue.number(42).int == 42)
        #expect(JSONValue.string(" 7 ").int == 7)
        #expect(JSONValue.number(-3).int == -3)
        for value: JSONValue in [
            .number(1e300), .number(1e19), .number(-1e19), .number(.nan), .number(.infinity), .number(-5.5), .string("1e400"), .string("x"),
            .bool(true),
        ] {
            #expect(value.int == nil, "\(value)")
        }
    }

    @Test("a medium's size that is not a whole, non-negative number is unknown, never a crash")
    func mediaSize() {
        let media = MessageMedia.list([
            "media": [
                ["url": "https://api.twilio.com/a", "size": .number(1e300)], ["url": "https://api.twilio.com/b", "size": .number(-5.5)],
                ["url": "https://api.twilio.com/c", "size": .number(-4)], ["url": "https://api.twilio.com/d", "size": .number(2048)],
            ]
        ])
        #expect(media.map { $0.size } == [nil, nil, nil, 2048])
    }

    @Test("a streamed tool call with an absurd index is assembled as a new call, not a crash")
    func toolCallIndex() {
        var assembler = ToolCallAssembler()
        assembler.add([["index": .number(1e300), "id": "call_1", "function": ["name": "lookup", "arguments": "{}"]]])
        #expect(assembler.assembled?.map(\.name) == ["lookup"])
    }
}
