import AgentConnectCore
import Testing

@testable import VoiceRelay

/// ``VoiceTurnGate``: which reply frames reach the caller when one or two workers (generations)
/// produce a turn. Time is passed in, so nothing here sleeps.
@Suite("Voice turn gate")
struct VoiceTurnGateTests {
    let start = ContinuousClock.now
    let takeover = Duration.seconds(3)

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    /// A text frame of turn `p1:r1` (or `turn`).
    func frame(_ sequence: Int, _ generation: String?, last: Bool = false, turn: String = "p1:r1", adopted: Bool = false) -> VoiceTurnGate.Frame {
        VoiceTurnGate.Frame(
            turnId: turn, sequence: sequence, generation: generation,
            frame: ["type": "text", "token": .string(last ? "" : "\(generation ?? "-")\(sequence) "), "last": .bool(last)],
            entryId: "\(sequence)-0", adopted: adopted)
    }

    func tokens(_ forwards: [VoiceTurnGate.Forward]) -> [String] {
        forwards.map { "\($0.frame.generation ?? "-")\($0.frame.sequence)\($0.frame.isLast ? "!" : "")" }
    }

    @Test("one generation's frames go out in sequence; repeated and older sequences are dropped")
    func oneGeneration() {
        var gate = VoiceTurnGate(takeover: takeover)
        var sent: [String] = []
        for (sequence, time) in [(1, 0), (2, 10), (2, 20), (1, 30), (3, 40)] {
            sent += tokens(gate.admit(frame(sequence, "A"), now: at(time)))
        }
        sent += tokens(gate.admit(frame(4, "A", last: true), now: at(50)))
        #expect(sent == ["A1", "A2", "A3", "A4!"])
        #expect(gate.nextDeadline == nil)
    }

    @Test("frames published outside a lease (no generation) are ordered by sequence alone")
    func noGeneration() {
        var gate = VoiceTurnGate(takeover: takeover)
        let sent = [frame(1, nil), frame(1, nil), frame(2, nil, last: true)].flatMap { tokens(gate.admit($0, now: at(0))) }
        #expect(sent == ["-1", "-2!"])
    }

    @Test("a second generation is held while the first streams, and dropped when the first finishes the turn")
    func heldThenDroppedWhenOwnerFinishes() {
        var gate = VoiceTurnGate(takeover: takeover)
        #expect(tokens(gate.admit(frame(1, "A"), now: at(0))) == ["A1"])
        #expect(gate.admit(frame(1, "B"), now: at(100)).isEmpty)
        #expect(gate.admit(frame(2, "B"), now: at(200)).isEmpty)
        #expect(gate.nextDeadline == at(3_000))
        #expect(tokens(gate.admit(frame(2, "A"), now: at(1_000))) == ["A2"])
        #expect(gate.nextDeadline == at(4_000))
        #expect(tokens(gate.admit(frame(3, "A", last: true), now: at(2_000))) == ["A3!"])
        #expect(gate.nextDeadline == nil)
        // Long after, the second generation's frames (held or new) never reach the caller.
        #expect(gate.expire(now: at(60_000)).isEmpty)
        #expect(gate.admit(frame(4, "B", last: true), now: at(60_000)).isEmpty)
    }

    @Test("the stalled redone turn: a fenced generation's turn is finished by the next one, after the last token sent, once")
    func fencedGenerationTakenOverByTimer() {
        var gate = VoiceTurnGate(takeover: takeover)
        // A (fenced after its third frame) sent three tokens; B redid the whole turn right after.
        var sent = [1, 2, 3].flatMap { tokens(gate.admit(frame($0, "A"), now: at($0 * 10))) }
        for sequence in 1...5 { sent += tokens(gate.admit(frame(sequence, "B"), now: at(100 + sequence))) }
        sent += tokens(gate.admit(frame(6, "B", last: true), now: at(200)))
        #expect(sent == ["A1", "A2", "A3"])
        // Nothing more comes on the stream: the timer for the held turn is what finishes it.
        #expect(gate.nextDeadline == at(30 + 3_000))
        #expect(gate.expire(now: at(3_029)).isEmpty)
        sent += tokens(gate.expire(now: at(3_030)))
        #expect(sent == ["A1", "A2", "A3", "B4", "B5", "B6!"])
        #expect(gate.nextDeadline == nil)
        // A late frame of either generation changes nothing.
        #expect(gate.admit(frame(4, "A"), now: at(3_100)).isEmpty)
        #expect(gate.admit(frame(6, "B", last: true), now: at(3_100)).isEmpty)
        #expect(gate.expire(now: at(10_000)).isEmpty)
    }

