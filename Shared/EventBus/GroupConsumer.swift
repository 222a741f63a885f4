import AgentConnectCore
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Settings of a ``GroupConsumer``.
public struct ConsumerOptions: Sendable {
    /// Entries read per call.
    public var batchSize = 64
    /// How long one blocking read waits (bounds how fast shutdown is noticed).
    public var blockMilliseconds = 1000
    /// An entry pending this long is considered abandoned and is reclaimed.
    public var visibilityTimeoutMilliseconds = 30_000
    /// Deliveries after which a failing entry moves to the dead-letter stream.
    public var maxDeliveries = 5
    /// Failures that mean a dependency is down (Redis, PostgreSQL) rather than that the entry is bad:
    /// the handler is retried in place, with backoff, and the entry is never dead-lettered for them.
    public var isTransient: @Sendable (any Error) -> Bool

    public init(
        batchSize: Int = 64, blockMilliseconds: Int = 1000, visibilityTimeoutMilliseconds: Int = 30_000, maxDeliveries: Int = 5,
        isTransient: @escaping @Sendable (any Error) -> Bool = BusError.isUnavailable
    ) {
        self.batchSize = batchSize
        self.blockMilliseconds = blockMilliseconds
        self.visibilityTimeoutMilliseconds = visibilityTimeoutMilliseconds
        self.maxDeliveries = maxDeliveries
        self.isTransient = isTransient
    }

    /// Runs `body`; while it fails with a transient error, waits (100 ms doubling to 2 s) and runs it
    /// again, until it succeeds, fails otherwise, or the task is cancelled.
    public func retryingTransient<T: Sendable>(logger: Logger, _ body: () async throws -> T) async throws -> T {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2))
        while true {
            do {
                return try await body()
            } catch where isTransient(error) && !Task.isCancelled {
                let delay = backoff.next()
                Counter(label: "agentconnect_transient_retries_total").increment()
                logger.warning("a dependency is unavailable; retrying in place", metadata: ["error": "\(error)", "retry.ms": "\(delay.milliseconds)"])
                try await Task.sleep(for: delay)
            }
        }
    }
}

extension BusError {
    /// Whether the error is Redis being unreachable (the default transient failure).
    public static func isUnavailable(_ error: any Error) -> Bool {
        (error as? BusError)?.code == .unavailable
    }
}

/// Reads a consumer group and hands each entry to a handler: acknowledged on success, left pending
/// on failure (so it is retried, here or on another replica, after the visibility timeout) and moved
/// to ``Streams/dead`` once it has been delivered `maxDeliveries` times.
///
/// On graceful shutdown it stops reading, finishes and acknowledges the batch in hand, and returns.
public struct GroupConsumer: Service {
    public typealias Handler = @Sendable (BusEvent, BusEntry) async throws -> Void

    private let bus: any EventBus
    private let group: String
    private let consumer: String
    private let streams: [String]
    private let options: ConsumerOptions
    private let handler: Handler
    private let logger: Logger

    public init(
        bus: any EventBus, group: String, consumer: String, streams: [String], options: ConsumerOptions = .init(),
        logger: Logger, handler: @escaping Handler
    ) {
        self.bus = bus
        self.group = group
        self.consumer = consumer
        self.streams = streams
        self.options = options
        self.handler = handler
        self.logger = logger
    }

