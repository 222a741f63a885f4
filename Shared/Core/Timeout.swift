import NIOConcurrencyHelpers

/// An operation that did not finish in time.
public struct TimeoutError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Runs `body` and returns its result, or throws ``TimeoutError`` once `timeout` passes. The body is
/// then cancelled; one that ignores cancellation (a query on a connection that silently died) is left
/// behind instead of holding the caller.
public func withTimeout<T: Sendable>(
    _ timeout: Duration, _ label: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let waiter = NIOLockedValueBox<CheckedContinuation<T, any Error>?>(nil)
    let work = NIOLockedValueBox<Task<Void, Never>?>(nil)
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            waiter.withLockedValue { $0 = continuation }
            let timer = NIOLockedValueBox<Task<Void, Never>?>(nil)
            let task = Task {
                let result: Result<T, any Error>
                do { result = .success(try await body()) } catch { result = .failure(error) }
                waiter.withLockedValue { state in
                    state?.resume(with: result)
                    state = nil
                }
                timer.withLockedValue { $0 }?.cancel()
            }
            work.withLockedValue { $0 = task }
            timer.withLockedValue {
                $0 = Task {
                    guard (try? await Task.sleep(for: timeout)) != nil else { return }
                    let fired = waiter.withLockedValue { state -> Bool in
                        guard let pending = state else { return false }
                        pending.resume(throwing: TimeoutError("\(label) did not finish within \(timeout)"))
                        state = nil
                        return true
                    }
                    if fired { task.cancel() }
                }
            }
        }
    } onCancel: {
        work.withLockedValue { $0 }?.cancel()
    }
}
