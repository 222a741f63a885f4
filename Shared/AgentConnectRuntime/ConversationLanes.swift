import AgentConnectCore
import EventBus
import NIOConcurrencyHelpers

/// One unit of work for a conversation: an inbound entry and how to finish it.
struct LaneWork: Sendable {
    let entry: BusEntry
    let event: BusEvent
    /// Set when a newer prompt or an interrupt was queued behind this voice turn: acknowledge, do not run.
    var superseded = false
    /// A voice turn is cancelled by an interrupt or by a newer prompt.
    var isCancellableTurn: Bool { event.channel == .voice && event.type == EventType.messageReceived }
    /// Events that cancel the running voice turn on arrival.
    /// A prompt the relay marked `supersedes: false` (it came while a reply was streaming and
    /// ConversationRelay did not interrupt it) waits for the running turn instead.
    let supersedesVoiceTurn: Bool

    init(entry: BusEntry, event: BusEvent) {
        self.entry = entry
        self.event = event
        supersedesVoiceTurn =
            event.channel == .voice
            && (event.type == EventType.voiceInterrupted || event.type == EventType.conversationEnded
                || (event.type == EventType.messageReceived && Self.supersedes(event)))
    }

    /// A prompt's ``MessageReceived/supersedes``, read alone (the turn decodes the whole event) and
    /// as leniently (`"false"` too): absent or unreadable reads as true.
    private static func supersedes(_ event: BusEvent) -> Bool {
        event.payload["supersedes"]?.bool != false
    }
}

/// How a lane's work ended.
enum LaneOutcome: Sendable {
    /// It ran and returned.
    case completed
    /// An interrupt or a newer prompt cancelled it (or made it stale before it started): acknowledge.
    case superseded
    /// It threw.
    case failed(any Error)
    /// Its partition changed hands (or its lease was lost) before it finished: leave it pending for
    /// the next owner, neither acknowledged nor counted as a failure.
    case abandoned
}

/// Serial executors per conversation: the events of one conversation run one after another, in
/// order, while different conversations run concurrently. An interrupt (or a newer voice prompt)
/// cancels the voice turn in progress at once, then runs in order behind it. Lanes of a partition
/// that is handed over are abandoned: the running turn is cancelled and nothing queued runs.
final class ConversationLanes: Sendable {
    private struct Lane {
        var queue: [LaneWork] = []
        var running: CancellationSignal?
        var runningIsTurn = false
        var abandoned = false
    }

    private let lanes = NIOLockedValueBox<[String: Lane]>([:])

    /// Adds work; returns true when the caller must start a drain task for this conversation.
    func enqueue(_ work: LaneWork) -> Bool {
        let (startDrain, superseded) = lanes.withLockedValue { lanes -> (Bool, CancellationSignal?) in
            let id = work.event.conversationId
            // Changed in place: a lane copied out and stored back copied its queue each time.
            if let index = lanes.index(forKey: id) {
                lanes.values[index].queue.append(work)
                return (false, work.supersedesVoiceTurn && lanes.values[index].runningIsTurn ? lanes.values[index].running : nil)
            }
            lanes[id] = Lane(queue: [work])
            return (true, nil)
        }
        // Fired outside the lock: cancelling the turn runs its cancellation handlers right here.
        superseded?.fire()
        return startDrain
    }

    /// Abandons the lanes of the conversations `matching` selects: the running work is cancelled
    /// and everything queued ends as ``LaneOutcome/abandoned``.
    func abandon(matching: (String) -> Bool) {
        let running = lanes.withLockedValue { lanes -> [CancellationSignal] in
            var running: [CancellationSignal] = []
            for index in lanes.indices where matching(lanes.keys[index]) && !lanes.values[index].abandoned {
                lanes.values[index].abandoned = true
                if let signal = lanes.values[index].running { running.append(signal) }
            }
            return running
        }
        // Fired outside the lock, as in `enqueue`.
        for signal in running { signal.fire() }
    }

    /// Runs a conversation's queued work until its queue is empty, then forgets the lane.
    /// `perform` runs the work (cancellable); `finish` then settles it with how it ended.
    func drain(
        conversationId: String, perform: @escaping @Sendable (LaneWork) async throws -> Void,
        finish: @Sendable (LaneWork, LaneOutcome) async -> Void
    ) async {
        while true {
            let next = lanes.withLockedValue { lanes -> (LaneWork, CancellationSignal, Bool)? in
                guard let index = lanes.index(forKey: conversationId) else { return nil }
                guard !lanes.values[index].queue.isEmpty else {
                    lanes.remove(at: index)
                    return nil
                }
                return Self.start(&lanes.values[index])
            }
            guard let (work, signal, abandonedBefore) = next else { return }
            let outcome: LaneOutcome
            if abandonedBefore {
                outcome = .abandoned
            } else if work.superseded {
                outcome = .superseded
            } else {
                let result = await signal.run { try await perform(work) }
                let abandoned = lanes.withLockedValue { $0[conversationId]?.abandoned ?? false }
                switch result {
                case .none: outcome = abandoned ? .abandoned : .superseded
                case .some(.success): outcome = .completed
                case .some(.failure(let error)):
                    outcome = abandoned ? .abandoned : (error is CancellationError ? .superseded : .failed(error))
                }
            }
            await finish(work, outcome)
            lanes.withLockedValue { lanes in
                lanes[conversationId]?.running = nil
                lanes[conversationId]?.runningIsTurn = false
            }
        }
    }

    /// Takes a lane's next work (changed in place): its signal, and whether the lane was abandoned.
    private static func start(_ lane: inout Lane) -> (LaneWork, CancellationSignal, Bool) {
        var work = lane.queue.removeFirst()
        let signal = CancellationSignal()
        // A voice prompt with a newer prompt or interrupt already queued behind it is stale.
        work.superseded = work.isCancellableTurn && lane.queue.contains(where: \.supersedesVoiceTurn)
        lane.running = signal
        lane.runningIsTurn = work.isCancellableTurn
        return (work, signal, lane.abandoned)
    }

    /// Work queued or running.
    var activeConversations: Int { lanes.withLockedValue { $0.count } }
}

/// A counting semaphore for async tasks: caps how many turns run at once.
final class TurnPermits: Sendable {
    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var available: Int
        var nextId: UInt64 = 0
        var waiters: [Waiter] = []
    }

    private let state: NIOLockedValueBox<State>

    init(_ count: Int) {
        state = NIOLockedValueBox(State(available: max(1, count)))
    }

    /// Runs `body` holding one permit, waiting for one first when none is free. A task cancelled
    /// while it waits (an abandoned lane) leaves the queue at once and throws `CancellationError`.
    func withPermit<T: Sendable>(_ body: () async -> T) async throws -> T {
        let id = state.withLockedValue { state -> UInt64 in
            state.nextId &+= 1
            return state.nextId
        }
        let granted = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now = state.withLockedValue { state -> Bool? in
                    if state.available > 0 {
                        state.available -= 1
                        return true
                    }
                    // Checked under the lock the cancellation handler takes: no waiter is left behind.
                    if Task.isCancelled { return false }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(returning: false)
        }
        guard granted else { throw CancellationError() }
        let result = await body()
        let next = state.withLockedValue { state -> Waiter? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.continuation.resume(returning: true)
        return result
    }
}
