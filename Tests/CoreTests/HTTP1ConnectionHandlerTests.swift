import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import TwilioKit

/// The connection handler alone, on an embedded channel: which requests it writes, and which it
/// refuses without writing a byte (the client then offers the connection to the next request).
// On the main actor: an embedded event loop is used from the thread that made it.
@MainActor
@Suite("HTTP1ConnectionHandler: requests refused before they are written")
struct HTTP1ConnectionHandlerTests {
    /// A connected channel with the handler, and a count of the times it offered the connection back.
    private static func connected() throws -> (EmbeddedChannel, HTTP1ConnectionHandler, offeredBack: () -> Int) {
        let channel = EmbeddedChannel()
        let handler = HTTP1ConnectionHandler(eventLoop: channel.eventLoop, tls: false, maxResponseBytes: 1 << 16, idleTimeout: .seconds(60))
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let offered = Counter()
        handler.onIdle = { offered.value += 1 }
        return (channel, handler, { offered.value })
    }

    private final class Counter: @unchecked Sendable { var value = 0 }

    /// Starts a request through a new sink (after `before` ran on it) and returns how it ended.
    private static func run(
        _ handler: HTTP1ConnectionHandler, deadline: NIODeadline, before: (HTTP1ConnectionHandler.ResponseSink) -> Void = { _ in }
    ) async -> Result<HTTP1Client.Response, any Error> {
        let sink = HTTP1ConnectionHandler.ResponseSink()
        before(sink)
        let request = HTTP1ConnectionHandler.Request(
            head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"), body: nil, response: sink, deadline: deadline)
        do {
            return .success(
                try await withCheckedThrowingContinuation { continuation in
                    sink.continuation = continuation
                    handler.start(request)
                    // No server answers here: a request that was written is ended by cancelling it
                    // in flight, which closes the connection (a refused one is already answered).
                    handler.cancel(sink)
                })
        } catch {
            return .failure(error)
        }
    }

    @Test("a request cancelled before it reaches the event loop is not written, and the connection is offered back")
    func cancelledBeforeStart() async throws {
        let (channel, handler, offeredBack) = try Self.connected()
        defer { _ = try? channel.finish() }
        let outcome = await Self.run(handler, deadline: .now() + .seconds(5)) { handler.cancel($0) }
        #expect(throws: CancellationError.self) { try outcome.get() }
        #expect(try channel.readOutbound(as: HTTPClientRequestPart.self) == nil)
        #expect(offeredBack() == 1)
        #expect(channel.isActive)
    }

    @Test("a request past its deadline before it starts is not written and says so; a live one is written")
    func deadlineBeforeStart() async throws {
        let (channel, handler, offeredBack) = try Self.connected()
        defer { _ = try? channel.finish() }
        let outcome = await Self.run(handler, deadline: .now() - .milliseconds(1))
        #expect {
            try outcome.get()
        } throws: { error in
            guard let error = error as? HTTP1ClientError else { return false }
            return error.kind == .timeout && error.neverSent
        }
        #expect(try channel.readOutbound(as: HTTPClientRequestPart.self) == nil)
        #expect(offeredBack() == 1)

        // The same connection then carries a request in time: its head goes out.
        let sink = HTTP1ConnectionHandler.ResponseSink()
        handler.start(
            HTTP1ConnectionHandler.Request(
                head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/next"), body: nil, response: sink, deadline: .now() + .seconds(5)))
        guard case .head(let head) = try channel.readOutbound(as: HTTPClientRequestPart.self) else {
            Issue.record("the request's head was not written")
            return
        }
        #expect(head.uri == "/next")
        // A cancellation of that request now, in flight, fails it and closes the connection.
        handler.cancel(sink)
        #expect(!channel.isActive)
    }
}
