import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import VoiceRelay

/// ``SocketDeadlines``: a socket's setup and idle deadlines and its pings, on a real event loop's timers.
/// Margins are wide (this runs next to other tests on two cores): what must not fire is checked well
/// before its deadline, what must fire is waited for.
@Suite("Socket deadlines")
struct SocketDeadlinesTests {
    let loop = MultiThreadedEventLoopGroup.singleton.any()

    /// What fired, in order (recorded when the expiry's work ends, after `delay`).
    final class Fired: Sendable {
        let list = NIOLockedValueBox<[SocketDeadlines.Expiry]>([])
        let delay: Duration
        init(delay: Duration = .zero) { self.delay = delay }
        var all: [SocketDeadlines.Expiry] { list.withLockedValue { $0 } }
        func record(_ expiry: SocketDeadlines.Expiry) async {
            try? await Task.sleep(for: delay)
            list.withLockedValue { $0.append(expiry) }
        }
    }

    func deadlines(setup: Int64 = 60_000, idle: Int64? = nil, ping: Int64? = nil, _ fired: Fired) -> SocketDeadlines {
        SocketDeadlines(
            setupTimeout: .milliseconds(setup), idleTimeout: idle.map { .milliseconds($0) }, pingInterval: ping.map { .milliseconds($0) },
            loop: loop
        ) { await fired.record($0) }
    }

    /// Waits up to 10 s for `condition`.
    func eventually(_ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            if ContinuousClock.now > deadline { return false }
            try await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    @Test("no setup within the setup timeout: .setup fires once; finish() waits for the work it started; setupDone() after it changes nothing")
    func setupTimeout() async throws {
        let fired = Fired(delay: .milliseconds(300))
        let socket = deadlines(setup: 50, idle: 50, fired)
        try await Task.sleep(for: .milliseconds(150))
        socket.setupDone()
        await socket.finish()
        #expect(fired.all == [.setup])
        try await Task.sleep(for: .milliseconds(300))
        #expect(fired.all == [.setup])
    }

    /// Sees a frame on `socket` every 100 ms, `count` times, from the event loop its deadlines run
    /// on (a sleeping task waited over a second for a thread during a full test run); returns the
    /// longest gap between two frames.
    func frames(_ socket: SocketDeadlines, count: Int) async throws -> TimeAmount {
        let state = NIOLockedValueBox((last: NIODeadline.now(), longest: TimeAmount.zero, seen: 0))
        let done = loop.makePromise(of: TimeAmount.self)
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { task in
            let (longest, finished) = state.withLockedValue { state in
                let now = NIODeadline.now()
                state.longest = max(state.longest, now - state.last)
                state.last = now
                state.seen += 1
                return (state.longest, state.seen == count)
            }
            socket.frameSeen()
            if finished {
                task.cancel()
                done.succeed(longest)
            }
        }
        return try await done.futureResult.get()
    }

    @Test("setup in time: the setup deadline is gone; the idle one fires after a quiet spell, postponed by each frame")
    func idleAfterSetup() async throws {
        // A round whose frames still came 700 ms apart or more (the loop stalled) is run again; an
        // idle expiry while every gap was shorter fails.
        for round in 1...3 {
            let fired = Fired()
            let socket = deadlines(setup: 300, idle: 1_000, fired)
            socket.setupDone()
            // Frames every 100 ms for 1.5 s keep the socket past both deadlines.
            let longestGap = try await frames(socket, count: 15)
            guard fired.all.isEmpty else {
                await socket.finish()
                #expect(longestGap >= .milliseconds(700), "\(fired.all) with frames every \(longestGap.nanoseconds / 1_000_000) ms at most")
                if longestGap < .milliseconds(700) || round == 3 { return }
                continue
            }
            #expect(try await eventually { !fired.all.isEmpty })
            await socket.finish()
            #expect(fired.all == [.idle])
            return
        }
    }

    @Test("no idle timeout: a set-up socket is never closed for idleness; pings go out at each interval until finish()")
    func pingsWithoutIdle() async throws {
        let fired = Fired()
        let socket = deadlines(setup: 50, idle: nil, ping: 60, fired)
        socket.setupDone()
        #expect(try await eventually { fired.all.count >= 3 })
        await socket.finish()
        let pings = fired.all.count
        #expect(fired.all.allSatisfy { $0 == .ping })
        try await Task.sleep(for: .milliseconds(300))
        #expect(fired.all.count == pings)
    }

    @Test("a ping not yet written holds back the next ones (a socket that does not read gets no pile of pings)")
    func pingsDoNotPileUp() async throws {
        let fired = Fired(delay: .milliseconds(500))
        let socket = deadlines(ping: 20, fired)
        try await Task.sleep(for: .milliseconds(700))
        await socket.finish()
        // Each ping takes 500 ms; at one every 20 ms there would be dozens started.
        #expect(fired.all.count <= 2)
        #expect(fired.all.allSatisfy { $0 == .ping })
    }

    @Test("finish() before any deadline: nothing fires later")
    func finishedEarly() async throws {
        let fired = Fired()
        let socket = deadlines(setup: 50, idle: 50, ping: 50, fired)
        await socket.finish()
        try await Task.sleep(for: .milliseconds(300))
        #expect(fired.all.isEmpty)
    }
}
