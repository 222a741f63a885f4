import AgentConnectCore
import Logging
import NIOConcurrencyHelpers
import Testing

@testable import VoiceRelay

/// ``VoiceTurnGate`` with a redone turn that differs from the first: shorter than what the caller
/// heard, followed by the generation's next turn, or redone long after; and the order held turns
/// finish in. Time is passed in, so nothing here sleeps.
extension VoiceTurnGateTests {
    /// The frames of `forwards` as `<turn>/<generation><sequence>[!]`.
    func turnTokens(_ forwards: [VoiceTurnGate.Forward]) -> [String] {
        forwards.map { "\($0.frame.turnId)/\(tokens([$0])[0])" }
    }

    @Test("a redone turn shorter than what the caller heard still ends it, with an empty last frame, after the takeover")
    func shorterRedoneTurnTakenOver() {
        var gate = VoiceTurnGate(takeover: takeover)
        var sent = (1...10).flatMap { tokens(gate.admit(frame($0, "A"), now: at($0))) }
        // A is fenced; B redoes the turn as 8 frames, the 8th ending it.
        for sequence in 1...7 { sent += tokens(gate.admit(frame(sequence, "B"), now: at(100 + sequence))) }
        sent += tokens(gate.admit(frame(8, "B", last: true), now: at(200)))
        #expect(sent == (1...10).map { "A\($0)" })
        #expect(gate.nextDeadline == at(10 + 3_000))
        let end = gate.expire(now: at(3_010))
        // Nothing the caller heard is said again: the end only, at the last sequence sent.
        #expect(tokens(end) == ["B10!"])
        #expect(end.first?.frame.frame == ["type": "text", "token": "", "last": true])
        #expect(gate.nextDeadline == nil)
        // Repeats of B's end change nothing.
        #expect(gate.admit(frame(8, "B", last: true), now: at(3_100)).isEmpty)
    }

    @Test("a shorter redone turn taking over on its own last frame ends the turn at once")
    func shorterRedoneTurnTakesOverOnLast() {
        var gate = VoiceTurnGate(takeover: takeover)
        _ = (1...10).map { gate.admit(frame($0, "A"), now: at(0)) }
        for sequence in 1...7 { _ = gate.admit(frame(sequence, "B"), now: at(100)) }
        #expect(tokens(gate.admit(frame(8, "B", last: true), now: at(3_000))) == ["B10!"])
        #expect(gate.nextDeadline == nil)
    }

    @Test("the same worker redoing its own turn shorter (it took its lease again) ends the turn once")
    func sameGenerationRedoesShorter() {
        var gate = VoiceTurnGate(takeover: takeover)
        var sent = (1...10).flatMap { tokens(gate.admit(frame($0, "A"), now: at($0))) }
        sent += (1...7).flatMap { tokens(gate.admit(frame($0, "A"), now: at(100 + $0))) }
        let end = gate.admit(frame(8, "A", last: true), now: at(200))
        #expect(tokens(end) == ["A10!"])
        #expect(end.first?.frame.frame == VoiceTurnGate.emptyLast)
        #expect(sent == (1...10).map { "A\($0)" })
        #expect(gate.admit(frame(8, "A", last: true), now: at(300)).isEmpty)
    }

    @Test("a turn the caller heard to its end is not ended again by a shorter redo")
    func shorterRedoAfterTheEnd() {
        var gate = VoiceTurnGate(takeover: takeover)
        var sent = (1...9).flatMap { tokens(gate.admit(frame($0, "A"), now: at($0))) }
        sent += tokens(gate.admit(frame(10, "A", last: true), now: at(10)))
        #expect(sent.last == "A10!")
        #expect((1...7).allSatisfy { gate.admit(frame($0, "A"), now: at(100)).isEmpty })
        #expect(gate.admit(frame(8, "A", last: true), now: at(100)).isEmpty)
    }

    @Test("a generation's next reply waits behind its held redo of the earlier one, and follows it when that is taken over")
    func nextReplyWaitsBehindHeldTurn() {
        var gate = VoiceTurnGate(takeover: takeover)
        var sent = (1...3).flatMap { turnTokens(gate.admit(frame($0, "A", turn: "p:r1"), now: at($0))) }
        // A is fenced; within the takeover window B redoes p:r1, then goes on with p:r2.
        for sequence in 1...4 { sent += turnTokens(gate.admit(frame(sequence, "B", turn: "p:r1"), now: at(100 + sequence))) }
        sent += turnTokens(gate.admit(frame(5, "B", last: true, turn: "p:r1"), now: at(110)))
        sent += turnTokens(gate.admit(frame(1, "B", turn: "p:r2"), now: at(120)))
        sent += turnTokens(gate.admit(frame(2, "B", last: true, turn: "p:r2"), now: at(130)))
        #expect(sent == ["p:r1/A1", "p:r1/A2", "p:r1/A3"])
        #expect(gate.nextDeadline == at(3 + 3_000))
        sent += turnTokens(gate.expire(now: at(3_003)))
        #expect(sent == ["p:r1/A1", "p:r1/A2", "p:r1/A3", "p:r1/B4", "p:r1/B5!", "p:r2/B1", "p:r2/B2!"])
        // B owns p:r2 now: its next frames go straight out.
        #expect(gate.nextDeadline == nil)
        #expect(turnTokens(gate.admit(frame(3, "B", turn: "p:r2"), now: at(3_100))) == ["p:r2/B3"])
    }