    @Test("a second generation's frame after the first went silent takes over at once, with what it had held")
    func takeoverOnNextFrame() {
        var gate = VoiceTurnGate(takeover: takeover)
        var sent = tokens(gate.admit(frame(1, "A"), now: at(0)))
        sent += tokens(gate.admit(frame(1, "B"), now: at(500)))
        sent += tokens(gate.admit(frame(2, "B"), now: at(600)))
        sent += tokens(gate.admit(frame(3, "B"), now: at(3_000)))
        #expect(sent == ["A1", "B2", "B3"])
        sent += tokens(gate.admit(frame(4, "B", last: true), now: at(3_100)))
        #expect(sent == ["A1", "B2", "B3", "B4!"])
    }

    @Test("a generation taken over is refused, and a held generation stays held until the new owner goes silent too")
    func thirdGeneration() {
        var gate = VoiceTurnGate(takeover: takeover)
        var sent = tokens(gate.admit(frame(1, "A"), now: at(0)))
        sent += tokens(gate.admit(frame(1, "B"), now: at(3_000)))  // A silent 3 s: B owns the turn
        sent += tokens(gate.admit(frame(2, "A"), now: at(3_100)))  // A is refused from now on
        sent += tokens(gate.admit(frame(2, "B"), now: at(3_200)))
        sent += [1, 2, 3].flatMap { tokens(gate.admit(frame($0, "C"), now: at(3_300 + $0))) }
        #expect(sent == ["A1", "B2"])
        #expect(gate.expire(now: at(6_199)).isEmpty)
        sent += tokens(gate.expire(now: at(6_200)))
        #expect(sent == ["A1", "B2", "C3"])
    }

    @Test("held frames the caller already got from the owner are not kept")
    func heldFramesBelowTheLastSequence() {
        var gate = VoiceTurnGate(takeover: takeover, heldLimit: 2)
        _ = gate.admit(frame(1, "B"), now: at(0))
        _ = gate.admit(frame(1, "A"), now: at(10))  // B owns the turn (first seen); A is held
        _ = gate.admit(frame(2, "A"), now: at(20))
        // B goes on past A's held frames: they are pruned, so A's later ones fit under the limit.
        _ = gate.admit(frame(2, "B"), now: at(30))
        _ = gate.admit(frame(3, "A"), now: at(40))
        _ = gate.admit(frame(4, "A", last: true), now: at(50))
        #expect(tokens(gate.expire(now: at(3_030))) == ["A3", "A4!"])
    }

    @Test("a held generation past the limit is refused for the turn")
    func heldLimit() {
        var gate = VoiceTurnGate(takeover: takeover, heldLimit: 2)
        _ = gate.admit(frame(1, "A"), now: at(0))
        for sequence in 2...4 { _ = gate.admit(frame(sequence, "B"), now: at(10)) }
        #expect(gate.nextDeadline == nil)
        #expect(gate.expire(now: at(10_000)).isEmpty)
        #expect(gate.admit(frame(4, "B"), now: at(10_000)).isEmpty)
    }

