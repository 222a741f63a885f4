import NIOCore
import NIOHTTP1
import NIOTLS

/// A pooled connection: its channel and the handler that runs its requests.
final class HTTP1Connection: Sendable {
    let channel: any Channel
    private let handler: NIOLoopBound<HTTP1ConnectionHandler>

    init(channel: any Channel, handler: NIOLoopBound<HTTP1ConnectionHandler>) {
        self.channel = channel
        self.handler = handler
    }

    /// Runs `body` with the handler on the connection's event loop (at once when already there).
    func onLoop(_ body: @escaping @Sendable (HTTP1ConnectionHandler) -> Void) {
        if channel.eventLoop.inEventLoop {
            body(handler.value)
        } else {
            let handler = handler
            channel.eventLoop.execute { body(handler.value) }
        }
    }
}

/// One connection's requests, one at a time: writes a request, collects its response, then either
/// offers the connection back (`onIdle`) or closes it (`Connection: close`, an error, a deadline).
final class HTTP1ConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    struct Request: Sendable {
        var head: HTTPRequestHead
        var body: ByteBuffer?
        var response: ResponseSink
        var deadline: NIODeadline
    }

    /// Where a request's response goes: the caller's continuation, resumed once on the event loop
    /// (one per request instead of a promise and the future awaited on it).
    final class ResponseSink: @unchecked Sendable {
        /// Set by the caller before the request goes to the event loop; read and cleared only there.
        var continuation: CheckedContinuation<HTTP1Client.Response, any Error>?
        /// The caller was cancelled before its request started (read and written on the event loop).
        var cancelled = false

        init() {}

        func succeed(_ response: HTTP1Client.Response) {
            continuation?.resume(returning: response)
            continuation = nil
        }

        func fail(_ error: any Error) {
            continuation?.resume(throwing: error)
            continuation = nil
        }
    }

    private struct InFlight {
        var response: ResponseSink
        var timer: NIOScheduledCallback?
        var head: HTTPResponseHead?
        var body: ByteBuffer?
    }

    /// A timer of this handler: the request's deadline, or the idle connection's.
    private struct Timer: NIOScheduledCallbackHandler, Sendable {
        enum Kind { case deadline, idle }
        let handler: NIOLoopBound<HTTP1ConnectionHandler>
        let kind: Kind

        func handleScheduledCallback(eventLoop: some EventLoop) {
            switch kind {
            case .deadline: handler.value.fail(HTTP1ClientError(.timeout, neverSent: false))
            case .idle: handler.value.closeIfIdle()
            }
        }
    }

    /// Succeeds when the connection can carry a request (after the TLS handshake, with TLS).
    let ready: EventLoopPromise<Void>
    private let tls: Bool
    private let maxResponseBytes: Int
    private let idleTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var inFlight: InFlight?
    private var idleTimer: NIOScheduledCallback?
    var onIdle: (() -> Void)?

    init(eventLoop: any EventLoop, tls: Bool, maxResponseBytes: Int, idleTimeout: TimeAmount) {
        self.tls = tls
        self.maxResponseBytes = maxResponseBytes
        self.idleTimeout = idleTimeout
        ready = eventLoop.makePromise()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if !tls && context.channel.isActive { ready.succeed() }
    }

    func channelActive(context: ChannelHandlerContext) {
        if !tls { ready.succeed() }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { ready.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func start(_ request: Request) {
        guard let context, context.channel.isActive, inFlight == nil else {
            request.response.fail(HTTP1ClientError(.closed, neverSent: true, detail: "before the request was written"))
            return
        }
        // Cancelled on its way here, or out of time already (it waited for the connection): not
        // written, the connection stays free.
        guard !request.response.cancelled else { return notWritten(request, CancellationError()) }
        guard request.deadline > .now() else {
            return notWritten(request, HTTP1ClientError(.timeout, neverSent: true, detail: "before the request was written"))
        }
        // No request goes out without its deadline (scheduling fails only while the loop shuts down).
        guard
            let timer = try? context.eventLoop.scheduleCallback(
                at: request.deadline, handler: Timer(handler: NIOLoopBound(self, eventLoop: context.eventLoop), kind: .deadline))
        else {
            request.response.fail(HTTP1ClientError(.closed, neverSent: true, detail: "the event loop is shutting down"))
            return
        }
        idleTimer?.cancel()
        idleTimer = nil
        inFlight = InFlight(response: request.response, timer: timer)
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if let body = request.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// Fails a request that was never written; the connection is offered back for the next.
    private func notWritten(_ request: Request, _ error: any Error) {
        request.response.fail(error)
        onIdle?()
    }

    /// Cancels the request answered through `response` if it is the one in flight, or before it
    /// starts if it has not yet (a late cancellation of an answered request must not fail the next
    /// one on this connection).
    func cancel(_ response: ResponseSink) {
        guard inFlight?.response === response else {
            response.cancelled = true
            return
        }
        fail(CancellationError())
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard inFlight != nil else {
            // Nothing was asked: a server that talks out of turn is not to be trusted with the next request.
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            inFlight?.head = head
        case .body(var part):
            let size = (inFlight?.body?.readableBytes ?? 0) + part.readableBytes
            guard size <= maxResponseBytes else {
                fail(HTTP1ClientError(.responseTooLarge, neverSent: false, detail: "over \(maxResponseBytes) bytes"))
                return
            }
            if inFlight?.body == nil {
                inFlight?.body = part
            } else {
                inFlight?.body?.writeBuffer(&part)
            }
        case .end:
            guard let finished = inFlight, let head = finished.head else { return }
            // An informational answer (100 Continue): the real one follows.
            if head.status.code < 200 {
                inFlight?.head = nil
                inFlight?.body = nil
                return
            }
            inFlight = nil
            finished.timer?.cancel()
            // (`.end` can also come from the decoder as the connection closes: then it is not offered back.)
            if head.isKeepAlive && context.channel.isActive {
                idleTimer = try? context.eventLoop.scheduleCallback(
                    in: idleTimeout, handler: Timer(handler: NIOLoopBound(self, eventLoop: context.eventLoop), kind: .idle))
                onIdle?()
            } else {
                context.close(promise: nil)
            }
            finished.response.succeed(HTTP1Client.Response(status: head.status, headers: head.headers, body: finished.body ?? ByteBuffer()))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        ready.fail(error)
        if inFlight == nil {
            // An idle connection that failed (its decoder is no good any more) is not offered again.
            context.close(promise: nil)
        } else {
            fail(HTTP1ClientError(.failed, neverSent: false, detail: "\(error)"))
        }
    }

    /// The idle timer: closes the connection unless a request took it meanwhile.
    private func closeIfIdle() {
        if inFlight == nil { context?.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        fail(HTTP1ClientError(.closed, neverSent: false))
        ready.fail(HTTP1ClientError(.closed, neverSent: true, detail: "during the TLS handshake"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        onIdle = nil
        ready.fail(HTTP1ClientError(.closed, neverSent: true))
    }

    /// Fails the request in flight, if any, and closes the connection.
    private func fail(_ error: any Error) {
        guard let failed = inFlight else { return }
        inFlight = nil
        failed.timer?.cancel()
        failed.response.fail(error)
        context?.close(promise: nil)
    }
}
