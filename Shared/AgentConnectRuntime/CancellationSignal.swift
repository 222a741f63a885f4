import NIOConcurrencyHelpers

/// A one-shot signal a running turn races against, so an interrupt can cancel exactly that turn.
final class CancellationSignal: Sendable {
    private enum State {
        case waiting(CheckedContinuation<Void, Never>?)
        case fired
    }

    private let state = NIOLockedValueBox(State.waiting(nil))

    /// Fires the signal (idempotent).
    func fire() {
        let continuation = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            defer { state = .fired }
            if case .waiting(let continuation) = state { return continuation }
            return nil
        }
        continuation?.resume()
    }

    /// Returns once fired; returns at once when the waiting task is cancelled.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if case .fired = state { return true }
                    if Task.isCancelled { return true }
                    state = .waiting(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            fire()
        }
    }

    /// Runs `body`, cancelling it when the signal fires. Returns nil when it was cancelled that way,
    /// else how `body` ended.
    func run(_ body: @escaping @Sendable () async throws -> Void) async -> Result<Void, any Error>? {
        await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            group.addTask {
                do {
                    try await body()
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                await self.wait()
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
