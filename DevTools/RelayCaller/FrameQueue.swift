import AgentConnectCore
import Foundation
import NIOCore
import NIOPosix

/// Frames read from the socket, waited for with a timeout (one reader, one consumer).
///
/// A wait is one continuation and one event-loop timer: a bench holds a thousand calls, each waiting
/// for its next frame, and a task (or a `Task.sleep`) per wait cost the load generator more CPU than
/// the relay it measured.
final class FrameQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer: [JSONValue] = []
    private var head = 0
    private var closed = false
    /// The consumer waiting for a frame, by wait.
    private var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
    /// A wait whose timer fired, or whose task was cancelled, before it began waiting.
    private var released: UInt64?
    private var waits: UInt64 = 0

    func push(_ frame: JSONValue) {
        let waiter = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            buffer.append(frame)
            return takeWaiter()
        }
        waiter?.resume()
    }

    func close() {
        let waiter = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            closed = true
            return takeWaiter()
        }
        waiter?.resume()
    }

    var isClosed: Bool { lock.withLock { closed } }
    var isEmpty: Bool { lock.withLock { head == buffer.count } }

    /// Waits until the reader ends or `timeout` passes, discarding frames.
    func waitClosed(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, !isClosed, !Task.isCancelled {
            _ = await pop(timeout: deadline - ContinuousClock.now)
        }
        return isClosed
    }

    /// The next frame; nil once closed and empty, when `timeout` passes, or when the task is cancelled.
    func pop(timeout: Duration) async -> JSONValue? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (frame, done, id) = lock.withLock { () -> (JSONValue?, Bool, UInt64) in
                if head < buffer.count {
                    let frame = buffer[head]
                    head += 1
                    if head == buffer.count {
                        buffer.removeAll(keepingCapacity: true)
                        head = 0
                    }
                    return (frame, true, 0)
                }
                waits &+= 1
                return (nil, closed, waits)
            }
            let remaining = deadline - ContinuousClock.now
            if frame != nil || done || remaining <= .zero || Task.isCancelled { return frame }
            let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: .nanoseconds(remaining.nanoseconds)) {
                self.release(id)
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let waitNow = lock.withLock { () -> Bool in
                        guard head == buffer.count, !closed, released != id else { return false }
                        waiter = (id, continuation)
                        return true
                    }
                    if !waitNow { continuation.resume() }
                }
            } onCancel: {
                release(id)
            }
            timer.cancel()
        }
    }

    /// Ends wait `id` (its timer fired or its task was cancelled), also when it has not begun yet; a
    /// wait that is over already (a timer that fired as a frame woke it) changes nothing.
    private func release(_ id: UInt64) {
        let continuation = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            guard let waiter, waiter.id == id else {
                if id == waits { released = id }
                return nil
            }
            return takeWaiter()
        }
        continuation?.resume()
    }

    /// Under the lock.
    private func takeWaiter() -> CheckedContinuation<Void, Never>? {
        defer { waiter = nil }
        return waiter?.continuation
    }
}

/// Something that happens once (a hang-up), awaited by any number of tasks; a waiting task that is
/// cancelled stops waiting.
package final class OneTimeEvent: @unchecked Sendable {
    private let lock = NSLock()
    private var happened = false
    private var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    private var cancelled: Set<UInt64> = []
    private var waits: UInt64 = 0

    package init() {}

    package var hasHappened: Bool { lock.withLock { happened } }

    package func happen() {
        let waiting = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            happened = true
            defer { waiters = [:] }
            return Array(waiters.values)
        }
        for waiter in waiting { waiter.resume() }
    }

    package func wait() async {
        let id = lock.withLock { () -> UInt64 in
            waits &+= 1
            return waits
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let waitNow = lock.withLock { () -> Bool in
                    let wasCancelled = cancelled.remove(id) != nil
                    guard !happened, !wasCancelled else { return false }
                    waiters[id] = continuation
                    return true
                }
                if !waitNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = lock.withLock { () -> CheckedContinuation<Void, Never>? in
                if let continuation = waiters.removeValue(forKey: id) { return continuation }
                if !happened { cancelled.insert(id) }
                return nil
            }
            continuation?.resume()
        }
    }
}
