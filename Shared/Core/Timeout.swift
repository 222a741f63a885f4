import Dispatch
import NIOConcurrencyHelpers

/// An operation that did not finish in time.
package struct TimeoutError: Error, CustomStringConvertible, Sendable {
    package var description: String

    package init(_ description: String) {
        self.description = description
    }

    /// "`label` did not finish within `timeout`": what a bound that passed reports.
    package init(_ label: String, after timeout: Duration) {
        self.init("\(label) did not finish within \(timeout)")
    }
}

/// Runs `body` and returns its result, or throws ``TimeoutError`` once `timeout` passes. The body is
/// then cancelled; one that ignores cancellation (a query on a connection that silently died) is left
/// behind instead of holding the caller. Cancelling the caller cancels the body.
///
/// One task per call (the body's). The deadline is an entry in a process-wide list served by one
/// dispatch timer armed for the earliest deadline, not a timer per call (a dispatch timer per call
/// cost about 7% of outbound's CPU: each is queued through dispatch's manager thread).
package func withTimeout<T: Sendable>(
    _ timeout: Duration, _ label: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = TimeoutRace<T>(label: label, timeout: timeout)
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.start(continuation)
            let work = Task {
                let result: Result<T, any Error>
                do { result = .success(try await body()) } catch { result = .failure(error) }
                race.finish(result)
            }
            let bound = boundNanoseconds(timeout)
            let deadline = bound < Deadlines.never ? Deadlines.shared.add(after: bound, race) : nil
            race.arm(work: work, deadline: deadline)
        }
    } onCancel: {
        race.cancel()
    }
}

/// `timeout` in nanoseconds, 0 when negative and `UInt64.max` past what fits. A bound of
/// ``Deadlines/never`` or more is no bound (dispatch misreads deadlines that far out as "now").
private func boundNanoseconds(_ timeout: Duration) -> UInt64 {
    let (seconds, attoseconds) = timeout.components
    let whole = UInt64(clamping: seconds).multipliedReportingOverflow(by: 1_000_000_000)
    let nanoseconds = whole.partialValue.addingReportingOverflow(UInt64(clamping: attoseconds / 1_000_000_000))
    return whole.overflow || nanoseconds.overflow ? UInt64.max : nanoseconds.partialValue
}

/// The deadline ``withDeadline`` gives the waits of its body, as a task local.
package struct TaskDeadline: Sendable {
    /// When it passes, in `DispatchTime` uptime nanoseconds (the clock ``Deadlines`` runs on).
    package var uptimeNanoseconds: UInt64
    package var label: String
    package var timeout: Duration

    @TaskLocal package static var current: TaskDeadline?

    /// What a wait that outlasts it throws: the error ``withTimeout`` throws.
    package var error: TimeoutError { TimeoutError(label, after: timeout) }

    /// Nanoseconds left (0 once passed).
    package var remainingNanoseconds: UInt64 {
        let now = DispatchTime.now().uptimeNanoseconds
        return uptimeNanoseconds > now ? uptimeNanoseconds - now : 0
    }
}

/// ``withTimeout`` without a task of its own: runs `body` in the caller's task, with a deadline
/// (``TaskDeadline/current``) that the waits inside it honour. Only for bodies whose every wait
/// does: a ``StatementBatcher``'s (the caller gives up its place or its answer, as when cancelled,
/// and gets the ``TimeoutError``), or one wrapped in ``withinDeadline(_:)``. A nested deadline
/// later than one already set changes nothing, and so does a bound of decades (no bound).
///
/// The hot paths' store calls (a delivery's claim and mark-sent, a turn's history rows) are each one
/// batched statement; ``withTimeout`` started a task, a race and a continuation for each, about 5%
/// of outbound's and the worker's CPU at their max rate.
package func withDeadline<T>(_ timeout: Duration, _ label: String, _ body: () async throws -> T) async throws -> T {
    let bound = boundNanoseconds(timeout)
    guard bound < Deadlines.never else { return try await body() }
    let at = DispatchTime.now().uptimeNanoseconds + bound
    if let outer = TaskDeadline.current, outer.uptimeNanoseconds <= at { return try await body() }
    return try await TaskDeadline.$current.withValue(TaskDeadline(uptimeNanoseconds: at, label: label, timeout: timeout)) {
        try await body()
    }
}

/// Runs `body` within the current task's ``TaskDeadline``: ``withTimeout`` with the time left (the
/// deadline's error once it passed), or unbounded when there is none. For a wait inside a
/// ``withDeadline`` body that does not honour the deadline itself (a plain query).
package func withinDeadline<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    guard let deadline = TaskDeadline.current else { return try await body() }
    let left = deadline.remainingNanoseconds
    guard left > 0 else { throw deadline.error }
    return try await withTimeout(.nanoseconds(left), deadline.label, body)
}

/// Something that happens when its deadline passes; `token` tells apart the entries one object
/// added (a ``StatementBatcher``'s waiters).
package protocol Expiring: AnyObject, Sendable {
    func expire(token: UInt64)
}

