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
/// to ``Streams/dead`` once it has been delivered `maxDeliveries` times. Up to `batchSize` entries are
/// in flight at once; reading, reclaiming, keeping entries fresh and dead-lettering are
/// ``StreamSource``'s.
///
/// On graceful shutdown it stops reading, finishes and acknowledges the entries in hand, and returns.
public struct GroupConsumer: Service {
    public typealias Handler = @Sendable (BusEvent, BusEntry) async throws -> Void

    private let source: StreamSource
    private let streams: [String]
    private let options: ConsumerOptions
    private let handler: Handler
    private let logger: Logger

    public init(
        bus: any EventBus, group: String, consumer: String, streams: [String], options: ConsumerOptions = .init(),
        logger: Logger, handler: @escaping Handler
    ) {
        self.source = StreamSource(bus: bus, group: group, consumer: consumer, options: options, logger: logger)
        self.streams = streams
        self.options = options
        self.handler = handler
        self.logger = logger
    }

    public func run() async throws {
        let stopping = NIOLockedValueBox(false)
        try await withGracefulShutdownHandler {
            // Entries are handled as they arrive, up to `batchSize` at once: a slow one (Twilio taking
            // its time) does not hold back the others.
            await withDiscardingTaskGroup { tasks in
                var backoff = Backoff()
                var groupsReady = false
                var nextReclaim = ContinuousClock.now
                while !stopping.withLockedValue({ $0 }) && !Task.isCancelled {
                    await source.refreshIfDue()
                    let room = options.batchSize - source.inFlight.count
                    if room <= 0 {
                        try? await Task.sleep(for: .milliseconds(2))
                        continue
                    }
                    do {
                        if !groupsReady {
                            try await source.ensureGroups(streams)
                            groupsReady = true
                        }
                        var entries: [BusEntry] = []
                        if ContinuousClock.now >= nextReclaim {
                            nextReclaim = .now + .milliseconds(max(100, options.visibilityTimeoutMilliseconds / 2))
                            entries = try await source.reclaimStale(streams: streams, room: room)
                        }
                        let block = min(options.blockMilliseconds, Int(source.refreshInterval.milliseconds))
                        entries += try await source.readNew(streams: streams, room: room - entries.count, blockMilliseconds: block)
                        for entry in entries {
                            tasks.addTask { await self.handle(entry) }
                        }
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
        if let reason = source.deadLetterReason(entry) {
            await source.deadLetter(entry, error: reason)
            return
        }
        guard let event = entry.event else { return }
        source.recordWait(entry)
        do {
            try await options.retryingTransient(logger: logger) { try await handler(event, entry) }
            await source.ack(entry)
        } catch let request as GiveUp {
            await source.deadLetter(entry, error: request.reason)
        } catch {
            if entry.deliveries >= options.maxDeliveries {
                await source.deadLetter(entry, error: "\(error)")
            } else {
                source.leavePending(entry)
                logger.warning(
                    "handler failed; entry left pending for retry",
                    metadata: [
                        "event.id": "\(event.id)", "conversation.id": "\(event.conversationId)", "deliveries": "\(entry.deliveries)",
                        "error": "\(Masking.maskPhoneNumbers("\(error)"))",
                    ])
            }
        }
    }
}

/// Thrown by a handler that knows its entry can never succeed (Twilio refused it for good): the
/// consumer moves the entry to ``Streams/dead`` at once, whatever its delivery count.
public struct GiveUp: Error, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
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
