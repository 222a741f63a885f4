import AgentConnectCore
import Testing

@testable import VoiceRelay

/// ``VoiceFrameReader/messages(_:)``: the WebSocket messages a batch of admitted reply frames becomes.
@Suite("Voice frames as socket messages")
struct VoiceFrameMessagesTests {
    func token(_ text: String, last: Bool = false) -> JSONValue { ["type": "text", "token": .string(text), "last": .bool(last)] }

    @Test("a call's tokens of one turn read together go out as one message ending with the reply's last")
    func joinsTokens() {
        let frames: [(call: String, turnId: String, frame: JSONValue)] = [
            ("A", "p1:r1", token("You ")), ("B", "p7:r1", token("Hi")), ("A", "p1:r1", token("said: ")),
            ("A", "p1:r1", token("hello")), ("A", "p1:r1", token("", last: true)),
        ]
        let messages = VoiceFrameReader.messages(frames)
        #expect(messages.map { frames[$0.first].call } == ["A", "B"])
        #expect(messages[0].frame == token("You said: hello", last: true))
        #expect(messages[1].frame == token("Hi"))
    }

    @Test("a reply's end, another turn, another kind of frame or different settings start a new message")
    func keepsBoundaries() {
        let interruptible: JSONValue = ["type": "text", "token": "b", "last": false, "interruptible": false]
        let messages = VoiceFrameReader.messages([
            ("A", "p1:r1", token("one", last: true)), ("A", "p1:r1", token("two")),
            ("A", "p2:r1", token("three")),
            ("A", "p2:r1", ["type": "play", "source": "https://example.com/a.mp3"]), ("A", "p2:r1", token("four")),
            ("A", "p2:r1", interruptible),
        ])
        #expect(
            messages.map { $0.frame["token"]?.string ?? $0.frame["type"]?.string } == ["one", "two", "three", "play", "four", "b"])
    }

    @Test("frames that say nothing of last join with the later one's setting kept")
    func withoutLast() {
        let joined = VoiceFrameReader.joined(["type": "text", "token": "a", "lang": "en-US"], ["type": "text", "token": "b", "lang": "en-US"])
        #expect(joined == ["type": "text", "token": "ab", "lang": "en-US"])
        #expect(VoiceFrameReader.joined(["type": "text", "token": "a", "lang": "en-US"], ["type": "text", "token": "b", "lang": "fr-FR"]) == nil)
    }
}
