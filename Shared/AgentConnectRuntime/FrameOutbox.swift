import AgentConnectCore
import NIOConcurrencyHelpers

/// The frames of one voice reply on their way to the relay: the author's stream hands each frame in
/// and goes on; one publisher at a time takes out every frame waiting and publishes them as one
/// `voice.frame` event (``VoiceFrame/more``). A frame that finds no publish under way starts one at
/// once (the first token is not held back for others): it goes out as soon as the author's stream
/// next suspends, so a stream whose tokens come without a pause (the echo agent) hands all of them
/// over first and they go as one event; frames that come while a publish is under way go out together
/// next. Under load this turns a reply's tokens into a few events instead of one each.
final class FrameOutbox: Sendable {
    /// The most frames one event carries, when the relay reads several (``MessageReceived/framesInRow``).
    static let maxFramesPerEvent = 64

    /// The most frames one event carries here: 1 for a relay that reads one frame per event.
    let framesPerEvent: Int

    private struct State {
        var waiting: [JSONValue] = []
        /// The place in the turn of `waiting.first`.
        var nextSequence = 1
        var publishing = false
        var failure: (any Error)?
    }

    private let state = NIOLockedValueBox(State())

    init(framesPerEvent: Int = FrameOutbox.maxFramesPerEvent) {
        self.framesPerEvent = max(1, framesPerEvent)
    }

    /// Queues a frame; true when no publisher is running and the caller must start one (``drain(_:)``).
    /// - Throws: the error an earlier publish of this reply failed with.
    func add(_ frame: JSONValue) throws -> Bool {
        try state.withLockedValue { state in
            if let failure = state.failure { throw failure }
            state.waiting.append(frame)
            guard !state.publishing else { return false }
            state.publishing = true
            return true
        }
    }

    /// Publishes the waiting frames, a batch at a time, until none are left.
    func drain(_ publish: (_ frames: ArraySlice<JSONValue>, _ sequence: Int) async throws -> Void) async throws {
        while let (frames, sequence) = next() {
            do {
                try await publish(frames, sequence)
            } catch {
                state.withLockedValue {
                    $0.failure = error
                    $0.publishing = false
                }
                throw error
            }
        }
    }

    /// The next batch and the place in the turn of its first frame; nil (publishing stops) when none wait.
    private func next() -> (ArraySlice<JSONValue>, Int)? {
        state.withLockedValue { state in
            guard !state.waiting.isEmpty else {
                state.publishing = false
                return nil
            }
            let count = min(framesPerEvent, state.waiting.count)
            let batch = state.waiting[..<count]
            state.waiting.removeFirst(count)
            defer { state.nextSequence += count }
            return (batch, state.nextSequence)
        }
    }
}
