import AgentConnectCore

/// Which reply frames of one call reach the caller, and in what order.
///
/// A voice turn (`<prompt event id>:r<n>`) is produced by the worker holding the conversation's
/// partition lease; its frames carry that worker as their generation (`gen`). When the lease lapses
/// (the worker is fenced and stops publishing, or it died) the next owner redoes the turn, so two
/// generations of one turn may reach the relay. The gate lets the caller hear each turn once, to its
/// `last: true`, never a token twice or out of order:
///
/// - the first generation seen owns the turn; its frames go out in sequence order (lower or repeated
///   sequences are dropped);
/// - a later generation's frames are *held* (at most ``heldLimit`` per generation), not refused:
///   they are adopted once the owner has been silent for `takeover` without finishing the turn —
///   on the later generation's next frame or when ``expire(now:)`` runs at ``nextDeadline`` (the
///   later generation may have sent everything already) — and then only the frames after the last
///   sequence the caller was sent go out;
/// - when the owner finishes the turn, the held frames are dropped and their generations refused.
///
/// Time comes in as `now` on every call, so the decisions are reproducible in tests.
struct VoiceTurnGate {
    /// One reply frame read from a voice stream.
    struct Frame: Sendable, Equatable {
        /// `<prompt event id>:r<n>`.
        var turnId: String
        /// The frame's position in its generation's turn (1, 2, …).
        var sequence: Int
        /// The worker that produced it (its partition lease holder); nil when published outside a lease.
        var generation: String?
        /// The ConversationRelay frame itself.
        var frame: JSONValue
        /// The stream entry it was read from.
        var entryId: String
        /// Whether it was read from the stream of the relay that held the call before (a takeover).
        var adopted = false

        /// Whether the frame ends the turn (`last: true`).
        var isLast: Bool { frame["last"]?.bool == true }

        /// The prompt event id of its turn.
        var promptId: String { String(turnId.prefix { $0 != ":" }) }
    }

    /// A frame to write to the caller now.
    struct Forward: Sendable, Equatable {
        var frame: Frame
        /// The time since its prompt, when it is the first frame of its turn the caller gets.
        var sincePrompt: Duration?
    }

    /// How long a turn's owner may be silent before a held generation takes the turn over
    /// (`VOICE_GENERATION_TAKEOVER_MS`).
    let takeover: Duration
    /// Frames held per later generation of a turn; past it, that generation is refused for the turn.
    let heldLimit: Int

    private struct Turn {
        /// The generation whose frames go to the caller, and when it last sent one.
        var owner: String?
        var ownerAt: ContinuousClock.Instant
        /// The owner sent `last: true`.
        var done = false
        /// The highest sequence forwarded (the caller was sent everything up to it).
        var lastSequence: Int?
        var firstTokenSeen = false
        /// Later generations waiting for the owner to go silent, first seen first.
        var held: [(generation: String, frames: [Frame])] = []
        /// Generations that may never send frames of this turn again (superseded, or too late).
        var refused: Set<String> = []
        /// When anything last happened to the turn (for forgetting old turns).
        var touched: ContinuousClock.Instant
    }

    /// Turn state by turn id.
    private var turns: [String: Turn] = [:]
    /// Prompt event ids whose frames must no longer reach the caller (interrupted or superseded).
    private var cancelled: Set<String> = []
    /// The prompt events sent, newest last, with when each was sent.
    private var prompts: [(id: String, at: ContinuousClock.Instant)] = []
    /// After a takeover: the prompt whose turn was in progress on the previous relay; frames read
    /// from that relay's stream count only for it ("-" when it had been interrupted).
    private var resumedPrompt: String?

    init(takeover: Duration, heldLimit: Int = 2048) {
        self.takeover = takeover
        self.heldLimit = heldLimit
    }

    // MARK: prompts

    /// A new prompt: earlier prompts' frames are dropped from now on.
    mutating func promptSent(_ eventId: String, now: ContinuousClock.Instant) {
        for prompt in prompts { cancelled.insert(prompt.id) }
        promptQueued(eventId, now: now)
    }

    /// A prompt that does not cut the reply streaming now: earlier prompts' frames keep flowing.
    mutating func promptQueued(_ eventId: String, now: ContinuousClock.Instant) {
        prompts.append((eventId, now))
        if prompts.count > 32 { prompts.removeFirst(prompts.count - 32) }
    }

    /// Cancels every turn so far (an interrupt).
    mutating func interrupt() {
        for prompt in prompts { cancelled.insert(prompt.id) }
    }

    /// Seeds the state from what the previous relay recorded: the prompt in progress, and the last
    /// frame of its turn the caller was sent (its sequence and generation).
    mutating func resume(prompt: String?, turnId: String?, sequence: Int?, generation: String?, now: ContinuousClock.Instant) {
        resumedPrompt = prompt ?? "-"
        if let prompt, prompt != "-" { prompts.append((prompt, now)) }
        guard let turnId else { return }
        var turn = turns[turnId] ?? Turn(ownerAt: now, touched: now)
        if let sequence { turn.lastSequence = sequence }
        if let generation { turn.owner = generation }
        turns[turnId] = turn
    }