    @Test("an interrupted or superseded prompt's frames are dropped, held ones included")
    func cancelledPrompts() {
        var gate = VoiceTurnGate(takeover: takeover)
        gate.promptSent("p1", now: at(0))
        #expect(tokens(gate.admit(frame(1, "A"), now: at(10))) == ["A1"])
        _ = gate.admit(frame(1, "B"), now: at(20))
        gate.interrupt()
        #expect(gate.admit(frame(2, "A"), now: at(30)).isEmpty)
        #expect(gate.expire(now: at(10_000)).isEmpty)
        #expect(gate.nextDeadline == nil)
        // A newer prompt supersedes the older one; a queued prompt does not.
        gate.promptSent("p2", now: at(100))
        gate.promptQueued("p3", now: at(110))
        gate.promptSent("p4", now: at(120))
        #expect(gate.admit(frame(1, "A", turn: "p2:r1"), now: at(130)).isEmpty)
        #expect(gate.admit(frame(1, "A", turn: "p3:r1"), now: at(130)).isEmpty)
        #expect(tokens(gate.admit(frame(1, "A", turn: "p4:r1"), now: at(130))) == ["A1"])
    }

    @Test("a queued prompt lets the streaming reply finish")
    func queuedPrompt() {
        var gate = VoiceTurnGate(takeover: takeover)
        gate.promptSent("p1", now: at(0))
        _ = gate.admit(frame(1, "A"), now: at(10))
        gate.promptQueued("p2", now: at(20))
        #expect(tokens(gate.admit(frame(2, "A", last: true), now: at(30))) == ["A2!"])
        #expect(tokens(gate.admit(frame(1, "A", turn: "p2:r1"), now: at(40))) == ["A1"])
    }

    @Test("the first frame of a turn reports the time since its prompt; later ones do not")
    func firstToken() {
        var gate = VoiceTurnGate(takeover: takeover)
        gate.promptSent("p1", now: at(0))
        #expect(gate.admit(frame(1, "A"), now: at(250)).first?.sincePrompt == .milliseconds(250))
        #expect(gate.admit(frame(2, "A"), now: at(300)).first?.sincePrompt == nil)
    }

    @Test("after a call takeover only the resumed turn is read from the old relay's stream, after the sequence sent")
    func resumed() {
        var gate = VoiceTurnGate(takeover: takeover)
        gate.resume(prompt: "p1", turnId: "p1:r1", sequence: 2, generation: "A", now: at(0))
        #expect(gate.admit(frame(2, "A", adopted: true), now: at(10)).isEmpty)
        #expect(tokens(gate.admit(frame(3, "A", adopted: true), now: at(20))) == ["A3"])
        #expect(gate.admit(frame(1, "A", turn: "p0:r1", adopted: true), now: at(30)).isEmpty)
        // A later generation of the resumed turn is held like any other.
        #expect(gate.admit(frame(1, "B", adopted: true), now: at(40)).isEmpty)
        #expect(tokens(gate.expire(now: at(3_020))) == [])
        #expect(tokens(gate.admit(frame(5, "B", last: true, adopted: true), now: at(3_020))) == ["B5!"])
    }

