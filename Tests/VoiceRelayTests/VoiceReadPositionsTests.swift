import Testing

@testable import VoiceRelay

/// ``VoiceReadPositions``: where a relay reads its own voice stream and those of relays whose calls it took over.
@Suite("Voice read positions")
struct VoiceReadPositionsTests {
    let start = ContinuousClock.now
    let own = "tac:voice:relay-0"
    let stream = "tac:voice:relay-1"

    func at(_ seconds: Int) -> ContinuousClock.Instant { start + .seconds(seconds) }

    /// Positions as the reader starts: its own stream after `ownStart`.
    func started(after ownStart: String = "10-0") -> VoiceReadPositions {
        var positions = VoiceReadPositions(own: own)
        positions.start(after: ownStart)
        return positions
    }

    @Test("a read moves each stream's position to the last entry read from it; the own stream is always read")
    func advances() {
        var positions = started()
        _ = positions.adopt(stream, after: "5-0", until: at(120))
        #expect(positions.beginRead(now: at(0)).positions == [own: "10-0", stream: "5-0"])
        positions.advance([stream: "9-3", own: "12-0"])
        #expect(positions.beginRead(now: at(1)).positions == [own: "12-0", stream: "9-3"])
        // An adopted stream is dropped once its last takeover is old; the own one never is.
        #expect(positions.beginRead(now: at(121)).positions == [own: "12-0"])
    }

    @Test("a call taken over while a read runs is read again from its own position, whatever the read's end")
    func takeoverDuringRead() {
        var positions = started()
        _ = positions.adopt(stream, after: "5-0", until: at(120))
        let read = positions.beginRead(now: at(0))
        // Taken over mid-read at 7-0: stamped with the read in flight, whose entries of it are not admitted.
        #expect(positions.adopt(stream, after: "7-0", until: at(120)) == read.number)
        positions.advance([stream: "9-0"])
        let next = positions.beginRead(now: at(1))
        #expect(next.positions[stream] == "7-0")
        #expect(next.number > read.number)
        // An earlier one moves the next read back to it at once.
        _ = positions.adopt(stream, after: "3-0", until: at(120))
        #expect(positions.beginRead(now: at(2)).positions[stream] == "3-0")
        // The next read, with no takeover meanwhile, moves on.
        positions.advance([stream: "8-0"])
        #expect(positions.beginRead(now: at(3)).positions[stream] == "8-0")
    }

    @Test("a call taken back from the own stream (a restart with the same id) rewinds it, even before the reader started")
    func ownStream() {
        var positions = VoiceReadPositions(own: own)
        _ = positions.adopt(own, after: "6-0", until: at(120))
        positions.start(after: "10-0")
        #expect(positions.beginRead(now: at(0)).positions == [own: "6-0"])
        let read = positions.beginRead(now: at(1))
        _ = positions.adopt(own, after: "4-0", until: at(120))
        positions.advance([own: "11-0"])
        #expect(positions.beginRead(now: at(2)).positions == [own: "4-0"])
        #expect(read.number < positions.reads)
    }

    @Test("frames of the own stream from before the process read it go only to a call taken back from it")
    func ownStreamBeforeStart() {
        var positions = started(after: "10-0")
        let read = positions.beginRead(now: at(0))
        // Another relay's stream: checked against what the previous holder sent.
        #expect(read.isAdopted(stream: stream, id: "3-0", resumed: false) == true)
        // Own stream, since this process reads it: as any frame (a DTMF reply, a proactive `speak`).
        #expect(read.isAdopted(stream: own, id: "11-0", resumed: true) == false)
        #expect(read.isAdopted(stream: own, id: "11-0", resumed: false) == false)
        // Own stream, before: only a call taken back from it, checked; any other call gets none of it.
        #expect(read.isAdopted(stream: own, id: "10-0", resumed: true) == true)
        #expect(read.isAdopted(stream: own, id: "9-0", resumed: false) == nil)
    }

    @Test("entry ids compare as numbers")
    func order() {
        #expect(VoiceReadPositions.earlier("10-0", "9-5") == "9-5")
        #expect(VoiceReadPositions.earlier("9-10", "9-9") == "9-9")
        #expect(VoiceReadPositions.isAtOrBefore("9-9", "9-9"))
    }
}
