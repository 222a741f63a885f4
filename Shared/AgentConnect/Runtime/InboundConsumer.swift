import AgentConnectCore
import Foundation
import EventBus
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Reads the inbound partitions this worker leases and runs each conversation's events in order.
///
/// - Partitions are owned through ``PartitionLeases``; a newly acquired partition first has its
///   pending entries (the previous owner's unfinished turns) reclaimed and redone.
/// - Entries are acknowledged once handled, or once a newer prompt or an interrupt superseded them;
///   a failure leaves the entry pending, to be retried after the visibility timeout, and after
///   `maxDeliveries` it moves to the dead-letter stream.
/// - On graceful shutdown it stops reading, finishes the work in hand, and releases its leases.
struct InboundConsumer: Service {
    typealias Handler = @Sendable (BusEvent, BusEntry) async throws -> Void

    let bus: any EventBus
    let leases: PartitionLeases
    let group: String
    let options: ConsumerOptions
    let logger: Logger
    let handler: Handler

    func run() async throws {
        let stopping = NIOLockedValueBox(false)
        let lanes = ConversationLanes()
        let inFlight = NIOLockedValueBox<Set<String>>([])
        await withGracefulShutdownHandler {
            // The group returns once the lanes in hand are done; only then are the leases given back.
            let finallyOwned = await withDiscardingTaskGroup(returning: Set<Int>.self) { tasks in
                var owned = Set<Int>()
                var nextLeaseRefresh = ContinuousClock.now
                var nextReclaim = ContinuousClock.now + .milliseconds(options.visibilityTimeoutMilliseconds / 2)
                var backoff = Backoff()
                while !stopping.withLockedValue({ $0 }) {
                    do {
                        if ContinuousClock.now >= nextLeaseRefresh {
                            let (now, _) = try await leases.refresh(owned: owned)
                            let acquired = now.subtracting(owned)
                            if now != owned {
                                logger.info("partitions", metadata: ["owned": "\(now.sorted())"])
                            }
                            owned = now
                            for partition in acquired.sorted() {
                                let stream = Streams.inboundPartition(partition)
                                try await bus.ensureGroup(group, on: stream)
                                let stale = try await bus.reclaim(
                                    group, consumer: leases.worker, stream: stream, minIdleMilliseconds: 0, count: 1000)
                                dispatch(stale, lanes: lanes, inFlight: inFlight, tasks: &tasks)
                            }
                            Gauge(label: "agentconnect_worker_partitions").record(owned.count)
                            nextLeaseRefresh = .now + .milliseconds(leases.ttlMilliseconds / 3)
                        }
                        let streams = owned.sorted().map(Streams.inboundPartition)
                        if ContinuousClock.now >= nextReclaim {
                            nextReclaim = .now + .milliseconds(max(100, options.visibilityTimeoutMilliseconds / 2))
                            for stream in streams {
                                let retry = try await bus.reclaim(
                                    group, consumer: leases.worker, stream: stream,
                                    minIdleMilliseconds: options.visibilityTimeoutMilliseconds, count: options.batchSize)
                                dispatch(retry, lanes: lanes, inFlight: inFlight, tasks: &tasks)
                            }
                        }
                        if streams.isEmpty {
                            try await Task.sleep(for: .milliseconds(min(200, leases.ttlMilliseconds / 3)))
                            continue
                        }
                        let block = min(options.blockMilliseconds, leases.ttlMilliseconds / 3)
                        let entries = try await bus.readGroup(
                            group, consumer: leases.worker, streams: streams, count: options.batchSize, blockMilliseconds: block)
                        dispatch(entries, lanes: lanes, inFlight: inFlight, tasks: &tasks)
                        backoff.reset()
                    } catch {
                        if stopping.withLockedValue({ $0 }) { break }
                        if let busError = error as? BusError, busError.message.contains("NOGROUP") { owned = [] }
                        let delay = backoff.next()
                        logger.warning("inbound read failed; retrying", metadata: ["error": "\(error)", "retry.ms": "\(delay.milliseconds)"])
                        try? await Task.sleep(for: delay)
                    }
                }
                return owned
            }
            await leases.leave(owned: finallyOwned)
        } onGracefulShutdown: {
            stopping.withLockedValue { $0 = true }
        }
    }

    /// Hands entries to their conversation's lane. An entry already running here (a reclaim of our own
    /// long turn) is skipped: it is acknowledged when it finishes.
    private func dispatch(_ entries: [BusEntry], lanes: ConversationLanes, inFlight: NIOLockedValueBox<Set<String>>, tasks: inout DiscardingTaskGroup) {
        for entry in entries {
            guard inFlight.withLockedValue({ $0.insert("\(entry.stream)/\(entry.id)").inserted }) else { continue }
            guard let event = entry.event else {
                tasks.addTask {
                    await deadLetter(entry, error: "entry does not decode as an event envelope")
                    inFlight.withLockedValue { _ = $0.remove("\(entry.stream)/\(entry.id)") }
                }
                continue
            }
            if entry.deliveries > options.maxDeliveries {
                tasks.addTask {
                    await deadLetter(entry, error: "delivered \(entry.deliveries) times without success")
                    inFlight.withLockedValue { _ = $0.remove("\(entry.stream)/\(entry.id)") }
                }
                continue
            }
            if entry.deliveries == 1, let occurred = event.occurredDate {
                Timer(label: "agentconnect_bus_wait_seconds", dimensions: [("stream", Streams.inbound)])
                    .recordNanoseconds(Int64(max(0, Date().timeIntervalSince(occurred)) * 1e9))
            }
            if lanes.enqueue(LaneWork(entry: entry, event: event)) {
                tasks.addTask {
                    await lanes.drain(conversationId: event.conversationId, perform: { work in
                        try await options.retryingTransient(logger: logger) { try await handler(work.event, work.entry) }
                    }, finish: { work, outcome in
                        await finish(work, outcome)
                        inFlight.withLockedValue { _ = $0.remove("\(work.entry.stream)/\(work.entry.id)") }
                    })
                }
            }
        }
    }

    private func finish(_ work: LaneWork, _ outcome: Result<Void, any Error>?) async {
        switch outcome {
        case .none, .success:
            if outcome == nil {
                logger.debug("turn superseded", metadata: ["event.id": "\(work.event.id)", "conversation.id": "\(work.event.conversationId)"])
            }
            do {
                try await bus.ack(group, stream: work.entry.stream, ids: [work.entry.id])
            } catch {
                logger.warning("ack failed; entry will be redelivered", metadata: ["event.id": "\(work.event.id)", "error": "\(error)"])
            }
        case .failure(let error) where error is CancellationError:
            try? await bus.ack(group, stream: work.entry.stream, ids: [work.entry.id])
        case .failure(let error):
            if work.entry.deliveries >= options.maxDeliveries {
                await deadLetter(work.entry, error: "\(error)")
            } else {
                Counter(label: "agentconnect_turn_failures_total").increment()
                logger.warning(
                    "turn failed; will retry",
                    metadata: ["event.id": "\(work.event.id)", "conversation.id": "\(work.event.conversationId)", "error": "\(error)"])
            }
        }
    }

    private func deadLetter(_ entry: BusEntry, error: String) async {
        do {
            try await bus.deadLetter(entry, group: group, error: error)
            Counter(label: "agentconnect_dead_letters_total", dimensions: [("stream", Streams.inbound)]).increment()
            logger.error("inbound entry dead-lettered", metadata: ["entry": "\(entry.id)", "error": "\(error)"])
        } catch {
            logger.error("dead-lettering failed", metadata: ["entry": "\(entry.id)", "error": "\(error)"])
        }
    }
}