    public func run() async throws {
        let stopping = NIOLockedValueBox(false)
        let inFlight = NIOLockedValueBox(0)
        try await withGracefulShutdownHandler {
            // Entries are handled as they arrive, up to `batchSize` at once: a slow one (Twilio taking
            // its time) does not hold back the others.
            await withDiscardingTaskGroup { tasks in
                func start(_ entries: [BusEntry]) {
                    inFlight.withLockedValue { $0 += entries.count }
                    for entry in entries {
                        tasks.addTask {
                            await self.handle(entry)
                            inFlight.withLockedValue { $0 -= 1 }
                        }
                    }
                }
                var backoff = Backoff()
                var groupsReady = false
                var lastReclaim = ContinuousClock.now - .seconds(3600)
                while !stopping.withLockedValue({ $0 }) && !Task.isCancelled {
                    let room = options.batchSize - inFlight.withLockedValue { $0 }
                    if room <= 0 {
                        try? await Task.sleep(for: .milliseconds(1))
                        continue
                    }
                    do {
                        if !groupsReady {
                            for stream in streams { try await bus.ensureGroup(group, on: stream) }
                            groupsReady = true
                        }
                        if ContinuousClock.now - lastReclaim >= .milliseconds(max(100, options.visibilityTimeoutMilliseconds / 2)) {
                            lastReclaim = .now
                            for stream in streams {
                                let stale = try await bus.reclaim(
                                    group, consumer: consumer, stream: stream,
                                    minIdleMilliseconds: options.visibilityTimeoutMilliseconds, count: room)
                                if !stale.isEmpty {
                                    logger.info("reclaimed abandoned entries", metadata: ["stream": "\(stream)", "count": "\(stale.count)"])
                                    start(stale)
                                }
                            }
                        }
                        let entries = try await bus.readGroup(
                            group, consumer: consumer, streams: streams, count: room, blockMilliseconds: options.blockMilliseconds)
                        start(entries)
                        backoff.reset()
                    } catch is CancellationError {
                        break
                    } catch {
                        if let busError = error as? BusError, busError.message.contains("NOGROUP") { groupsReady = false }
                        let delay = backoff.next()
                        logger.warning("bus read failed; retrying", metadata: ["error": "\(error)", "retry.ms": "\(delay.milliseconds)"])
                        try? await Task.sleep(for: delay)
                    }
                }
            }
        } onGracefulShutdown: {
            stopping.withLockedValue { $0 = true }
        }
    }

    private func handle(_ entry: BusEntry) async {
        guard let event = entry.event else {
            await deadLetter(entry, error: "entry does not decode as an event envelope")
            return
        }
        if let occurred = event.occurredDate, entry.deliveries == 1 {
            Timer(label: "agentconnect_bus_wait_seconds", dimensions: [("stream", streamLabel(entry.stream))])
                .recordNanoseconds(Int64(max(0, Date().timeIntervalSince(occurred)) * 1e9))
        }
        do {
            try await options.retryingTransient(logger: logger) { try await handler(event, entry) }
            try await withRetries { try await bus.ack(group, stream: entry.stream, ids: [entry.id]) }
        } catch {
            if entry.deliveries >= options.maxDeliveries {
                await deadLetter(entry, error: "\(error)")
            } else {
                logger.warning(
                    "handler failed; entry left pending for retry",
                    metadata: [
                        "event.id": "\(event.id)", "conversation.id": "\(event.conversationId)", "deliveries": "\(entry.deliveries)",
                        "error": "\(error)",
                    ])
            }
        }
    }

    private func deadLetter(_ entry: BusEntry, error: String) async {
        do {
            try await withRetries { try await bus.deadLetter(entry, group: group, error: error) }
            Counter(label: "agentconnect_dead_letters_total", dimensions: [("stream", streamLabel(entry.stream))]).increment()
            logger.error("entry moved to dead-letter stream", metadata: ["entry": "\(entry.id)", "error": "\(error)"])
        } catch {
            logger.error("dead-lettering failed; entry stays pending", metadata: ["entry": "\(entry.id)", "error": "\(error)"])
        }
    }

    /// A few quick retries for bookkeeping writes (ack, dead letter) across a Redis blip.
    private func withRetries(_ body: () async throws -> Void) async throws {
        var backoff = Backoff(initial: .milliseconds(20), maximum: .milliseconds(500))
        for attempt in 1...5 {
            do {
                return try await body()
            } catch where attempt < 5 {
                try await Task.sleep(for: backoff.next())
            }
        }
    }
}

/// Strips a partition suffix so metrics have one series per logical stream.
func streamLabel(_ stream: String) -> String {
    if stream.hasPrefix(Streams.inbound + ":") { return Streams.inbound }
    if stream.hasPrefix("tac:voice:") { return "tac:voice" }
    return stream
}

/// Exponential backoff with full jitter.
public struct Backoff: Sendable {
    private let initial: Duration
    private let maximum: Duration
    private var attempt = 0

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(2)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The next delay: a random duration up to `initial · 2^attempt`, capped at `maximum`.
    public mutating func next() -> Duration {
        let ceiling = min(maximum, initial * (1 << min(attempt, 16)))
        attempt += 1
        let nanos = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        return .nanoseconds(Int64.random(in: (nanos / 2)...max(nanos / 2, nanos)))
    }

    /// Starts over after a success.
    public mutating func reset() { attempt = 0 }
}