    @Test("a generation's next reply waiting behind a held turn goes out when the owner finishes that turn instead")
    func nextReplyReleasedWhenOwnerFinishes() {
        var gate = VoiceTurnGate(takeover: takeover)
        _ = gate.admit(frame(1, "A", turn: "p:r1"), now: at(0))
        _ = gate.admit(frame(1, "B", turn: "p:r1"), now: at(10))
        #expect(gate.admit(frame(1, "B", turn: "p:r2"), now: at(20)).isEmpty)
        #expect(turnTokens(gate.admit(frame(2, "A", last: true, turn: "p:r1"), now: at(30))) == ["p:r1/A2!", "p:r2/B1"])
        #expect(turnTokens(gate.admit(frame(2, "B", turn: "p:r2"), now: at(40))) == ["p:r2/B2"])
    }

    @Test("a turn redone long after, in a call of many turns, is not spoken again")
    func oldTurnsRemembered() {
        var gate = VoiceTurnGate(takeover: takeover)
        let first = (1...3).flatMap { tokens(gate.admit(frame($0, "A", turn: "p0:r1"), now: at($0))) }
        #expect(first == ["A1", "A2", "A3"])
        for turn in 1...100 { _ = gate.admit(frame(1, "A", last: true, turn: "p\(turn):r1"), now: at(61_000 + turn)) }
        #expect((1...3).allSatisfy { gate.admit(frame($0, "A", turn: "p0:r1"), now: at(200_000)).isEmpty })
    }

    @Test("past the turn limit the least recently used turn is forgotten, not one in use")
    func turnLimit() {
        var gate = VoiceTurnGate(takeover: takeover, turnLimit: 3)
        _ = gate.admit(frame(1, "A", turn: "p0:r1"), now: at(0))
        _ = gate.admit(frame(1, "A", turn: "p1:r1"), now: at(1))
        _ = gate.admit(frame(1, "A", turn: "p2:r1"), now: at(2))
        _ = gate.admit(frame(2, "A", turn: "p0:r1"), now: at(3))  // p0 used again: p1 is now the oldest
        _ = gate.admit(frame(1, "A", turn: "p3:r1"), now: at(4))
        #expect(gate.admit(frame(2, "A", turn: "p0:r1"), now: at(5)).isEmpty)
        #expect(tokens(gate.admit(frame(1, "A", turn: "p1:r1"), now: at(6))) == ["A1"])
    }

    @Test("held turns taken over in one pass go out in the order they were first seen")
    func expireInFirstSeenOrder() {
        var gate = VoiceTurnGate(takeover: takeover)
        let turns = (1...8).map { "p\($0):r1" }
        for turn in turns { _ = gate.admit(frame(1, "A", turn: turn), now: at(0)) }
        // B redoes them in reverse: the order of its frames does not decide, the turns' order does.
        for turn in turns.reversed() { _ = gate.admit(frame(2, "B", last: true, turn: turn), now: at(100)) }
        #expect(turnTokens(gate.expire(now: at(3_000))) == turns.map { "\($0)/B2!" })
    }

    @Test("a reply frame whose payload does not decode is logged at warning, once")
    func undecodableFrameLogged() {
        let records = NIOLockedValueBox<[(Logger.Level, String)]>([])
        let logger = Logger(label: "test") { _ in RecordingLogHandler(records: records) }
        let event = BusEvent(type: VoiceFrame.type, conversationId: "CA1", channel: .voice, payload: ["turnId": "p:r1", "seq": "one"])
        #expect(VoiceFrameReader.voiceFrame(event, logger: logger) == nil)
        let logged = records.withLockedValue { $0 }
        #expect(logged.count == 1)
        #expect(logged.first?.0 == .warning)
        let good = BusEvent(
            type: VoiceFrame.type, conversationId: "CA1", channel: .voice,
            payload: ["turnId": "p:r1", "seq": 1, "frame": VoiceTurnGate.emptyLast])
        #expect(VoiceFrameReader.voiceFrame(good, logger: logger)?.seq == 1)
        #expect(records.withLockedValue { $0.count } == 1)
    }
}

/// Keeps what is logged, for tests.
private struct RecordingLogHandler: LogHandler {
    let records: NIOLockedValueBox<[(Logger.Level, String)]>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        records.withLockedValue { $0.append((event.level, event.message.description)) }
    }
}
