import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Tracing

/// A small HTTP/1.1 client for Twilio's REST APIs (and the bench's webhooks): keep-alive connections
/// pooled per host, one request on a connection at a time, a request's head and body written with one
/// flush, its response collected whole on the connection's event loop and handed to the caller once.
///
/// It replaced AsyncHTTPClient on the reply path: there its request bag, pool state machine, URL
/// parsing with Foundation and separate writes for head and body were about 30% of `outbound`'s CPU
/// (`perf`, 1,000 messages/s). No redirects, proxies, decompression or HTTP/2: Twilio's REST APIs
/// need none of them.
///
/// At most `maxConnectionsPerHost` connections to one host; a request beyond them waits for one to
/// come back (within its deadline). A failure before the request could have left this process (no
/// connection, a refused TLS handshake, a connection found closed before writing) is marked
/// ``HTTP1ClientError/neverSent``; anything later may have reached the server.
package final class HTTP1Client: Sendable {
    package struct Configuration: Sendable {
        package var connectTimeout: TimeAmount = .seconds(5)
        /// How long an unused connection stays open.
        package var idleTimeout: TimeAmount = .seconds(60)
        package var maxConnectionsPerHost = 64
        /// The largest response body accepted.
        package var maxResponseBytes = 4 << 20
        /// For `https://` (the system's trust roots unless told otherwise).
        package var tls: TLSConfiguration = .makeClientConfiguration()
        /// A client span per request (and its `traceparent` on the request), under the caller's span.
        package var tracing = false

        package init() {}
    }

    /// A response, read whole.
    package struct Response: Sendable {
        package var status: HTTPResponseStatus
        package var headers: HTTPHeaders
        package var body: ByteBuffer
    }

    private let group: any EventLoopGroup
    private let configuration: Configuration
    private let tlsContext: Result<NIOSSLContext, any Error>
    private let pools = NIOLockedValueBox(Pools())

    /// One for the whole process, never shut down (tests, tools).
    package static let shared = HTTP1Client()

    package init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, configuration: Configuration = Configuration()) {
        self.group = group
        self.configuration = configuration
        tlsContext = Result { try NIOSSLContext(configuration: configuration.tls) }
    }

    /// Sends one request and returns its response (any status), or throws ``HTTP1ClientError``.
    /// Cancelling the caller closes the connection and throws `CancellationError`.
    package func execute(
        _ method: HTTPMethod, url: String, headers: HTTPHeaders = [:], body: ByteBuffer? = nil, timeout: TimeAmount
    ) async throws -> Response {
        guard let target = HTTP1Target(url) else { throw HTTP1ClientError(.invalidURL, neverSent: true, detail: url) }
        guard configuration.tracing else { return try await execute(method, target: target, headers: headers, body: body, timeout: timeout) }
        return try await withSpan(method.rawValue, ofKind: .client) { span in
            span.attributes["http.request.method"] = method.rawValue
            span.attributes["server.address"] = target.endpoint.host
            span.attributes["server.port"] = target.endpoint.port
            span.attributes["url.path"] = String(target.pathAndQuery.prefix { $0 != "?" })
            var headers = headers
            InstrumentationSystem.instrument.inject(span.context, into: &headers, using: HTTPHeadersInjector())
            let response = try await execute(method, target: target, headers: headers, body: body, timeout: timeout)
            span.attributes["http.response.status_code"] = Int(response.status.code)
            if response.status.code >= 400 { span.setStatus(SpanStatus(code: .error)) }
            return response
        }
    }

    private func execute(_ method: HTTPMethod, target: HTTP1Target, headers: HTTPHeaders, body: ByteBuffer?, timeout: TimeAmount) async throws
        -> Response
    {
        let deadline = NIODeadline.now() + timeout
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: target.pathAndQuery, headers: headers)
        head.headers.replaceOrAdd(name: "Host", value: target.hostHeader)
        if let body {
            head.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        } else if method == .POST || method == .PUT || method == .PATCH {
            head.headers.replaceOrAdd(name: "Content-Length", value: "0")
        }
        // A connection found closed before anything was written (an idle one the server just closed)
        // is not the request's fault: once more on another.
        for attempt in 0..<2 {
            do {
                return try await send(head, body: body, to: target.endpoint, deadline: deadline)
            } catch let error as HTTP1ClientError where attempt == 0 && error.kind == .closed && error.neverSent {
                continue
            }
        }
        return try await send(head, body: body, to: target.endpoint, deadline: deadline)
    }

    private func send(_ head: HTTPRequestHead, body: ByteBuffer?, to endpoint: HTTP1Endpoint, deadline: NIODeadline) async throws -> Response {
        let connection = try await lease(endpoint, deadline: deadline)
        let response = HTTP1ConnectionHandler.ResponseSink()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // Cancelled while waiting for the connection: nothing is written.
                guard !Task.isCancelled else {
                    released(endpoint, connection: connection)
                    continuation.resume(throwing: CancellationError())
                    return
                }
                response.continuation = continuation
                let request = HTTP1ConnectionHandler.Request(head: head, body: body, response: response, deadline: deadline)
                connection.onLoop { $0.start(request) }
            }
        } onCancel: {
            connection.onLoop { $0.cancel(response) }
        }
    }

    /// Closes every idle connection; connections in use close when their request is done.
    package func shutdown() async {
        let idle = pools.withLockedValue { state -> [HTTP1Connection] in
            state.shutDown = true
            let idle = state.pools.values.flatMap(\.idle)
            for key in state.pools.keys { state.pools[key]?.idle = [] }
            return idle
        }
        for connection in idle { try? await connection.channel.close() }
    }

    // MARK: - The pool

    private struct HostPool {
        var idle: [HTTP1Connection] = []
        /// Connections open or being opened (a place handed to a waiter counts).
        var open = 0
        var waiters: [Waiter] = []
    }

    /// What a request gets from the pool: a connection, or a place to open one.
    private enum Grant {
        case connection(HTTP1Connection)
        case room
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Grant, any Error>
    }

    private struct Pools {
        var pools: [HTTP1Endpoint: HostPool] = [:]
        var nextWaiter: UInt64 = 0
        var shutDown = false
    }

    /// An idle connection, a new one, or (at the limit) the next one to come back.
    private func lease(_ endpoint: HTTP1Endpoint, deadline: NIODeadline) async throws -> HTTP1Connection {
        while true {
            switch try await grant(endpoint, deadline: deadline) {
            case .connection(let connection):
                if connection.channel.isActive { return connection }
            // Closed since it was handed over: its close gives its place back; ask again.
            case .room:
                do {
                    return try await connect(endpoint, deadline: deadline)
                } catch {
                    released(endpoint, connection: nil)
                    throw error
                }
            }
        }
    }

    /// Decides under one lock: an idle connection, room for a new one, or a place in the queue (so a
    /// connection released in between cannot pass the waiter by).
    private func grant(_ endpoint: HTTP1Endpoint, deadline: NIODeadline) async throws -> Grant {
        let id = pools.withLockedValue { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timer = NIOLockedValueBox<Scheduled<Void>?>(nil)
        defer { timer.withLockedValue { $0?.cancel() } }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                enum Now {
                    case grant(Grant)
                    case refuse
                    case queued
                }
                let now = pools.withLockedValue { state -> Now in
                    if state.shutDown { return .refuse }
                    var pool = state.pools[endpoint, default: HostPool()]
                    defer { state.pools[endpoint] = pool }
                    while let connection = pool.idle.popLast() {
                        if connection.channel.isActive { return .grant(.connection(connection)) }
                    }
                    if pool.open < configuration.maxConnectionsPerHost {
                        pool.open += 1
                        return .grant(.room)
                    }
                    pool.waiters.append(Waiter(id: id, continuation: continuation))
                    return .queued
                }
                switch now {
                case .grant(let grant): continuation.resume(returning: grant)
                case .refuse: continuation.resume(throwing: HTTP1ClientError(.shutDown, neverSent: true))
                case .queued:
                    timer.withLockedValue {
                        $0 = group.any().scheduleTask(deadline: deadline) { [self] in
                            abandon(endpoint, id: id, with: HTTP1ClientError(.timeout, neverSent: true, detail: "waiting for a connection"))
                        }
                    }
                    if Task.isCancelled { abandon(endpoint, id: id, with: CancellationError()) }
                }
            }
        } onCancel: {
            abandon(endpoint, id: id, with: CancellationError())
        }
    }

    private func abandon(_ endpoint: HTTP1Endpoint, id: UInt64, with error: any Error) {
        let waiter = pools.withLockedValue { state -> Waiter? in
            guard let index = state.pools[endpoint]?.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.pools[endpoint]?.waiters.remove(at: index)
        }
        waiter?.continuation.resume(throwing: error)
    }

    /// A connection is free again (or, nil, one closed or never opened): the first waiter gets it
    /// (or its place, kept for it), else it goes back to the idle list.
    fileprivate func released(_ endpoint: HTTP1Endpoint, connection: HTTP1Connection?) {
        enum Outcome {
            case hand(Waiter, Grant)
            case close(HTTP1Connection)
            case none
        }
        let outcome = pools.withLockedValue { state -> Outcome in
            var pool = state.pools[endpoint, default: HostPool()]
            defer { state.pools[endpoint] = pool }
            if let connection, connection.channel.isActive {
                if state.shutDown { return .close(connection) }
                if !pool.waiters.isEmpty { return .hand(pool.waiters.removeFirst(), .connection(connection)) }
                pool.idle.append(connection)
                return .none
            }
            // Closed, or never opened: its place goes to the first waiter (still counted), else is free.
            if let connection { pool.idle.removeAll { $0 === connection } }
            if !pool.waiters.isEmpty { return .hand(pool.waiters.removeFirst(), .room) }
            pool.open -= 1
            return .none
        }
        switch outcome {
        case .hand(let waiter, let grant): waiter.continuation.resume(returning: grant)
        case .close(let connection): connection.channel.close(promise: nil)
        case .none: break
        }
    }

    private func connect(_ endpoint: HTTP1Endpoint, deadline: NIODeadline) async throws -> HTTP1Connection {
        let sslContext: NIOSSLContext?
        if endpoint.tls {
            do {
                sslContext = try tlsContext.get()
            } catch {
                throw HTTP1ClientError(.connect, neverSent: true, detail: "TLS configuration: \(error)")
            }
        } else {
            sslContext = nil
        }
        let remaining = deadline - .now()
        guard remaining > .zero else { throw HTTP1ClientError(.timeout, neverSent: true, detail: "connecting") }
        let configuration = configuration
        let bootstrap = ClientBootstrap(group: group)
            // (TCP_NODELAY is ClientBootstrap's default; `.socketOption(.tcp_nodelay)` would set SO_DEBUG,
            // which a container refuses.)
            .connectTimeout(min(configuration.connectTimeout, remaining))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    if let sslContext {
                        let handler = try NIOSSLClientHandler(context: sslContext, serverHostname: endpoint.isIPAddress ? nil : endpoint.host)
                        try operations.addHandler(handler)
                    }
                    try operations.addHTTPClientHandlers()
                    try operations.addHandler(
                        HTTP1ConnectionHandler(
                            eventLoop: channel.eventLoop, tls: sslContext != nil, maxResponseBytes: configuration.maxResponseBytes,
                            idleTimeout: configuration.idleTimeout))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            throw HTTP1ClientError(.connect, neverSent: true, detail: "\(error)")
        }
        let connection: HTTP1Connection
        do {
            let ready: EventLoopFuture<Void>
            (connection, ready) = try await channel.eventLoop.submit { [weak self] in
                let handler = try channel.pipeline.syncOperations.handler(type: HTTP1ConnectionHandler.self)
                let connection = HTTP1Connection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
                // The handler lets go of this when the channel closes.
                handler.onIdle = { self?.released(endpoint, connection: connection) }
                return (connection, handler.ready.futureResult)
            }.get()
            // The TLS handshake (or nothing): until it is done no byte of a request has left.
            let timer = channel.eventLoop.scheduleTask(deadline: deadline) { channel.close(promise: nil) }
            defer { timer.cancel() }
            try await ready.get()
        } catch {
            channel.close(promise: nil)
            throw HTTP1ClientError(.connect, neverSent: true, detail: "\(error)")
        }
        channel.closeFuture.whenComplete { [weak self] _ in self?.released(endpoint, connection: connection) }
        return connection
    }
}

private struct HTTPHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout HTTPHeaders) {
        carrier.replaceOrAdd(name: key, value: value)
    }
}
