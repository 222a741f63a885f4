import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Wraps a server child channel so that a connection whose first request head (request line and
/// headers) is not complete within `deadline` is closed.
///
/// The WebSocket-upgrade channel waits for the first head with no timer of its own (its idle timeout
/// starts only once a plain HTTP request is being served), so without this one client trickling
/// header bytes could hold a relay's connection slot for ever.
struct HeaderDeadlineChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value

    let inner: Inner
    let deadline: Duration
    /// A connection from which nothing arrives for this long is closed (nil: never). The relay pings
    /// every call socket (``RelaySocketHandler/pingIntervalSeconds``): a peer that is there answers.
    var readIdleTimeout: TimeAmount? = nil

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(FirstHeadDeadlineHandler(deadline: .nanoseconds(deadline.nanoseconds)))
            if let readIdleTimeout {
                try channel.pipeline.syncOperations.addHandlers(IdleStateHandler(readTimeout: readIdleTimeout), CloseWhenReadIdle())
            }
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// Sits in front of the HTTP decoder: closes the channel unless `\r\n\r\n` (the end of the first
/// request head) arrives before the deadline, then passes bytes through untouched.
///
/// It also closes such a connection when the server shuts down (`ChannelShouldQuiesceEvent`): until
/// its first head the connection has no HTTP handler that would, so an idle connection a client or
/// load balancer opened ahead of time held a draining relay open until the deadline (30 s).
final class FirstHeadDeadlineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let deadline: TimeAmount
    private var timer: Scheduled<Void>?
    /// How much of `\r\n\r\n` the bytes so far end with (4: the head is complete).
    private var matched = 0

    init(deadline: TimeAmount) {
        self.deadline = deadline
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, matched < 4 {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if matched < 4 {
            let buffer = unwrapInboundIn(data)
            for byte in buffer.readableBytesView {
                let expected: UInt8 = matched % 2 == 0 ? UInt8(ascii: "\r") : UInt8(ascii: "\n")
                if byte == expected {
                    matched += 1
                } else {
                    matched = byte == UInt8(ascii: "\r") ? 1 : 0
                }
                if matched == 4 {
                    timer?.cancel()
                    timer = nil
                    break
                }
            }
        }
        context.fireChannelRead(data)
    }

    private func start(_ context: ChannelHandlerContext) {
        guard timer == nil, matched < 4 else { return }
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: deadline) {
            channel.close(promise: nil)
        }
    }
}

/// Closes the connection when ``IdleStateHandler`` says nothing was read for its read timeout: a call
/// whose peer is gone without closing (the relay's pings went unanswered), even behind a proxy that
/// keeps the TCP connection itself alive.
final class CloseWhenReadIdle: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
