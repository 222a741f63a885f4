import Testing

@testable import VoiceRelay

/// ``AdoptedStreams``: where a relay reads the streams of relays whose calls it took over.
@Suite("Adopted voice streams")
struct AdoptedStreamsTests {
    let start = ContinuousClock.now
    let stream = "tac:voice:relay-1"

    func at(_ seconds: Int) -> ContinuousClock.Instant { start + .seconds(seconds) }

    @Test("a read moves the position to the last entry read")
    func advances() {
        var streams = AdoptedStreams()
        streams.adopt(stream, after: "5-0", until: at(120))
        #expect(streams.beginRead(now: at(0)) == [stream: "5-0"])
        streams.advance([stream: "9-3"])
        #expect(streams.beginRead(now: at(1)) == [stream: "9-3"])
    }

    @Test("a call taken over while a read runs is read again from its own position, whatever the read's end")
    func takeoverDuringRead() {
        var streams = AdoptedStreams()
        streams.adopt(stream, after: "5-0", until: at(120))
        #expect(streams.beginRead(now: at(0)) == [stream: "5-0"])
        // Taken over mid-read at 7-0 (later than the read's start): its frames up to 9-0 found no session.
        streams.adopt(stream, after: "7-0", until: at(120))
        streams.advance([stream: "9-0"])
        #expect(streams.beginRead(now: at(1)) == [stream: "7-0"])
        // An earlier one moves the next read back to it at once.
        streams.adopt(stream, after: "3-0", until: at(120))
        #expect(streams.beginRead(now: at(2)) == [stream: "3-0"])
        // The next read, with no takeover meanwhile, moves on.
        streams.advance([stream: "8-0"])
        #expect(streams.beginRead(now: at(3)) == [stream: "8-0"])
    }

    @Test("a stream is read until the last takeover from it is old; entry ids compare as numbers")
    func expiryAndOrder() {
        var streams = AdoptedStreams()
        streams.adopt(stream, after: "5-0", until: at(10))
        streams.adopt("tac:voice:relay-2", after: "1-0", until: at(100))
        #expect(streams.beginRead(now: at(11)) == ["tac:voice:relay-2": "1-0"])
        #expect(AdoptedStreams.earlier("10-0", "9-5") == "9-5")
        #expect(AdoptedStreams.earlier("9-10", "9-9") == "9-9")
    }
}
