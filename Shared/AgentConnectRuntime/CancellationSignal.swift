import NIOConcurrencyHelpers

/// A one-shot signal a running turn races against, so an interrupt can cancel exactly that turn.
final class CancellationSignal: Sendable {
    private enum State {
        /// Not fired, nothing running yet.
        case idle
        /// The body runs in this task.
        case running(Task<Result<Void, any Error>?, Never>)
        /// Fired before the body ended.
        case fired
        /// The body ended before any firing.
        case finished
    }

    private let state = NIOLockedValueBox(State.idle)

    /// Fires the signal (idempotent): cancels the body if it runs; a body not started yet is never
    /// run; one that already ended is not affected.
    func fire() {
        let task = state.withLockedValue { state -> Task<Result<Void, any Error>?, Never>? in
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
        // Started under the lock, so that a firing either comes first (nothing runs) or finds the
        // task; the task settles under the lock too (nil: the signal fired before it ended).
        let task = state.withLockedValue { current -> Task<Result<Void, any Error>?, Never>? in
            guard case .idle = current else { return nil }
            let task = Task { [state] () async -> Result<Void, any Error>? in
                let result: Result<Void, any Error>
                do {
                    try await body()
                    result = .success(())
                } catch {
                    result = .failure(error)
                }
                return state.withLockedValue { state in
                    guard case .running = state else { return nil }
                    state = .finished
                    return result
                }
            }
            current = .running(task)
            return task
        }
        guard let task else { return nil }
        return await withTaskCancellationHandler {
            await task.value
        } onCancel: {
            task.cancel()
        }
    }
}
