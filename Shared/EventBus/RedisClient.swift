import AgentConnectCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A Redis client that reconnects by itself.
///
/// Ordinary commands share one pipelined connection; blocking reads borrow a dedicated connection
/// from a small pool (``withBlockingConnection(_:)``), so a `BLOCK` never delays anything else. When
/// Redis goes away, calls fail fast with ``BusError/Code/unavailable`` and the next call reconnects.
package final class RedisClient: Sendable {
    private enum State {
        case idle
        case connecting([CheckedContinuation<RedisConnection, any Error>])
        case connected(RedisConnection)
    }

    /// Where Redis is.
    package let configuration: RedisConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let shared = NIOLockedValueBox<State>(.idle)
    private let idleBlocking = NIOLockedValueBox<[RedisConnection]>([])
    private let maxIdleBlocking = 32
    private let tlsContextBox = NIOLockedValueBox<NIOSSLContext?>(nil)

    package init(configuration: RedisConfiguration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        self.configuration = configuration
        self.group = eventLoopGroup
        self.logger = logger
    }

    /// Sends a batch on the shared connection (one write) and returns the replies in order.
    ///
    /// `timeout` replaces ``RedisConfiguration/commandTimeout`` for this batch (e.g. a lease renewal
    /// that must fail before the lease expires); past it the shared connection is closed and its
    /// commands fail with ``BusError/Code/unavailable``.
    package func send(_ commands: [[RedisArgument]], timeout: Duration? = nil) async throws -> [RedisValue] {
        let connection = try await sharedConnection()
        do {
            return try await connection.send(commands, timeout: timeout.map { TimeAmount($0) })
        } catch let error as BusError where error.code == .unavailable {
            dropShared(connection)
            throw error
        }
    }

    /// Sends one command on the shared connection, throwing on an error reply.
    @discardableResult
    package func command(_ arguments: RedisArgument...) async throws -> RedisValue {
        try await command(arguments)
    }

    /// Sends one command on the shared connection, throwing on an error reply.
    @discardableResult
    package func command(_ arguments: [RedisArgument]) async throws -> RedisValue {
        let reply = try await send([arguments])[0]
        if case .error(let message) = reply { throw BusError(.server, message) }
        return reply
    }

    /// Runs `body` with a connection nobody else uses (for `BLOCK` reads). Cancelling the task
    /// closes that connection, so a blocked read ends at once.
    package func withBlockingConnection<T: Sendable>(_ body: (RedisConnection) async throws -> T) async throws -> T {
        let connection = try await borrowBlocking()
        do {
            let result = try await withTaskCancellationHandler {
                try await body(connection)
            } onCancel: {
                connection.close()
            }
            returnBlocking(connection)
            return result
        } catch {
            connection.close()
            throw error
        }
    }

    /// Closes every connection.
    package func shutdown() {
        let state = shared.withLockedValue { state -> State in
            let old = state
            state = .idle
            return old
        }
        switch state {
        case .connected(let connection):
            connection.close()
        case .connecting(let waiters):
            // Commands waiting for the connection fail rather than wait forever.
            for waiter in waiters { waiter.resume(throwing: BusError(.unavailable, "the Redis client was shut down")) }
        case .idle:
            break
        }
        for connection in idleBlocking.withLockedValue({ list -> [RedisConnection] in
            defer { list.removeAll() }
            return list
        }) {
            connection.close()
        }
    }

    private func connect() async throws -> RedisConnection {
        try await RedisConnection.connect(configuration: configuration, tlsContext: try tlsContext(), on: group)
    }

    /// The TLS context for `rediss://`, made once (loading trust roots is costly).
    private func tlsContext() throws -> NIOSSLContext? {
        guard configuration.tls else { return nil }
        return try tlsContextBox.withLockedValue { cached in
            if let cached { return cached }
            let made = try RedisConnection.makeTLSContext(configuration)
            cached = made
            return made
        }
    }

    private func sharedConnection() async throws -> RedisConnection {
        enum Next {
            case use(RedisConnection)
            case wait, connect
        }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<RedisConnection, any Error>) in
            let next = shared.withLockedValue { state -> Next in
                switch state {
                case .connected(let connection) where connection.isActive:
                    return .use(connection)
                case .connecting(var waiters):
                    waiters.append(continuation)
                    state = .connecting(waiters)
                    return .wait
                case .idle, .connected:
                    state = .connecting([continuation])
                    return .connect
                }
            }
            switch next {
            case .use(let connection): continuation.resume(returning: connection)
            case .wait: break
            case .connect:
                let client = self
                // Connection setup runs on the event loop; the waiters are resumed when it completes.
                group.any().makeFutureWithTask {
                    try await client.connect()
                }.whenComplete { result in
                    client.finishConnecting(result)
                }
            }
        }
    }

    private func finishConnecting(_ result: Result<RedisConnection, any Error>) {
        let waiters = shared.withLockedValue { state -> [CheckedContinuation<RedisConnection, any Error>]? in
            guard case .connecting(let waiters) = state else { return nil }
            switch result {
            case .success(let connection): state = .connected(connection)
            case .failure: state = .idle
            }
            return waiters
        }
        guard let waiters else {
            // Shut down while connecting: nobody waits for this connection.
            if case .success(let connection) = result { connection.close() }
            return
        }
        if case .success = result { logger.debug("redis connected", metadata: ["redis.host": "\(configuration.host)"]) }
        for waiter in waiters { waiter.resume(with: result) }
    }

    private func dropShared(_ connection: RedisConnection) {
        shared.withLockedValue { state in
            if case .connected(let current) = state, current === connection { state = .idle }
        }
        connection.close()
    }

    private func borrowBlocking() async throws -> RedisConnection {
        while let connection = idleBlocking.withLockedValue({ $0.popLast() }) {
            if connection.isActive { return connection }
        }
        return try await connect()
    }

    private func returnBlocking(_ connection: RedisConnection) {
        guard connection.isActive else { return }
        let kept = idleBlocking.withLockedValue { list -> Bool in
            guard list.count < maxIdleBlocking else { return false }
            list.append(connection)
            return true
        }
        if !kept { connection.close() }
    }
}

