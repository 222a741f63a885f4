import Testing
import TwilioKit

@Suite("Long replies split on sentence boundaries; Twilio's messaging rules")
struct MessageSplitterTests {
    @Test("a text that fits is one part, unchanged")
    func fits() {
        #expect(MessageSplitter.split("Hello there. How are you?", limit: 1600) == ["Hello there. How are you?"])
    }

    @Test("parts end on sentence boundaries, stay within the limit and keep every word in order")
    func sentences() {
        let text = (1...70).map { "Sentence \($0) of the long answer explains one more detail." }.joined(separator: " ")
        let parts = MessageSplitter.split(text, limit: 1600)
        #expect(parts.count == 3)
        #expect(parts.allSatisfy { $0.utf16.count <= 1600 && $0.hasSuffix(".") })
        #expect(parts.joined(separator: " ") == text)
    }

    @Test("a sentence longer than a part is split between words; a word longer than a part is cut")
    func longSentence() {
        let words = Array(repeating: "word", count: 30).joined(separator: " ")
        let parts = MessageSplitter.split(words, limit: 22)
        #expect(parts.allSatisfy { $0.utf16.count <= 22 })
        #expect(parts.joined(separator: " ") == words)
        let cut = MessageSplitter.split(String(repeating: "x", count: 50), limit: 20)
        #expect(cut == [String(repeating: "x", count: 20), String(repeating: "x", count: 20), String(repeating: "x", count: 10)])
    }

    @Test("the limit counts UTF-16 code units, and an emoji is never cut in half")
    func emoji() {
        let text = String(repeating: "😀", count: 15)
        let parts = MessageSplitter.split(text, limit: 10)
        #expect(parts.allSatisfy { $0.utf16.count <= 10 })
        #expect(parts.joined() == text)
    }

    @Test("single-word STOP keywords opt out, START keywords opt in, anything else is a message")
    func keywords() {
        #expect(MessageRules.optKeyword("STOP") == .optOut)
        #expect(MessageRules.optKeyword(" unsubscribe ") == .optOut)
        #expect(MessageRules.optKeyword("Start") == .optIn)
        #expect(MessageRules.optKeyword("stop please") == nil)
        #expect(MessageRules.optKeyword("hello") == nil)
        #expect(MessageRules.optKeyword("  ¡¡STOP!!  \n") == .optOut)
        #expect(MessageRules.optKeyword("...UNSUBSCRIBE...") == .optOut)
        #expect(MessageRules.optKeyword("UNSUBSCRIBES") == nil)
        #expect(MessageRules.optKeyword("yes 1") == nil)
        #expect(MessageRules.optKeyword("!!!") == nil)
        #expect(MessageRules.optKeyword("") == nil)
        #expect(MessageRules.optKeyword("stöp") == nil)
        #expect(MessageRules.optKeyword("stop2") == nil)
        #expect(MessageRules.optKeyword("m123456") == nil)
        #expect(MessageRules.optKeyword("(quit)") == .optOut)
        #expect(MessageRules.fits(String(repeating: "a", count: 1600)))
        #expect(!MessageRules.fits(String(repeating: "a", count: 1601)))
    }
}
