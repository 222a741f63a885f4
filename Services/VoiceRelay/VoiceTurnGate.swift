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
/// - when the owner finishes the turn, the held frames are dropped and their generations refused;
/// - a `last: true` frame is kept whatever its sequence: when the owner's `last` comes at or below the
///   last sequence sent (a redone turn shorter than what the caller heard) and the caller was not yet
///   sent `last`, an empty `last: true` text frame goes out instead, so the turn still ends;
/// - a generation held in a turn does not overtake itself: its frames of turns first seen after that
///   one wait (at most ``heldLimit`` in all) until the held turn is taken over or dropped, then go
///   through the gate in the order they came.
///
/// The state of the last ``turnLimit`` turns used (their last sequence sent, whether `last` was sent)
/// is kept, so a turn redone long after is not spoken again.
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
        var promptId: String {
            // By bytes: walking the id as Characters (grapheme breaking) cost the relay 4% of its CPU.
            guard let colon = turnId.utf8.firstIndex(of: UInt8(ascii: ":")) else { return turnId }
            return String(turnId[..<colon])
        }
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
    /// Also the most frames waiting behind held turns (``waiting``).
    let heldLimit: Int
    /// The most turns remembered; past it, the least recently used turn without held frames is forgotten.
    let turnLimit: Int

    private struct Turn {
        /// The generation whose frames go to the caller, and when it last sent one.
        var owner: String?
        var ownerAt: ContinuousClock.Instant
        /// The owner sent `last: true`.
        var done = false
        /// The caller was sent a `last: true` frame of this turn.
        var lastSent = false
        /// The highest sequence forwarded (the caller was sent everything up to it).
        var lastSequence: Int?
        var firstTokenSeen = false
        /// Later generations waiting for the owner to go silent, first seen first.
        var held: [(generation: String, frames: [Frame])] = []
        /// Generations that may never send frames of this turn again (superseded, or too late).
        var refused: Set<String> = []
        /// When anything last happened to the turn.
        var touched: ContinuousClock.Instant
        /// When the gate first saw the turn (an increasing count): turns are finished in that order.
        var seen: Int
        /// When the gate last used the turn (the same count), for forgetting the least recently used.
        var used: Int
    }

    /// Turn state by turn id.
    private var turns: [String: Turn] = [:]
    /// Counts turn creations and uses (``Turn/seen``, ``Turn/used``).
    private var clock = 0
    /// The turns holding a later generation's frames.
    private var holding: Set<String> = []
    /// A generation stopped being held in some turn since the waiting frames were last looked at.
    private var heldReleased = false
    /// Frames of a generation that is held in an earlier turn, in the order they came.
    private var waiting: [Frame] = []
    /// Prompt event ids whose frames must no longer reach the caller (interrupted or superseded).
    private var cancelled: Set<String> = []
    /// The prompt events sent, newest last, with when each was sent.
    private var prompts: [(id: String, at: ContinuousClock.Instant)] = []
    /// After a takeover: the entry, on the stream of the relay that held the call, of the last frame
    /// the caller was sent; frames read from that stream up to it were dealt with there.
    private var resumedPosition: String?

    init(takeover: Duration, heldLimit: Int = 2048, turnLimit: Int = 1024) {
        self.takeover = takeover
        self.heldLimit = heldLimit
        self.turnLimit = turnLimit
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
    /// frame of its turn the caller was sent (its sequence and generation; whether it ended the turn,
    /// which is then done; and its stream entry, at or before which nothing is sent again).
    mutating func resume(
        prompt: String?, turnId: String?, sequence: Int?, generation: String?, lastSent: Bool = false, position: String? = nil,
        now: ContinuousClock.Instant
    ) {
        resumedPosition = position
        if let prompt, prompt != "-" { prompts.append((prompt, now)) }
        guard let turnId else { return }
        var turn = newOrExisting(turnId, now: now)
        if let sequence { turn.lastSequence = sequence }
        if let generation { turn.owner = generation }
        if lastSent {
            turn.lastSent = true
            turn.done = true
        }
        store(turn, as: turnId)
    }

    // MARK: frames

    /// What to do with a frame read now: the frames to write to the caller (none, this one, or —
    /// when it takes a silent owner's turn over — its generation's held frames and this one; then
    /// also the frames that waited behind that turn).
    mutating func admit(_ frame: Frame, now: ContinuousClock.Instant) -> [Forward] {
        let forwards = admitOne(frame, now: now)
        return forwards + releaseWaiting(now: now)
    }

    private mutating func admitOne(_ frame: Frame, now: ContinuousClock.Instant) -> [Forward] {
        if cancelled.contains(frame.promptId) {
            if var turn = turns[frame.turnId], !turn.held.isEmpty {
                turn.held = []
                store(turn, as: frame.turnId)
            }
            return []
        }
        if frame.adopted {
            // From the previous holder's stream: only replies to prompts the caller made (the one in
            // progress there, or one since), after the last frame the caller was sent from it.
            guard prompts.contains(where: { $0.id == frame.promptId }) else { return [] }
            if let resumedPosition, VoiceReadPositions.isAtOrBefore(frame.entryId, resumedPosition) { return [] }
        }
        var turn = newOrExisting(frame.turnId, now: now)
        turn.touched = now
        defer { store(turn, as: frame.turnId) }
        guard let generation = frame.generation else { return forward([frame], turn: &turn) }
        if turn.refused.contains(generation) { return [] }
        if isHeld(generation, before: turn, turnId: frame.turnId) {
            if waiting.count < heldLimit { waiting.append(frame) } else { turn.refused.insert(generation) }
            return []
        }
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

    /// Whether `generation` has frames held in a turn first seen before `turn`: its frames of `turn`
    /// must wait, or they would reach the caller before its earlier ones.
    private func isHeld(_ generation: String, before turn: Turn, turnId: String) -> Bool {
        holding.contains { id in
            guard id != turnId, let other = turns[id] else { return false }
            return other.seen < turn.seen && other.held.contains { $0.generation == generation }
        }
    }

    /// The waiting frames whose generation is no longer held in an earlier turn go through the gate,
    /// in the order they came; the others wait on.
    private mutating func releaseWaiting(now: ContinuousClock.Instant) -> [Forward] {
        var forwards: [Forward] = []
        while !waiting.isEmpty, heldReleased {
            heldReleased = false
            let frames = waiting
            waiting = []
            for frame in frames { forwards += admitOne(frame, now: now) }
        }
        heldReleased = false
        return forwards
    }

    /// Adopts, for every turn whose owner has been silent for ``takeover`` without finishing, the
    /// first generation held for it; returns the frames to write (after the last sequence sent).
    mutating func expire(now: ContinuousClock.Instant) -> [Forward] {
        var forwards: [Forward] = []
        // In the order the turns were first seen, so the caller hears them in that order.
        let heldTurns = holding.compactMap { id in turns[id].map { (id, $0) } }.sorted { $0.1.seen < $1.1.seen }
        for (turnId, var turn) in heldTurns {
            if cancelled.contains(String(turnId.prefix { $0 != ":" })) {
                turn.held = []
            } else if now - turn.ownerAt >= takeover {
                forwards += takeOver(by: turn.held[0].generation, with: [], turn: &turn, now: now)
            } else {
                continue
            }
            store(turn, as: turnId)
        }
        return forwards + releaseWaiting(now: now)
    }

    /// When ``expire(now:)`` should run next: the earliest time a held generation may take a turn
    /// over (nil when nothing is held).
    var nextDeadline: ContinuousClock.Instant? {
        var earliest: ContinuousClock.Instant?
        for id in holding {
            guard let turn = turns[id] else { continue }
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
    /// the last sequence sent are of no use and not kept, but for `last: true` (it ends the turn).
    private mutating func hold(_ frame: Frame, generation: String, turn: inout Turn) {
        let index =
            turn.held.firstIndex { $0.generation == generation }
            ?? {
                turn.held.append((generation, []))
                return turn.held.count - 1
            }()
        if let last = turn.lastSequence { turn.held[index].frames.removeAll { $0.sequence <= last && !$0.isLast } }
        if let last = turn.lastSequence, frame.sequence <= last, !frame.isLast { return }
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
        for var frame in frames {
            // The owner's `last: true` ends the turn even when it repeats a sequence already sent.
            let ownersLast = frame.isLast && frame.generation == turn.owner
            if ownersLast { turn.done = true }
            if let last = turn.lastSequence, frame.sequence <= last {
                // A redone turn shorter than what the caller heard: its end is all that is left to send.
                guard ownersLast, !turn.lastSent else { continue }
                frame.sequence = last
                frame.frame = Self.emptyLast
            }
            if frame.isLast { turn.lastSent = true }
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

    /// The end of a turn with nothing more to say (a ConversationRelay text frame).
    static let emptyLast: JSONValue = ["type": "text", "token": "", "last": true]

    /// The turn's state, or a new one first seen now.
    private mutating func newOrExisting(_ turnId: String, now: ContinuousClock.Instant) -> Turn {
        clock += 1
        if var turn = turns[turnId] {
            turn.used = clock
            return turn
        }
        return Turn(ownerAt: now, touched: now, seen: clock, used: clock)
    }

    /// Stores a turn's state (noting whether it holds frames, and whether a generation stopped being
    /// held in it); past ``turnLimit`` turns, forgets the least recently used one holding nothing.
    private mutating func store(_ turn: Turn, as turnId: String) {
        let previous = turns.updateValue(turn, forKey: turnId)
        if turn.held.isEmpty { holding.remove(turnId) } else { holding.insert(turnId) }
        if let previous, previous.held.count > turn.held.count { heldReleased = true }
        guard previous == nil, turns.count > turnLimit else { return }
        var oldest: (id: String, used: Int)?
        for (id, other) in turns where id != turnId && other.held.isEmpty && oldest.map({ other.used < $0.used }) ?? true {
            oldest = (id, other.used)
        }
        if let oldest { turns[oldest.id] = nil }
    }
}
