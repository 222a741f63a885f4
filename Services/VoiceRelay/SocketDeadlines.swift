import NIOConcurrencyHelpers
import NIOCore

/// One socket's timers: `setup` must come within the setup timeout, after it a socket that sends
/// nothing for the idle timeout is closed, and a WebSocket ping goes out every ping interval (it keeps
/// proxies' idle timers from closing a quiet call, and a peer that does not answer it is found by the
/// connection's read-idle timeout, ``HeaderDeadlineChannel``).
///
/// Kept on an event loop's timers, not in tasks per socket: the Swift runtime keeps a task's async
/// stack slabs until the task ends, so a polling task cost every idle call about 4 KiB, and WSCore's
/// ping task about 3.
final class SocketDeadlines: Sendable {
    enum Expiry: Sendable {
        case setup
        case idle
        /// Not an end: time to send a ping.
        case ping
    }

    private struct State {
        var setupSeen = false
        var lastFrame = NIODeadline.now()
        var timer: Scheduled<Void>?
        var ended = false
        /// What an expiry started (closing the socket): awaited by ``finish()``.
        var closing: Task<Void, Never>?
        /// The ping being sent, awaited by ``finish()``; while one is not written yet (a socket that
        /// does not read), the next is skipped.
        var pinging: Task<Void, Never>?
        var pingInFlight = false
        var pings: RepeatedTask?
    }

    private let state = NIOLockedValueBox(State())
    private let loop: any EventLoop
    private let idleTimeout: TimeAmount?
    private let expired: @Sendable (Expiry) async -> Void

    /// - Parameters:
    ///   - idleTimeout: nil: an established call is never closed for idleness.
    ///   - pingInterval: nil: no pings.
    ///   - expired: for `.setup` and `.idle` run at most once, when the deadline passes before
    ///     ``finish()`` (it closes the socket); for `.ping` at each interval. ``finish()`` waits for it.
    init(
        setupTimeout: TimeAmount, idleTimeout: TimeAmount?, pingInterval: TimeAmount?, loop: any EventLoop,
        expired: @escaping @Sendable (Expiry) async -> Void
    ) {
        self.loop = loop
        self.idleTimeout = idleTimeout
        self.expired = expired
        let timer = schedule(.setup, at: .now() + setupTimeout)
        let pings = pingInterval.map { interval in
            loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
                guard let self else { return }
                self.ping()
            }
        }
        state.withLockedValue {
            $0.timer = timer
            $0.pings = pings
        }
    }

    /// A frame came: the idle deadline starts again from now.
    func frameSeen() {
        let now = NIODeadline.now()
        state.withLockedValue { $0.lastFrame = now }
    }

    /// The call is set up: the setup deadline no longer applies; the idle one starts.
    func setupDone() {
        state.withLockedValue { state in
            guard !state.ended, !state.setupSeen else { return }
            state.setupSeen = true
            state.timer?.cancel()
            state.timer = nil
            if let idleTimeout {
                state.timer = schedule(.idle, at: state.lastFrame + idleTimeout)
            }
        }
    }

    /// The socket ended: no deadline fires any more; waits for what an expiry started.
    func finish() async {
        let (closing, pinging) = state.withLockedValue { state in
            state.ended = true
            state.timer?.cancel()
            state.timer = nil
            state.pings?.cancel()
            state.pings = nil
            return (state.closing, state.pinging)
        }
        await closing?.value
        await pinging?.value
    }

    private func ping() {
        state.withLockedValue { state in
            guard !state.ended, !state.pingInFlight else { return }
            state.pingInFlight = true
            let expired = expired
            state.pinging = Task { [weak self] in
                await expired(.ping)
                self?.state.withLockedValue { $0.pingInFlight = false }
            }
        }
    }

    deinit {
        // finish() cancels both; this is for a socket that ended without it.
        state.withLockedValue { state in
            state.timer?.cancel()
            state.pings?.cancel()
        }
    }

    private func schedule(_ expiry: Expiry, at deadline: NIODeadline) -> Scheduled<Void> {
        loop.scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            self.fire(expiry)
        }
    }

    private func fire(_ expiry: Expiry) {
        state.withLockedValue { state in
            guard !state.ended else { return }
            switch expiry {
            case .ping:
                return
            case .setup:
                guard !state.setupSeen else { return }
            case .idle:
                guard let idleTimeout else { return }
                let deadline = state.lastFrame + idleTimeout
                if deadline > .now() {
                    // A frame came since this timer was set: wait for the new deadline.
                    state.timer = schedule(.idle, at: deadline)
                    return
                }
            }
            state.ended = true
            state.timer = nil
            state.pings?.cancel()
            state.pings = nil
            let expired = expired
            state.closing = Task { await expired(expiry) }
        }
    }
}
