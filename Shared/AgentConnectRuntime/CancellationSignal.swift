import NIOConcurrencyHelpers

/// A one-shot signal a running turn races against, so an interrupt can cancel exactly that turn.
final class CancellationSignal: Sendable {
    private enum State {
        /// Not fired, nothing running yet.
        case idle
        /// The body runs in this task.
        case running(Task<Result<Void, any Error>, Never>)
        /// Fired before the body ended.
        case fired
        /// The body ended before any firing.
        case finished
    }

    private let state = NIOLockedValueBox(State.idle)

    /// Fires the signal (idempotent): cancels the body if it runs; a body not started yet is never
    /// run; one that already ended is not affected.
    func fire() {
        let task = state.withLockedValue { state -> Task<Result<Void, any Error>, Never>? in
            switch state {
            case .idle:
                state = .fired
                return nil
            case .running(let task):
                state = .fired
                return task
            case .fired, .finished:
                return nil
            }
        }
        task?.cancel()
    }

    /// Runs `body` in a task of its own and returns once it ended, cancelling it when the signal
    /// fires (or the caller is cancelled). Returns nil when the signal fired before `body` ended,
    /// else how `body` ended.
    ///
    /// One task a turn: a task group racing the body against a waiting task cost two tasks, a group
    /// and a continuation a turn.
    func run(_ body: @escaping @Sendable () async throws -> Void) async -> Result<Void, any Error>? {
        let firedBefore = state.withLockedValue { state -> Bool in
            if case .fired = state { return true }
            return false
        }
        if firedBefore { return nil }
        let task = Task { [state] () async -> Result<Void, any Error> in
            let result: Result<Void, any Error>
            do {
                try await body()
                result = .success(())
            } catch {
                result = .failure(error)
            }
            // Ended before any firing (possibly before `run` recorded the task): a later firing is too late.
            state.withLockedValue { state in
                switch state {
                case .idle, .running: state = .finished
                case .fired, .finished: break
                }
            }
            return result
        }
        let firedMeanwhile = state.withLockedValue { state -> Bool in
            switch state {
            case .idle:
                state = .running(task)
                return false
            case .running, .finished:
                return false
            case .fired:
                return true
            }
        }
        if firedMeanwhile { task.cancel() }
        let result = await withTaskCancellationHandler {
            await task.value
        } onCancel: {
            task.cancel()
        }
        let fired = state.withLockedValue { state -> Bool in
            if case .fired = state { return true }
            return false
        }
        return fired ? nil : result
    }
}
