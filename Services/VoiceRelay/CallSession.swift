import AgentConnectCore
import Foundation
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

    private struct Turns {
        /// Prompt event ids whose frames must no longer reach the caller (interrupted or superseded).
        var cancelled: Set<String> = []
        /// The prompt events sent, newest last, with when each was sent.
        var prompts: [(id: String, at: ContinuousClock.Instant)] = []
        /// The highest frame sequence forwarded per turn (drops replays of a redone turn).
        var lastSequence: [String: Int] = [:]
        var firstTokenSeen: Set<String> = []
        /// The generation (the worker producing it) each turn's frames come from, and when it last
        /// sent one: a second worker running the same turn (a partition that changed hands) is dropped.
        var generation: [String: (id: String, at: ContinuousClock.Instant, done: Bool)] = [:]
        /// Generations turned away for a turn (`<turn>|<generation>`): never let in later.
        var rejected: Set<String> = []
        /// After a takeover: the prompt whose turn was in progress on the previous relay; frames read
        /// from that relay's stream count only for it ("-" when it had been interrupted).
        var resumedPrompt: String?
    }

    /// How long a turn's generation may go silent before another may take the turn over (its worker
    /// died): `VOICE_GENERATION_TAKEOVER_MS`, 3 s. A partition's new owner starts only after the old
    /// owner's lease lapsed (`AGENT_LEASE_TTL_MS`), so in practice a dead worker's turn is taken over.
    static let generationTakeover = Duration.milliseconds(
        Int64(ProcessInfo.processInfo.environment["VOICE_GENERATION_TAKEOVER_MS"].flatMap { Int($0) } ?? 3000))

    private let turns = NIOLockedValueBox(Turns())
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
    func resume(prompt: String?, turnId: String?, sequence: Int?, generation: String?) {
        turns.withLockedValue { turns in
            turns.resumedPrompt = prompt ?? "-"
            if let prompt, prompt != "-" { turns.prompts.append((prompt, .now)) }
            if let turnId, let sequence { turns.lastSequence[turnId] = sequence }
            if let turnId, let generation { turns.generation[turnId] = (generation, .now, false) }
        }
    }

    init(
        conversationId: String, callSid: String, caller: String, called: String, direction: String, customParameters: [String: String],
        writer: WebSocketOutboundWriter
    ) {
        self.conversationId = conversationId
        self.callSid = callSid
        self.caller = caller
        self.called = called
        self.direction = direction
        self.customParameters = customParameters
        self.writer = writer
    }

    /// Records a new prompt; earlier prompts' frames are dropped from now on (a newer prompt supersedes them).
    func promptSent(eventId: String) {
        turns.withLockedValue { turns in
            for prompt in turns.prompts { turns.cancelled.insert(prompt.id) }
            turns.prompts.append((eventId, .now))
            if turns.prompts.count > 32 { turns.prompts.removeFirst(turns.prompts.count - 32) }
        }
    }

    /// Records a prompt that does not cut the reply streaming now (ConversationRelay did not interrupt
    /// it): earlier prompts' frames keep flowing, and this one's turn follows.
    func promptQueued(eventId: String) {
        turns.withLockedValue { turns in
            turns.prompts.append((eventId, .now))
            if turns.prompts.count > 32 { turns.prompts.removeFirst(turns.prompts.count - 32) }
        }
    }

    /// Cancels every turn so far (an interrupt).
    func interrupt() {
        turns.withLockedValue { turns in
            for prompt in turns.prompts { turns.cancelled.insert(prompt.id) }
        }
    }

    /// What to do with a frame of turn `turnId` (`<prompt event id>:r<n>`) and sequence `sequence`:
    /// `nil` to drop it, else the time since its prompt when this is the turn's first token.
    /// Frames of a second generation of the same turn are dropped while the first one is alive.
    /// A second generation is decided on at its first frame: it takes the turn over only when the
    /// first one has not finished the turn and has been silent for ``generationTakeover`` (its worker
    /// died); otherwise it is turned away for good.
    /// `adopted` frames come from the stream of the relay that held the call before (a takeover): only
    /// the turn that was in progress there is continued from them.
    func admit(
        turnId: String, sequence: Int, generation: String? = nil, isLast: Bool = false, adopted: Bool = false
    ) -> (forward: Bool, sincePrompt: Duration?) {
        let promptId = turnId.split(separator: ":").first.map(String.init) ?? turnId
        return turns.withLockedValue { turns in
            if turns.cancelled.contains(promptId) { return (false, nil) }
            if adopted, turns.resumedPrompt != promptId { return (false, nil) }
            if let generation {
                if turns.rejected.contains("\(turnId)|\(generation)") { return (false, nil) }
                var done = isLast
                if let first = turns.generation[turnId] {
                    if first.id == generation {
                        done = done || first.done
                    } else if first.done || ContinuousClock.now - first.at < Self.generationTakeover {
                        turns.rejected.insert("\(turnId)|\(generation)")
                        return (false, nil)
                    } else {
                        turns.rejected.insert("\(turnId)|\(first.id)")
                    }
                }
                turns.generation[turnId] = (generation, .now, done)
                if turns.generation.count > 64 {
                    let recent = turns.generation.filter { ContinuousClock.now - $0.value.at < .seconds(60) }
                    turns.generation = recent
                    turns.rejected = turns.rejected.filter { key in recent.keys.contains { key.hasPrefix($0 + "|") } }
                }
            }
            if let last = turns.lastSequence[turnId], sequence <= last { return (false, nil) }
            turns.lastSequence[turnId] = sequence
            guard turns.firstTokenSeen.insert(turnId).inserted, let prompt = turns.prompts.last(where: { $0.id == promptId }) else {
                return (true, nil)
            }
            return (true, .now - prompt.at)
        }
    }
}