extension RedisClient {
    /// The `maxmemory-policy` Redis runs with, read from `INFO memory` (managed Redis services often
    /// disable `CONFIG GET`).
    package func evictionPolicy() async throws -> String {
        let reply: RedisValue
        do {
            reply = try await command("INFO", "memory")
        } catch let error as BusError where error.code == .server {
            throw ConfigurationError(
                variable: configuration.variable,
                reason: "names a Redis user that may not run INFO memory (needed to check maxmemory-policy; grant +info): \(error.message)")
        }
        guard let info = reply.string else {
            throw BusError(.protocolViolation, "INFO memory returned no text")
        }
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("maxmemory_policy:") {
            return String(line.dropFirst("maxmemory_policy:".count).filter { !$0.isWhitespace })
        }
        throw BusError(.protocolViolation, "INFO memory has no maxmemory_policy line")
    }

    /// Refuses (with a ``ConfigurationError`` naming `REDIS_URL`, or `VOICE_REDIS_URL`) a Redis whose `maxmemory-policy` may
    /// evict keys: anything but `noeviction`. Our dedup keys carry TTLs, so even `volatile-*` policies
    /// can drop them and break exactly-once. While Redis cannot be reached it retries (returning
    /// when the task is cancelled).
    package func requireNoEviction() async throws {
        var delay: Duration = .milliseconds(200)
        while !Task.isCancelled {
            do {
                let policy = try await evictionPolicy()
                guard policy == "noeviction" else {
                    throw ConfigurationError(
                        variable: configuration.variable,
                        reason:
                            "points at a Redis with maxmemory-policy '\(policy)', which can evict our keys (the dedup keys carry TTLs, so volatile-* policies evict them too): set maxmemory-policy to noeviction"
                    )
                }
                logger.debug("redis eviction policy checked", metadata: ["redis.maxmemory_policy": "\(policy)"])
                return
            } catch let error as BusError where error.code == .unavailable {
                // A refused certificate will not fix itself: refuse to start rather than wait.
                if error.message.contains(RedisCommandHandler.tlsRefusedMarker) {
                    throw ConfigurationError(
                        variable: configuration.caFile == nil ? configuration.variable : "REDIS_TLS_CA_FILE", reason: "refused: \(error.message)")
                }
                logger.warning("waiting for Redis to check its eviction policy", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}