/// The caller's continuation, the body's task and the deadline: whichever of the body and the
/// deadline comes first resumes the caller, and the other is cancelled.
private final class TimeoutRace<T: Sendable>: Expiring, @unchecked Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var work: Task<Void, Never>?
        var deadline: UInt64?
        var done = false
        var cancelled = false
    }

    private let state = NIOLockedValueBox(State())
    private let label: String
    private let timeout: Duration

    init(label: String, timeout: Duration) {
        self.label = label
        self.timeout = timeout
    }

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLockedValue { $0.continuation = continuation }
    }

    /// Records the body's task and the deadline's entry (nil: no bound). When the race is already over
    /// (the body finished, or the deadline passed before this) the entry is dropped and the task
    /// cancelled (a finished task ignores it); when the caller was cancelled, the task is cancelled.
    func arm(work: Task<Void, Never>, deadline: UInt64?) {
        let (over, cancelled) = state.withLockedValue { state -> (Bool, Bool) in
            state.work = work
            state.deadline = deadline
            return (state.done, state.cancelled)
        }
        if over, let deadline { Deadlines.shared.remove(deadline) }
        if over || cancelled { work.cancel() }
    }

    func expire(token: UInt64) {
        finish(.failure(TimeoutError(label, after: timeout)), timedOut: true)
    }

    func finish(_ result: Result<T, any Error>, timedOut: Bool = false) {
        let (continuation, work, deadline) = state.withLockedValue { state in
            defer {
                state.continuation = nil
                state.done = true
            }
            return (state.continuation, state.work, state.deadline)
        }
        guard let continuation else { return }
        continuation.resume(with: result)
        if timedOut {
            work?.cancel()
        } else if let deadline {
            Deadlines.shared.remove(deadline)
        }
    }

    func cancel() {
        let work = state.withLockedValue { state in
            state.cancelled = true
            return state.work
        }
        work?.cancel()
    }
}

/// The pending deadlines of every ``withTimeout`` in the process (and of each `StatementBatcher`
/// caller under a ``withDeadline``), and one dispatch timer armed for the earliest. A finished call
/// only removes its entry; the timer, when it fires, expires what is due and re-arms for the next
/// live deadline (with one bound used everywhere, that is about once per bound, not once per call).
package final class Deadlines: @unchecked Sendable {
    package static let shared = Deadlines()
    /// Bounds of this many nanoseconds (about 73 years) or more never expire.
    static let never: UInt64 = 1 << 61

    private struct State {
        /// Live entries by id.
        var pending: [UInt64: (entry: any Expiring, token: UInt64)] = [:]
        /// A min-heap of (deadline in uptime nanoseconds, id); ids no longer in `pending` are skipped.
        var heap: [(deadline: UInt64, id: UInt64)] = []
        var nextId: UInt64 = 0
        /// The deadline the timer is armed for, if it is.
        var armed: UInt64?
    }

    private let state = NIOLockedValueBox(State())
    private let timer: any DispatchSourceTimer

    private init() {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "agentconnect.timeouts"))
        timer.setEventHandler { Deadlines.shared.fire() }
        timer.activate()
    }

    /// Adds an entry due `nanoseconds` from now; returns its id.
    func add(after nanoseconds: UInt64, _ entry: any Expiring) -> UInt64 {
        let now = DispatchTime.now().uptimeNanoseconds
        let deadline = now.addingReportingOverflow(nanoseconds).overflow ? UInt64.max - 1 : now + nanoseconds
        return add(at: deadline, entry, token: 0)
    }

    /// Adds an entry due at `deadline` (uptime nanoseconds, ``TaskDeadline/uptimeNanoseconds``); its
    /// `expire(token:)` gets `token`. Returns the entry's id.
    package func add(at deadline: UInt64, _ entry: any Expiring, token: UInt64) -> UInt64 {
        state.withLockedValue { state in
            let id = state.nextId
            state.nextId += 1
            state.pending[id] = (entry, token)
            Self.push(&state.heap, (deadline, id))
            if let armed = state.armed, armed <= deadline { return id }
            state.armed = deadline
            // Under the lock, so that concurrent adds arm the timer in order.
            timer.schedule(deadline: DispatchTime(uptimeNanoseconds: deadline), leeway: .milliseconds(1))
            return id
        }
    }

    /// Drops an entry that is no longer needed (its call finished).
    package func remove(_ id: UInt64) {
        _ = state.withLockedValue { $0.pending.removeValue(forKey: id) }
    }

    /// Expires the entries that are due and re-arms the timer for the next live one.
    private func fire() {
        let now = DispatchTime.now().uptimeNanoseconds
        let due = state.withLockedValue { state -> [(entry: any Expiring, token: UInt64)] in
            var due: [(entry: any Expiring, token: UInt64)] = []
            while let top = state.heap.first {
                if let entry = state.pending[top.id] {
                    guard top.deadline <= now else { break }
                    due.append(entry)
                    state.pending[top.id] = nil
                }
                Self.pop(&state.heap)
            }
            if let next = state.heap.first {
                state.armed = next.deadline
                timer.schedule(deadline: DispatchTime(uptimeNanoseconds: next.deadline), leeway: .milliseconds(1))
            } else {
                state.armed = nil
            }
            return due
        }
        for (entry, token) in due { entry.expire(token: token) }
    }

    private static func push(_ heap: inout [(deadline: UInt64, id: UInt64)], _ element: (deadline: UInt64, id: UInt64)) {
        heap.append(element)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private static func pop(_ heap: inout [(deadline: UInt64, id: UInt64)]) {
        guard heap.count > 1 else {
            heap.removeAll(keepingCapacity: true)
            return
        }
        heap[0] = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].deadline < heap[smallest].deadline { smallest = left }
            if right < heap.count && heap[right].deadline < heap[smallest].deadline { smallest = right }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
