import AgentConnectCore
import HummingbirdWebSocket
import NIOConcurrencyHelpers
import ServiceSupport

/// One live ConversationRelay socket and what the relay must remember about it.
final class CallSession: Sendable {
    /// The conversation id: the CallSid (relay-only) or the orchestrator's conversation id.
    let conversationId: String
    let callSid: String
    let caller: String
    let called: String
    let direction: String
    let customParameters: [String: String]
    let writer: WebSocketOutboundWriter
    let startedAt = ContinuousClock.now
    /// Each prompt's span, from the prompt to its answer's last token (``OpenSpans``).
    let promptSpans = OpenSpans()
    /// The `setup` details and whether a reply is streaming (``RelayCallState``).
    let relayState = RelayCallState()

    /// Which reply frames reach the caller (``VoiceTurnGate``).
    private let turns: NIOLockedValueBox<VoiceTurnGate>
    private let handedOver = NIOLockedValueBox(false)

    /// Whether this relay gave the call up for another to take over (a drain with `applicationReconnect`,
    /// or a reconnect that landed here again): its socket's end is not the end of the call.
    var isHandedOver: Bool { handedOver.withLockedValue { $0 } }

    /// Marks the call as given up by this socket (see ``isHandedOver``).
    func handOver() {
        handedOver.withLockedValue { $0 = true }
    }

    /// Seeds the turn state from what the previous relay recorded (``CallRegistry``): the prompt in
    /// progress, and the last frame of its turn the caller was sent, so nothing is sent twice.
    func resume(prompt: String?, turnId: String?, sequence: Int?, generation: String?, lastSent: Bool, position: String?) {
        turns.withLockedValue {
            $0.resume(
                prompt: prompt, turnId: turnId, sequence: sequence, generation: generation, lastSent: lastSent, position: position, now: .now)
        }
    }

    /// The stream the call was taken over from, and the frame reader's latest read when it was
    /// (``VoiceReadPositions``); `Int.max` until the takeover is complete.
    private let adoption = NIOLockedValueBox<(stream: String, read: Int)?>(nil)

    /// The call is being taken over from `stream`: none of its frames from it are admitted until
    /// ``adopted(read:)`` says from which read on.
    func beginAdoption(from stream: String) {
        adoption.withLockedValue { $0 = (stream, Int.max) }
    }

    /// The takeover is complete: frames from reads after `read` are admitted.
    func adopted(read: Int) {
        adoption.withLockedValue { $0?.read = read }
    }

    /// How the call's frame read from `stream` by read number `read` is taken: nil when it must wait
    /// for the next read (the call was taken over from that stream while the read ran), else whether
    /// `stream` is the one the call was taken over from.
    func fromResumedStream(_ stream: String, read: Int) -> Bool? {
        adoption.withLockedValue { adoption in
            guard let adoption, adoption.stream == stream else { return false }
            return adoption.read >= read ? nil : true
        }
    }

    init(
        conversationId: String, callSid: String, caller: String, called: String, direction: String, customParameters: [String: String],
        writer: WebSocketOutboundWriter, generationTakeover: Duration
    ) {
        self.conversationId = conversationId
        self.callSid = callSid
        self.caller = caller
        self.called = called
        self.direction = direction
        self.customParameters = customParameters
        self.writer = writer
        self.turns = NIOLockedValueBox(VoiceTurnGate(takeover: generationTakeover))
    }

    /// Records a new prompt; earlier prompts' frames are dropped from now on (a newer prompt supersedes them).
    func promptSent(eventId: String) {
        turns.withLockedValue { $0.promptSent(eventId, now: .now) }
    }

    /// Records a prompt that does not cut the reply streaming now (ConversationRelay did not interrupt
    /// it): earlier prompts' frames keep flowing, and this one's turn follows.
    func promptQueued(eventId: String) {
        turns.withLockedValue { $0.promptQueued(eventId, now: .now) }
    }

    /// Cancels every turn so far (an interrupt).
    func interrupt() {
        turns.withLockedValue { $0.interrupt() }
    }

    /// What to write to the caller for a reply frame just read (``VoiceTurnGate/admit(_:now:)``), and
    /// when held frames of a later generation may next be adopted (``expireHeld(now:)``; nil: none held).
    func admit(_ frame: VoiceTurnGate.Frame, now: ContinuousClock.Instant = .now) -> (
        forward: [VoiceTurnGate.Forward], heldUntil: ContinuousClock.Instant?
    ) {
        turns.withLockedValue { gate in (gate.admit(frame, now: now), gate.nextDeadline) }
    }

    /// The held frames of turns whose owner went silent, to write now (``VoiceTurnGate/expire(now:)``),
    /// and when to look again (nil: nothing held any more).
    func expireHeld(now: ContinuousClock.Instant = .now) -> (forward: [VoiceTurnGate.Forward], heldUntil: ContinuousClock.Instant?) {
        turns.withLockedValue { gate in (gate.expire(now: now), gate.nextDeadline) }
    }
}