    @Test("after a takeover, the old relay's frames of a turn the caller heard to its end send nothing when read again")
    func resumedFinishedTurn() {
        var gate = VoiceTurnGate(takeover: takeover)
        gate.resume(prompt: "p1", turnId: "p1:r1", sequence: 3, generation: "A", lastSent: true, now: at(0))
        for sequence in 1...2 { #expect(gate.admit(frame(sequence, "A", adopted: true), now: at(10)).isEmpty) }
        // Not an empty `last: true`: the caller would take it for the end of its next turn.
        #expect(gate.admit(frame(3, "A", last: true, adopted: true), now: at(20)).isEmpty)
        // A redo by a later generation is refused: the turn is over.
        #expect(gate.admit(frame(1, "B", adopted: true), now: at(3_500)).isEmpty)
        #expect(gate.nextDeadline == nil)
        // The prompt's next reply goes on.
        #expect(tokens(gate.admit(frame(1, "A", turn: "p1:r2", adopted: true), now: at(30))) == ["A1"])
    }

    @Test("after a takeover, frames of the old stream at or before the last one the caller was sent are not sent again")
    func resumedPosition() {
        var gate = VoiceTurnGate(takeover: takeover)
        // The caller heard all of p1:r1 (entries 1-0…3-0) and p1:r2 to its frame at entry 5-0.
        gate.resume(prompt: "p1", turnId: "p1:r2", sequence: 2, generation: "A", position: "5-0", now: at(0))
        // Read again from an earlier position (another call's): the earlier reply is not spoken twice.
        #expect(gate.admit(frame(1, "A", adopted: true), now: at(10)).isEmpty)
        #expect(gate.admit(frame(3, "A", last: true, adopted: true), now: at(10)).isEmpty)
        // A later generation redoing the prompt, published before the takeover, is not spoken either.
        var redo = frame(1, "B", adopted: true)
        redo.entryId = "4-0"
        #expect(gate.admit(redo, now: at(10)).isEmpty)
        // p1:r2 goes on after its last frame sent.
        var next = frame(3, "A", turn: "p1:r2", adopted: true)
        next.entryId = "6-0"
        #expect(tokens(gate.admit(next, now: at(20))) == ["A3"])
    }

    @Test("after a takeover by the same relay (restarted with its id), replies to prompts made since pass, older ones do not")
    func resumedSameRelay() {
        var gate = VoiceTurnGate(takeover: takeover)
        gate.resume(prompt: "p1", turnId: "p1:r1", sequence: 2, generation: "A", position: "5-0", now: at(0))
        gate.promptSent("p2", now: at(10))
        var old = frame(1, "A", turn: "p0:r1", adopted: true)
        old.entryId = "6-0"
        #expect(gate.admit(old, now: at(20)).isEmpty)
        var reply = frame(1, "A", turn: "p2:r1", adopted: true)
        reply.entryId = "7-0"
        #expect(tokens(gate.admit(reply, now: at(20))) == ["A1"])
    }

    @Test("after a takeover mid-turn, the owner's last frame at the sequence recorded still ends the turn once")
    func resumedUnfinishedTurn() {
        var gate = VoiceTurnGate(takeover: takeover)
        gate.resume(prompt: "p1", turnId: "p1:r1", sequence: 3, generation: "A", lastSent: false, now: at(0))
        #expect(tokens(gate.admit(frame(3, "A", last: true, adopted: true), now: at(10))) == ["A3!"])
        #expect(gate.admit(frame(3, "A", last: true, adopted: true), now: at(20)).isEmpty)
    }

    @Test("a resumed call whose turn had been interrupted reads nothing from the old relay's stream")
    func resumedInterrupted() {
        var gate = VoiceTurnGate(takeover: takeover)
        gate.resume(prompt: nil, turnId: nil, sequence: nil, generation: nil, now: at(0))
        #expect(gate.admit(frame(1, "A", adopted: true), now: at(10)).isEmpty)
        #expect(tokens(gate.admit(frame(1, "A"), now: at(10))) == ["A1"])
    }

    @Test("two held turns of one call each finish, in sequence order")
    func twoTurns() {
        var gate = VoiceTurnGate(takeover: takeover)
        _ = gate.admit(frame(1, "A", turn: "p1:r1"), now: at(0))
        _ = gate.admit(frame(1, "A", turn: "p1:r2"), now: at(100))
        _ = gate.admit(frame(3, "B", last: true, turn: "p1:r2"), now: at(200))
        _ = gate.admit(frame(2, "B", turn: "p1:r2"), now: at(210))
        _ = gate.admit(frame(2, "B", last: true, turn: "p1:r1"), now: at(220))
        #expect(gate.nextDeadline == at(3_000))
        #expect(tokens(gate.expire(now: at(3_000))) == ["B2!"])
        #expect(gate.nextDeadline == at(3_100))
        #expect(tokens(gate.expire(now: at(3_100))) == ["B2", "B3!"])
        #expect(gate.nextDeadline == nil)
    }

    @Test("the frame reader waits no longer than the next held turn's takeover")
    func readBlock() {
        #expect(VoiceFrameReader.block(until: nil) == 500)
        #expect(VoiceFrameReader.block(until: .now - .seconds(1)) == 1)
        #expect((90...101).contains(VoiceFrameReader.block(until: .now + .milliseconds(100))))
        #expect(VoiceFrameReader.block(until: .now + .seconds(10)) == 500)
    }
}
