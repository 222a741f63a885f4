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
    var supersedesVoiceTurn: Bool {
        event.channel == .voice && (event.type == EventType.voiceInterrupted || event.type == EventType.messageReceived
            || event.type == EventType.conversationEnded)
    }
}

/// Serial executors per conversation: the events of one conversation run one after another, in
/// order, while different conversations run concurrently. An interrupt (or a newer voice prompt)
/// cancels the voice turn in progress at once, then runs in order behind it.
final class ConversationLanes: Sendable {
    private struct Lane {
        var queue: [LaneWork] = []
        var running: CancellationSignal?
        var runningIsTurn = false
    }

    private let lanes = NIOLockedValueBox<[String: Lane]>([:])

    /// Adds work; returns true when the caller must start a drain task for this conversation.
    func enqueue(_ work: LaneWork) -> Bool {
        lanes.withLockedValue { lanes in
            let id = work.event.conversationId
            if var lane = lanes[id] {
                if work.supersedesVoiceTurn, lane.runningIsTurn { lane.running?.fire() }
                lane.queue.append(work)
                lanes[id] = lane
                return false
            }
            lanes[id] = Lane(queue: [work])
            return true
        }
    }

    /// Runs a conversation's queued work until its queue is empty, then forgets the lane.
    /// `perform` runs the work (cancellable); `finish` then settles it with how it ended: `nil` when
    /// an interrupt or a newer prompt cancelled it.
    func drain(
        conversationId: String, perform: @escaping @Sendable (LaneWork) async throws -> Void,
        finish: @Sendable (LaneWork, Result<Void, any Error>?) async -> Void
    ) async {
        while true {
            let next = lanes.withLockedValue { lanes -> (LaneWork, CancellationSignal)? in
                guard var lane = lanes[conversationId] else { return nil }
                guard !lane.queue.isEmpty else {
                    lanes[conversationId] = nil
                    return nil
                }
                var work = lane.queue.removeFirst()
                let signal = CancellationSignal()
                // A voice prompt with a newer prompt or interrupt already queued behind it is stale.
                work.superseded = work.isCancellableTurn && lane.queue.contains(where: \.supersedesVoiceTurn)
                lane.running = signal
                lane.runningIsTurn = work.isCancellableTurn
                lanes[conversationId] = lane
                return (work, signal)
            }
            guard let (work, signal) = next else { return }
            let outcome = work.superseded ? nil : await signal.run { try await perform(work) }
            await finish(work, outcome)
            lanes.withLockedValue { lanes in
                lanes[conversationId]?.running = nil
                lanes[conversationId]?.runningIsTurn = false
            }
        }
    }

    /// Work queued or running.
    var activeConversations: Int { lanes.withLockedValue { $0.count } }
}
