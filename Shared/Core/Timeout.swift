import Dispatch
import NIOConcurrencyHelpers

/// An operation that did not finish in time.
package struct TimeoutError: Error, CustomStringConvertible, Sendable {
    package var description: String

    package init(_ description: String) {
        self.description = description
    }
}

/// Runs `body` and returns its result, or throws ``TimeoutError`` once `timeout` passes. The body is
/// then cancelled; one that ignores cancellation (a query on a connection that silently died) is left
/// behind instead of holding the caller.
///
/// One task per call (the body's); the deadline is a dispatch timer, not a second task sleeping.
package func withTimeout<T: Sendable>(
    _ timeout: Duration, _ label: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = TimeoutRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.start(continuation)
            let work = Task {
                let result: Result<T, any Error>
                do { result = .success(try await body()) } catch { result = .failure(error) }
                race.finish(result)
            }
            let timer = DispatchWorkItem {
                race.finish(.failure(TimeoutError("\(label) did not finish within \(timeout)")), cancelWork: true)
            }
            race.arm(work: work, timer: timer)
            let (seconds, attoseconds) = timeout.components
            let nanoseconds = max(0, seconds) * 1_000_000_000 + max(0, attoseconds) / 1_000_000_000
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: nanoseconds)), execute: timer)
        }
    } onCancel: {
        race.cancel()
    }
}

/// The caller's continuation, the body's task and the deadline's timer: whichever of the body and
/// the timer finishes first resumes the caller, and the other is cancelled.
private final class TimeoutRace<T: Sendable>: @unchecked Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var work: Task<Void, Never>?
        var timer: DispatchWorkItem?
        var done = false
        var cancelled = false
    }

    private let state = NIOLockedValueBox(State())

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLockedValue { $0.continuation = continuation }
    }

    /// Records the body's task and the timer; when the race is already over (the body finished, or
    /// the caller was cancelled) they are cancelled at once.
    func arm(work: Task<Void, Never>, timer: DispatchWorkItem) {
        let (over, cancelled) = state.withLockedValue { state -> (Bool, Bool) in
            state.work = work
            state.timer = timer
            return (state.done, state.cancelled)
        }
        if over { timer.cancel() }
        if cancelled { work.cancel() }
    }

    func finish(_ result: Result<T, any Error>, cancelWork: Bool = false) {
        let (continuation, work, timer) = state.withLockedValue { state in
            defer {
                state.continuation = nil
                state.done = true
            }
            return (state.continuation, state.work, state.timer)
        }
        guard let continuation else { return }
        continuation.resume(with: result)
        if cancelWork { work?.cancel() } else { timer?.cancel() }
    }

    func cancel() {
        let work = state.withLockedValue { state in
            state.cancelled = true
            return state.work
        }
        work?.cancel()
    }
}
