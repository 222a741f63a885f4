import NIOCore
import NIOPosix

/// One TCP connection to Redis, driven by SwiftNIO, with replies parsed by hiredis.
///
/// Commands sent concurrently are pipelined; a batch passed to ``send(_:)`` goes out as one write.
/// Blocking commands (`XREADGROUP … BLOCK`) should get a connection of their own.
public final class RedisConnection: Sendable {
    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Opens a connection to `host:port`, optionally authenticating and selecting a database.
    public static func connect(
        host: String, port: Int, password: String?, database: Int?, on group: any EventLoopGroup,
        timeout: TimeAmount = .seconds(2)
    ) async throws -> RedisConnection {
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(RedisCommandHandler())
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            throw BusError(.unavailable, "cannot connect to Redis at \(host):\(port): \(error)")
        }
        let connection = RedisConnection(channel: channel)
        var setup: [[RedisArgument]] = []
        if let password { setup.append(["AUTH", .string(password)]) }
        if let database, database != 0 { setup.append(["SELECT", .string(String(database))]) }
        if !setup.isEmpty {
            for reply in try await connection.send(setup) where reply.isError {
                connection.close()
                throw BusError(.server, "Redis refused the connection setup: \(reply)")
            }
        }
        return connection
    }

    /// Whether the socket is still open.
    public var isActive: Bool { channel.isActive }

    /// Sends a batch of commands in one write and returns their replies in order.
    /// Error replies come back as `.error` values; a broken connection throws.
    public func send(_ commands: [[RedisArgument]]) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        var buffer = channel.allocator.buffer(capacity: 64 * commands.count)
        var promises: [EventLoopPromise<RedisValue>] = []
        promises.reserveCapacity(commands.count)
        for command in commands {
            RESPEncoder.encode(command, into: &buffer)
            promises.append(channel.eventLoop.makePromise())
        }
        let futures = promises.map(\.futureResult)
        let request = RedisRequest(bytes: buffer, promises: promises)
        let queued = promises
        channel.writeAndFlush(request).whenFailure { error in
            // Promises the handler took are failed by it when the connection drops.
            guard !request.taken.value else { return }
            for promise in queued { promise.fail(BusError(.unavailable, "write failed: \(error)")) }
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(futures.count)
        for future in futures {
            replies.append(try await future.get())
        }
        return replies
    }

    /// Sends one command and returns its reply, throwing on an error reply.
    @discardableResult
    public func command(_ arguments: RedisArgument...) async throws -> RedisValue {
        try await command(arguments)
    }

    /// Sends one command and returns its reply, throwing on an error reply.
    @discardableResult
    public func command(_ arguments: [RedisArgument]) async throws -> RedisValue {
        let reply = try await send([arguments])[0]
        if case .error(let message) = reply { throw BusError(.server, message) }
        return reply
    }

    /// Closes the socket; pending commands fail with `.unavailable`.
    public func close() {
        channel.close(promise: nil)
    }
}

