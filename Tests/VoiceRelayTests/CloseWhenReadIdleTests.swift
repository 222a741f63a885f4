import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import VoiceRelay

/// The relay's dead-peer check: NIO's `IdleStateHandler` with ``CloseWhenReadIdle``, as
/// ``HeaderDeadlineChannel`` installs them (a live peer answers the relay's pings every 30 s).
@Suite("Read-idle close")
struct CloseWhenReadIdleTests {
    /// Real sockets and a real event loop: `IdleStateHandler` measures idleness on the real clock.
    /// The pongs are sent by the client's event loop, not by a task that sleeps: under a full test
    /// run a sleeping task waited over a second for a thread, past the timeout, and the server was
    /// right to close. A round whose pongs still came more than `stall` apart is run again; a
    /// connection closed while every gap was shorter fails.
    @Test("a peer that keeps sending stays connected past the timeout; once it falls silent the server closes the connection")
    func closesWhenPeerFallsSilent() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(IdleStateHandler(readTimeout: .seconds(1)), CloseWhenReadIdle())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let address = try #require(server.localAddress)
        let stall = TimeAmount.milliseconds(700)
        var rounds = 0
        var client: any Channel
        while true {
            rounds += 1
            let round = try await ClientBootstrap(group: group).connect(to: address).get()
            client = round
            // A pong every 100 ms for 2 s: twice the timeout.
            let pongs = NIOLockedValueBox((last: NIODeadline.now(), longest: TimeAmount.zero, sent: 0))
            let done = round.eventLoop.makePromise(of: TimeAmount.self)
            round.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { task in
                let (longest, finished) = pongs.withLockedValue { pongs in
                    let now = NIODeadline.now()
                    pongs.longest = max(pongs.longest, now - pongs.last)
                    pongs.last = now
                    pongs.sent += 1
                    return (pongs.longest, pongs.sent == 20)
                }
                round.writeAndFlush(ByteBuffer(string: "pong"), promise: nil)
                if finished {
                    task.cancel()
                    done.succeed(longest)
                }
            }
            let longestGap = try await done.futureResult.get()
            if round.isActive { break }
            try? await round.close().get()
            // Closed: only a stalled round (a gap near the timeout) may be run again.
            #expect(longestGap >= stall, "closed while the peer sent every \(longestGap.nanoseconds / 1_000_000) ms at most")
            guard longestGap >= stall, rounds < 3 else {
                try await server.close().get()
                return
            }
            continue
        }
        // Silent from now on: closed by the server (the client sees the end of the stream).
        let deadline = ContinuousClock.now + .seconds(10)
        while client.isActive, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(!client.isActive)
        try? await client.close().get()
        try await server.close().get()
    }

    @Test("only read-idle closes: a write-idle event leaves the connection open")
    func closesOnlyOnReadIdle() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(CloseWhenReadIdle())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.write)
        #expect(channel.isActive)
        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(!channel.isActive)
        _ = try? channel.finish()
    }
}
