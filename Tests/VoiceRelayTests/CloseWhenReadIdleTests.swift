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
        let client = try await ClientBootstrap(group: group).connect(to: address).get()
        // Something (a pong) every 100 ms for 2 s: twice the timeout, still connected.
        for _ in 0..<20 {
            try await Task.sleep(for: .milliseconds(100))
            try await client.writeAndFlush(ByteBuffer(string: "pong")).get()
        }
        #expect(client.isActive)
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
