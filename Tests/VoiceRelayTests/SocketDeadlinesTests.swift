import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import VoiceRelay

/// ``SocketDeadlines``: a socket's setup and idle deadlines and its pings, on a real event loop's timers.
@Suite("Socket deadlines")
struct SocketDeadlinesTests {
    let loop = MultiThreadedEventLoopGroup.singleton.any()

    /// What fired, in order.
    final class Fired: Sendable {
        let list = NIOLockedValueBox<[SocketDeadlines.Expiry]>([])
        var all: [SocketDeadlines.Expiry] { list.withLockedValue { $0 } }
        func record(_ expiry: SocketDeadlines.Expiry) { list.withLockedValue { $0.append(expiry) } }
    }

    func deadlines(setup: Int64 = 60_000, idle: Int64? = nil, ping: Int64? = nil, _ fired: Fired) -> SocketDeadlines {
        SocketDeadlines(
            setupTimeout: .milliseconds(setup), idleTimeout: idle.map { .milliseconds($0) }, pingInterval: ping.map { .milliseconds($0) },
            loop: loop
        ) { fired.record($0) }
    }

    @Test("no setup within the setup timeout: .setup fires once, and finish() waits for what it started")
    func setupTimeout() async throws {
        let fired = Fired()
        let socket = deadlines(setup: 50, idle: 50, fired)
        try await Task.sleep(for: .milliseconds(300))
        await socket.finish()
        #expect(fired.all == [.setup])
    }

    @Test("setup in time: the setup deadline is gone; the idle one fires after a quiet spell, postponed by each frame")
    func idleAfterSetup() async throws {
        let fired = Fired()
        let socket = deadlines(setup: 150, idle: 250, fired)
        socket.setupDone()
        // Frames every 100 ms keep the socket alive past both deadlines.
        for _ in 0..<5 {
            try await Task.sleep(for: .milliseconds(100))
            socket.frameSeen()
        }
        #expect(fired.all.isEmpty)
        try await Task.sleep(for: .milliseconds(500))
        #expect(fired.all == [.idle])
        await socket.finish()
        #expect(fired.all == [.idle])
    }

    @Test("no idle timeout: a set-up socket is never closed for idleness; pings go out at each interval until finish()")
    func pingsWithoutIdle() async throws {
        let fired = Fired()
        let socket = deadlines(setup: 50, idle: nil, ping: 60, fired)
        socket.setupDone()
        try await Task.sleep(for: .milliseconds(400))
        await socket.finish()
        let pings = fired.all.count
        #expect(pings >= 3)
        #expect(fired.all.allSatisfy { $0 == .ping })
        try await Task.sleep(for: .milliseconds(200))
        #expect(fired.all.count == pings)
    }

    @Test("finish() before any deadline: nothing fires later")
    func finishedEarly() async throws {
        let fired = Fired()
        let socket = deadlines(setup: 50, idle: 50, ping: 50, fired)
        await socket.finish()
        try await Task.sleep(for: .milliseconds(250))
        #expect(fired.all.isEmpty)
    }
}
