import AgentConnectCore
import Foundation

/// Frames read from the socket, waited for with a timeout (one reader, one consumer).
final class FrameQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer: [JSONValue] = []
    private var closed = false
    private var waiter: CheckedContinuation<Void, Never>?

    func push(_ frame: JSONValue) {
        let waiter = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            buffer.append(frame)
            defer { self.waiter = nil }
            return self.waiter
        }
        waiter?.resume()
    }

    func close() {
        let waiter = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            closed = true
            defer { self.waiter = nil }
            return self.waiter
        }
        waiter?.resume()
    }

    var isClosed: Bool { lock.withLock { closed } }
    var isEmpty: Bool { lock.withLock { buffer.isEmpty } }

    /// Waits until the reader ends or `timeout` passes, discarding frames.
    func waitClosed(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, !isClosed {
            _ = await pop(timeout: deadline - ContinuousClock.now)
        }
        return isClosed
    }

    private func wake() {
        let waiter = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            defer { self.waiter = nil }
            return self.waiter
        }
        waiter?.resume()
    }

    /// The next frame; nil once closed and empty, or when `timeout` passes.
    func pop(timeout: Duration) async -> JSONValue? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (frame, done) = lock.withLock { () -> (JSONValue?, Bool) in
                if !buffer.isEmpty { return (buffer.removeFirst(), true) }
                return (nil, closed)
            }
            if frame != nil || done || ContinuousClock.now >= deadline { return frame }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await withCheckedContinuation { continuation in
                        // Past the deadline the timer has already fired its wake-up: do not wait for another.
                        let resumeNow = self.lock.withLock { () -> Bool in
                            if !self.buffer.isEmpty || self.closed || ContinuousClock.now >= deadline { return true }
                            self.waiter = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                }
                group.addTask {
                    try? await Task.sleep(until: deadline)
                    self.wake()
                }
                await group.next()
                group.cancelAll()
                await group.waitForAll()
            }
        }
    }
}