    // MARK: frames

    /// What to do with a frame read now: the frames to write to the caller (none, this one, or —
    /// when it takes a silent owner's turn over — its generation's held frames and this one).
    mutating func admit(_ frame: Frame, now: ContinuousClock.Instant) -> [Forward] {
        if cancelled.contains(frame.promptId) {
            turns[frame.turnId]?.held = []
            return []
        }
        if frame.adopted, resumedPrompt != frame.promptId { return [] }
        var turn = turns[frame.turnId] ?? Turn(ownerAt: now, touched: now)
        turn.touched = now
        defer {
            turns[frame.turnId] = turn
            forgetOldTurns(now: now)
        }
        guard let generation = frame.generation else { return forward([frame], turn: &turn) }
        if turn.refused.contains(generation) { return [] }
        if turn.owner == nil || turn.owner == generation {
            turn.owner = generation
            turn.ownerAt = now
            return forward([frame], turn: &turn)
        }
        if turn.done {
            turn.refused.insert(generation)
            return []
        }
        if now - turn.ownerAt >= takeover {
            return takeOver(by: generation, with: [frame], turn: &turn, now: now)
        }
        hold(frame, generation: generation, turn: &turn)
        return []
    }

    /// Adopts, for every turn whose owner has been silent for ``takeover`` without finishing, the
    /// first generation held for it; returns the frames to write (after the last sequence sent).
    mutating func expire(now: ContinuousClock.Instant) -> [Forward] {
        var forwards: [Forward] = []
        for (turnId, var turn) in turns where !turn.held.isEmpty {
            if cancelled.contains(String(turnId.prefix { $0 != ":" })) {
                turn.held = []
            } else if now - turn.ownerAt >= takeover {
                forwards += takeOver(by: turn.held[0].generation, with: [], turn: &turn, now: now)
            } else {
                continue
            }
            turns[turnId] = turn
        }
        return forwards
    }

    /// When ``expire(now:)`` should run next: the earliest time a held generation may take a turn
    /// over (nil when nothing is held).
    var nextDeadline: ContinuousClock.Instant? {
        var earliest: ContinuousClock.Instant?
        for turn in turns.values where !turn.held.isEmpty {
            let deadline = turn.ownerAt + takeover
            if earliest.map({ deadline < $0 }) ?? true { earliest = deadline }
        }
        return earliest
    }

    /// `generation` takes the turn over from its silent owner (refused from now on); its `frames`
    /// after the last sequence the caller was sent go out in order.
    private mutating func takeOver(by generation: String, with frames: [Frame], turn: inout Turn, now: ContinuousClock.Instant) -> [Forward] {
        if let owner = turn.owner { turn.refused.insert(owner) }
        turn.owner = generation
        turn.ownerAt = now
        turn.touched = now
        let held = turn.held.first { $0.generation == generation }?.frames ?? []
        turn.held.removeAll { $0.generation == generation }
        return forward((held + frames).sorted { $0.sequence < $1.sequence }, turn: &turn)
    }

    /// Keeps a later generation's frame until the owner finishes or goes silent; frames at or below
    /// the last sequence sent are of no use and not kept.
    private mutating func hold(_ frame: Frame, generation: String, turn: inout Turn) {
        let index = turn.held.firstIndex { $0.generation == generation } ?? {
            turn.held.append((generation, []))
            return turn.held.count - 1
        }()
        if let last = turn.lastSequence { turn.held[index].frames.removeAll { $0.sequence <= last } }
        if let last = turn.lastSequence, frame.sequence <= last { return }
        guard turn.held[index].frames.count < heldLimit else {
            turn.held.remove(at: index)
            turn.refused.insert(generation)
            return
        }
        turn.held[index].frames.append(frame)
    }

    /// The frames (in order) whose sequence is past the last one sent; the turn is done at `last: true`,
    /// and then every held generation is dropped and refused.
    private mutating func forward(_ frames: [Frame], turn: inout Turn) -> [Forward] {
        var forwards: [Forward] = []
        for frame in frames {
            // The owner's `last: true` ends the turn even when it repeats a sequence already sent.
            if frame.isLast, frame.generation == turn.owner { turn.done = true }
            if let last = turn.lastSequence, frame.sequence <= last { continue }
            turn.lastSequence = frame.sequence
            var sincePrompt: Duration?
            if !turn.firstTokenSeen {
                turn.firstTokenSeen = true
                sincePrompt = prompts.last { $0.id == frame.promptId }.map { turn.touched - $0.at }
            }
            forwards.append(Forward(frame: frame, sincePrompt: sincePrompt))
        }
        if turn.done {
            turn.refused.formUnion(turn.held.map(\.generation))
            turn.held = []
        }
        return forwards
    }

    /// Forgets turns nothing happened to for a minute, once there are many.
    private mutating func forgetOldTurns(now: ContinuousClock.Instant) {
        guard turns.count > 64 else { return }
        turns = turns.filter { now - $0.value.touched < .seconds(60) }
    }
}
