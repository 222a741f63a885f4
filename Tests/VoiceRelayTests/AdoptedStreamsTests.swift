import EventBus
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
        var streams = AdoptedStreams(own: "tac:voice:relay-0")
        _ = streams.adopt(stream, after: "5-0", until: at(120))
        #expect(streams.beginRead(now: at(0)).positions == [stream: "5-0"])
        streams.advance([stream: "9-3"])
        #expect(streams.beginRead(now: at(1)).positions == [stream: "9-3"])
    }

    @Test("a call taken over while a read runs is read again from its own position, whatever the read's end")
    func takeoverDuringRead() {
        var streams = AdoptedStreams(own: "tac:voice:relay-0")
        _ = streams.adopt(stream, after: "5-0", until: at(120))
        let read = streams.beginRead(now: at(0))
        #expect(read.positions == [stream: "5-0"])
        // Taken over mid-read at 7-0 (later than the read's start): stamped with the read in flight,
        // whose entries of it are not admitted.
        #expect(streams.adopt(stream, after: "7-0", until: at(120)) == read.number)
        streams.advance([stream: "9-0"])
        let next = streams.beginRead(now: at(1))
        #expect(next.positions == [stream: "7-0"])
        #expect(next.number > read.number)
        // An earlier one moves the next read back to it at once.
        _ = streams.adopt(stream, after: "3-0", until: at(120))
        #expect(streams.beginRead(now: at(2)).positions == [stream: "3-0"])
        // The next read, with no takeover meanwhile, moves on.
        streams.advance([stream: "8-0"])
        #expect(streams.beginRead(now: at(3)).positions == [stream: "8-0"])
    }

    @Test("a call taken over from this relay's own stream (a restart with the same id) rewinds the own stream once")
    func ownStream() {
        var streams = AdoptedStreams(own: "tac:voice:relay-0")
        _ = streams.adopt("tac:voice:relay-0", after: "6-0", until: at(120))
        _ = streams.adopt("tac:voice:relay-0", after: "4-0", until: at(120))
        let read = streams.beginRead(now: at(0))
        #expect(read.positions.isEmpty)
        #expect(read.ownRewind == "4-0")
        #expect(streams.beginRead(now: at(1)).ownRewind == nil)
    }

    @Test("frames of this relay's stream from before the process read it go only to a call taken back from it")
    func ownStreamBeforeStart() {
        let own = (stream: "tac:voice:relay-0", started: "10-0")
        func entry(_ stream: String, _ id: String) -> BusEntry { BusEntry(stream: stream, id: id, event: nil, raw: []) }
        // Another relay's stream: checked against what the previous holder sent.
        #expect(VoiceFrameReader.isAdopted(entry(stream, "3-0"), own: own, resumed: false) == true)
        // Own stream, since this process reads it: as any frame (a DTMF reply, a proactive `speak`).
        #expect(VoiceFrameReader.isAdopted(entry(own.stream, "11-0"), own: own, resumed: true) == false)
        #expect(VoiceFrameReader.isAdopted(entry(own.stream, "11-0"), own: own, resumed: false) == false)
        // Own stream, before: only a call taken back from it, checked; any other call gets none of it.
        #expect(VoiceFrameReader.isAdopted(entry(own.stream, "10-0"), own: own, resumed: true) == true)
        #expect(VoiceFrameReader.isAdopted(entry(own.stream, "9-0"), own: own, resumed: false) == nil)
    }

    @Test("a stream is read until the last takeover from it is old; entry ids compare as numbers")
    func expiryAndOrder() {
        var streams = AdoptedStreams(own: "tac:voice:relay-0")
        _ = streams.adopt(stream, after: "5-0", until: at(10))
        _ = streams.adopt("tac:voice:relay-2", after: "1-0", until: at(100))
        #expect(streams.beginRead(now: at(11)).positions == ["tac:voice:relay-2": "1-0"])
        #expect(AdoptedStreams.earlier("10-0", "9-5") == "9-5")
        #expect(AdoptedStreams.earlier("9-10", "9-9") == "9-9")
        #expect(AdoptedStreams.isAtOrBefore("9-9", "9-9"))
    }
}
