import AgentConnectCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One TCP (or TLS) connection to Redis, driven by SwiftNIO, with replies parsed by hiredis.
///
/// Commands sent concurrently are pipelined and written together, one flush per event-loop tick; a
/// batch passed to ``send(_:)`` goes out in one piece.
/// Blocking commands (`XREADGROUP … BLOCK`) should get a connection of their own. Every command has
/// a deadline (``RedisConfiguration/commandTimeout``, plus the `BLOCK` time of a blocking read):
/// when it passes, the connection is closed and its pending commands fail with
/// ``BusError/Code/unavailable``. The socket has TCP keepalive on.
package final class RedisConnection: Sendable {
    private let channel: any Channel
    private let commandTimeout: TimeAmount
    /// Requests sent since the event loop last wrote: they go out together, with one flush (one
    /// `write` syscall) per event-loop tick instead of one per command.
    private let outbox = NIOLockedValueBox<[RedisRequest]>([])

    private init(channel: any Channel, commandTimeout: TimeAmount) {
        self.channel = channel
        self.commandTimeout = commandTimeout
    }

    /// Opens a plain connection to `host:port`, optionally authenticating and selecting a database.
    package static func connect(
        host: String, port: Int, password: String?, database: Int?, on group: any EventLoopGroup,
        timeout: TimeAmount = .seconds(2)
    ) async throws -> RedisConnection {
        let configuration = RedisConfiguration(
            host: host, port: port, password: password, database: database ?? 0, connectTimeout: .nanoseconds(timeout.nanoseconds))
        return try await connect(configuration: configuration, tlsContext: nil, on: group)
    }

    /// Opens a connection as `configuration` says: TLS when ``RedisConfiguration/tls`` (with
    /// `tlsContext`, or one made from the configuration), `AUTH [user] password`, `SELECT db`.
    /// Connect, handshake and setup together are bounded by ``RedisConfiguration/connectTimeout``;
    /// a failure throws a ``BusError`` that names the setting it came from (``RedisConfiguration/variable``:
    /// `REDIS_URL` or `VOICE_REDIS_URL`; and `REDIS_TLS_CA_FILE` for TLS).
    package static func connect(
        configuration: RedisConfiguration, tlsContext: NIOSSLContext? = nil, on group: any EventLoopGroup
    ) async throws -> RedisConnection {
        let host = configuration.host
        let port = configuration.port
        let connectTimeout = TimeAmount(configuration.connectTimeout)
        let start = NIODeadline.now()
        var sslContext: NIOSSLContext?
        if configuration.tls {
            sslContext = try tlsContext ?? makeTLSContext(configuration)
        }
        // SNI and hostname verification use the host name; an IP address is verified against the
        // certificate's IP addresses instead (SNI cannot carry one).
        let serverHostname: String? = (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
        let tls = sslContext
        let channel: any Channel
        do {
            channel = try await keepalive(ClientBootstrap(group: group))
                .connectTimeout(connectTimeout)
                .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverHostname))
                        }
                        try channel.pipeline.syncOperations.addHandler(RedisCommandHandler())
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            throw BusError(.unavailable, "cannot connect to Redis at \(host):\(port) (\(configuration.variable)): \(error)")
        }
        let connection = RedisConnection(channel: channel, commandTimeout: TimeAmount(configuration.commandTimeout))
        var setup: [[RedisArgument]] = []
        if let password = configuration.password {
            if let user = configuration.username {
                setup.append(["AUTH", .string(user), .string(password)])
            } else {
                setup.append(["AUTH", .string(password)])
            }
        }
        if configuration.database != 0 { setup.append(["SELECT", .string(String(configuration.database))]) }
        // Over TLS, a round trip proves the handshake (a refused certificate fails here, not later).
        if configuration.tls && setup.isEmpty { setup.append(["PING"]) }
        guard !setup.isEmpty else { return connection }
        let remaining = max(connectTimeout - (NIODeadline.now() - start), .milliseconds(1))
        let replies: [RedisValue]
        do {
            replies = try await connection.send(setup, timeout: remaining)
        } catch {
            connection.close()
            if configuration.tls {
                throw BusError(
                    .unavailable,
                    "TLS connection to Redis at \(host):\(port) failed (check \(configuration.variable)'s host and rediss://, and REDIS_TLS_CA_FILE): \(error)"
                )
            }
            throw BusError(.unavailable, "Redis at \(host):\(port) (\(configuration.variable)) did not complete the connection setup: \(error)")
        }
        for reply in replies where reply.isError {
            connection.close()
            throw BusError(.server, "Redis refused the connection setup (check \(configuration.variable)'s user, password and database): \(reply)")
        }
        return connection
    }

    /// The client TLS context for `configuration`: TLS 1.2+, certificate and hostname verification,
    /// trusting `caFile` or else the system roots. Throws a ``ConfigurationError`` naming `REDIS_TLS_CA_FILE`.
    package static func makeTLSContext(_ configuration: RedisConfiguration) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .fullVerification
        if let file = configuration.caFile {
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMFile(file)
            } catch {
                throw ConfigurationError(variable: "REDIS_TLS_CA_FILE", reason: "is not a PEM certificate bundle: '\(file)' (\(error))")
            }
            guard !certificates.isEmpty else {
                throw ConfigurationError(variable: "REDIS_TLS_CA_FILE", reason: "holds no PEM certificate: '\(file)'")
            }
            tls.trustRoots = .certificates(certificates)
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw ConfigurationError(
                variable: configuration.caFile == nil ? configuration.variable : "REDIS_TLS_CA_FILE", reason: "TLS setup failed: \(error)")
        }
    }

    /// SO_KEEPALIVE, and on Linux a first probe after 30 s idle, then every 10 s, 3 tries: a peer that
    /// vanished is noticed in about a minute even on a connection with nothing in flight.
    private static func keepalive(_ bootstrap: ClientBootstrap) -> ClientBootstrap {
        let enabled = bootstrap.channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
        #if os(Linux)
        return
            enabled
            .channelOption(ChannelOptions.tcpOption(NIOBSDSocket.Option(rawValue: Int32(TCP_KEEPIDLE))), value: 30)
            .channelOption(ChannelOptions.tcpOption(NIOBSDSocket.Option(rawValue: Int32(TCP_KEEPINTVL))), value: 10)
            .channelOption(ChannelOptions.tcpOption(NIOBSDSocket.Option(rawValue: Int32(TCP_KEEPCNT))), value: 3)
        #else
        return enabled
        #endif
    }

    /// Whether the socket is still open.
    package var isActive: Bool { channel.isActive }

    /// Sends a batch of commands in one write and returns their replies in order.
    /// Error replies come back as `.error` values; a broken connection or a passed deadline throws.
    ///
    /// The deadline is `timeout` (default: the connection's command timeout), plus the longest
    /// `BLOCK` time of the batch's blocking reads (or `WAIT`/`WAITAOF` timeout); `BLOCK 0` (wait
    /// forever) has no deadline.
    package func send(_ commands: [[RedisArgument]], timeout: TimeAmount? = nil) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        var buffer = channel.allocator.buffer(capacity: 64 * commands.count)
        var blocking: TimeAmount = .zero
        var forever = false
        for command in commands {
            RESPEncoder.encode(command, into: &buffer)
            if let block = Self.blockMilliseconds(command) {
                if block == 0 { forever = true } else { blocking = max(blocking, .milliseconds(Int64(block))) }
            }
        }
        let allowed = (timeout ?? commandTimeout) + blocking
        let deadline: NIODeadline? = forever ? nil : .now() + allowed
        return try await withCheckedThrowingContinuation { continuation in
            let replies = RedisReplies(count: commands.count, continuation: continuation)
            enqueue(RedisRequest(bytes: buffer, replies: replies, deadline: deadline, timeout: allowed))
        }
    }

    /// Queues a request for the next event-loop tick; the first request of a tick schedules it.
    private func enqueue(_ request: RedisRequest) {
        let first = outbox.withLockedValue { queue -> Bool in
            queue.append(request)
            return queue.count == 1
        }
        guard first else { return }
        let channel = channel
        let outbox = outbox
        channel.eventLoop.execute {
            let requests = outbox.withLockedValue { queue -> [RedisRequest] in
                defer { queue.removeAll(keepingCapacity: true) }
                return queue
            }
            // A closed channel's handler is gone (or going): its requests fail here, not in it.
            guard channel.isActive else {
                for request in requests { request.replies.fail(BusError(.unavailable, "write failed: connection closed")) }
                return
            }
            for request in requests { channel.write(request, promise: nil) }
            channel.flush()
        }
    }

    /// How long the server may legitimately hold the reply: the `BLOCK` milliseconds of an
    /// `XREAD`/`XREADGROUP`, the timeout of a `WAIT`/`WAITAOF` (0: forever); `nil` for anything else.
    static func blockMilliseconds(_ command: [RedisArgument]) -> Int? {
        guard case .string(let name) = command.first else { return nil }
        let upper = name.uppercased()
        if upper == "WAIT" || upper == "WAITAOF" {
            guard case .string(let value) = command.last, let milliseconds = Int(value), milliseconds >= 0 else { return nil }
            return milliseconds
        }
        guard upper.hasPrefix("XREAD") else { return nil }
        for index in command.indices.dropLast() {
            guard case .string(let word) = command[index] else { continue }
            if word.uppercased() == "STREAMS" { return nil }
            guard word.uppercased() == "BLOCK" else { continue }
            if case .string(let value) = command[index + 1], let milliseconds = Int(value), milliseconds >= 0 { return milliseconds }
            return nil
        }
        return nil
    }

    /// Sends one command and returns its reply, throwing on an error reply.
    @discardableResult
    package func command(_ arguments: RedisArgument...) async throws -> RedisValue {
        try await command(arguments)
    }

    /// Sends one command and returns its reply, throwing on an error reply.
    @discardableResult
    package func command(_ arguments: [RedisArgument]) async throws -> RedisValue {
        let reply = try await send([arguments])[0]
        if case .error(let message) = reply { throw BusError(.server, message) }
        return reply
    }

    /// Closes the socket; pending commands fail with `.unavailable`.
    package func close() {
        channel.close(promise: nil)
    }
}
