import AgentConnectCore
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Reads a consumer group and hands each entry to a handler: acknowledged on success, left pending
/// on failure (so it is retried, here or on another replica, after the visibility timeout) and moved
/// to ``Streams/dead`` once it has been delivered `maxDeliveries` times. Up to `batchSize` entries are
/// in flight at once; reading, reclaiming, keeping entries fresh and dead-lettering are
/// ``StreamSource``'s.
///
/// On graceful shutdown it stops reading, finishes and acknowledges the entries in hand, and returns.
package struct GroupConsumer: Service {
    package typealias Handler = @Sendable (BusEvent, BusEntry) async throws -> Void

    private let source: StreamSource
    private let streams: [String]
    private let options: ConsumerOptions
    private let handler: Handler
    private let logger: Logger

    package init(
        bus: any EventBus, group: String, consumer: String, streams: [String], options: ConsumerOptions = .init(),
        logger: Logger, handler: @escaping Handler
    ) {
        self.source = StreamSource(bus: bus, group: group, consumer: consumer, options: options, logger: logger)
        self.streams = streams
        self.options = options
        self.handler = handler
        self.logger = logger
    }

    package func run() async throws {
        let stopping = NIOLockedValueBox(false)
        await withGracefulShutdownHandler {
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
                        await source.waitForRoom(limit: options.batchSize)
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
package struct GiveUp: Error, CustomStringConvertible {
    package var reason: String
    package init(_ reason: String) { self.reason = reason }
    package var description: String { reason }
}
