import AgentConnectCore
import EventBus
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Reads the inbound partitions this worker leases and runs each conversation's events in order.
///
/// - Partitions are owned through ``PartitionLeases`` (Redis leases in production). Reading, reclaiming, keeping work in flight
///   fresh and dead-lettering are ``StreamSource``'s: entries in flight here are never reclaimed by a
///   live peer, and only entries idle past the visibility timeout are reclaimed (a dead worker's, a
///   failed turn's).
/// - Every turn publishes under its partition's lease (``LeaseFence``): once the lease is lost, its
///   replies are refused atomically. A partition handed over (more workers joined) is first drained —
///   no new reads, its lanes finish, or are abandoned after `AGENT_HANDOVER_DRAIN_MS` — and only then
///   released. A lease lost outright (a renewal refused, or none succeeded for a whole TTL) abandons
///   the partition's lanes at once: the new owner redoes what is left pending.
/// - At most `maxInFlight` entries are taken at once and `permits` turns run at once (shared with the
///   consumer of the calls' Redis, when calls are on one of their own); the rest of
///   a backlog stays in Redis, where autoscaling sees it as lag.
/// - On graceful shutdown it stops reading, finishes the work in hand, and releases its leases.
struct InboundConsumer: Service {
    typealias Handler = @Sendable (BusEvent, BusEntry) async throws -> Void

    let bus: any EventBus
    let leases: any PartitionLeases
    let group: String
    let options: ConsumerOptions
    /// Entries taken from Redis and not yet finished, at most.
    let maxInFlight: Int
    /// Turns running at once, at most.
    let permits: TurnPermits
    /// How long a handed-over partition's lanes may run on before they are abandoned.
    let handoverDrainMilliseconds: Int
    /// Added to its metrics: `redis="main"` or `redis="calls"` when calls are on a Redis of their own.
    var metricDimensions: [(String, String)] = []
    let logger: Logger
    let handler: Handler

    func run() async throws {
        let stopping = NIOLockedValueBox(false)
        let lanes = ConversationLanes()
        let source = StreamSource(bus: bus, group: group, consumer: leases.worker, options: options, logger: logger)
        await withGracefulShutdownHandler {
            // The group returns once the lanes in hand are done; only then are the leases given back.
            let finallyOwned = await withDiscardingTaskGroup(returning: Set<Int>.self) { tasks in
                var active = Set<Int>()
                var leaving: [Int: ContinuousClock.Instant] = [:]
                var abandoned = Set<Int>()
                var lastRenewed = ContinuousClock.now
                var nextLeaseRefresh = ContinuousClock.now
                var groupSize = 0
                var groupChanged = ContinuousClock.now
                var nextReclaim = ContinuousClock.now
                var backoff = Backoff()

                func abandon(_ partitions: Set<Int>, reason: String) {
                    guard !partitions.isEmpty else { return }
                    logger.warning("abandoning partitions' turns", metadata: ["partitions": "\(partitions.sorted())", "reason": "\(reason)"])
                    lanes.abandon { partitions.contains(Partitioner.partition(of: $0, partitions: leases.partitions)) }
                    abandoned.formUnion(partitions)
                }

                while true {
                    await source.refreshIfDue()
                    if stopping.withLockedValue({ $0 }) {
                        // Draining: no new reads, but the turns in hand keep their leases and their
                        // entries stay fresh until they finish, so no peer redoes them meanwhile.
                        guard source.inFlight.count > 0 else { break }
                        if ContinuousClock.now >= nextLeaseRefresh {
                            nextLeaseRefresh = .now + .milliseconds(leases.ttlMilliseconds / 3)
                            let held = active.union(leaving.keys)
                            if let renewed = try? await leases.renew(held) {
                                abandon(held.subtracting(renewed), reason: "lease lost while draining")
                            }
                        }
                        try? await Task.sleep(for: .milliseconds(50))
                        continue
                    }
                    do {
                        if ContinuousClock.now >= nextLeaseRefresh {
                            nextLeaseRefresh = .now + .milliseconds(leases.ttlMilliseconds / 3)
                            let refresh: LeaseRefresh
                            do {
                                refresh = try await leases.refresh(active: active, leaving: Set(leaving.keys))
                                lastRenewed = .now
                            } catch {
                                // A renewal that cannot be confirmed for a whole TTL counts as a lost lease.
                                if ContinuousClock.now - lastRenewed >= .milliseconds(leases.ttlMilliseconds) {
                                    abandon(active.union(leaving.keys), reason: "lease renewal failing for a whole TTL")
                                    active = []
                                    leaving = [:]
                                }
                                throw error
                            }
                            if refresh.live != groupSize {
                                groupSize = refresh.live
                                groupChanged = .now
                            }
                            nextLeaseRefresh =
                                .now
                                + refresh.nextRefresh(
                                    ttlMilliseconds: leases.ttlMilliseconds, handoverDrainMilliseconds: handoverDrainMilliseconds,
                                    sinceGroupChanged: .now - groupChanged)
                            abandon(refresh.lost, reason: "lease lost")
                            for partition in refresh.lost { leaving[partition] = nil }
                            for partition in refresh.surplus {
                                leaving[partition] = .now + .milliseconds(handoverDrainMilliseconds)
                            }
                            if refresh.active != active || !refresh.surplus.isEmpty || !refresh.lost.isEmpty {
                                logger.info(
                                    "partitions",
                                    metadata: ["owned": "\(refresh.active.sorted())", "handing.over": "\(leaving.keys.sorted())"])
                            }
                            active = refresh.active
                            abandoned.subtract(active)
                            for partition in refresh.acquired.sorted() {
                                try await bus.ensureGroup(group, on: Streams.inboundPartition(partition))
                            }
                            if !refresh.acquired.isEmpty { nextReclaim = .now }
                            Gauge(label: "agentconnect_worker_partitions", dimensions: metricDimensions).record(active.count)
                        }
                        // Hand over drained partitions; abandon the lanes of those past their deadline.
                        for (partition, deadline) in leaving {
                            if source.inFlight.count(in: [Streams.inboundPartition(partition)]) == 0 {
                                try await leases.release([partition])
                                leaving[partition] = nil
                                abandoned.remove(partition)
                                logger.info("partition handed over", metadata: ["partition": "\(partition)"])
                            } else if ContinuousClock.now >= deadline, !abandoned.contains(partition) {
                                abandon([partition], reason: "handover drain took too long")
                            }
                        }
                        let streams = active.sorted().map(Streams.inboundPartition)
                        let room = maxInFlight - source.inFlight.count
                        if streams.isEmpty {
                            try await Task.sleep(for: .milliseconds(min(200, leases.ttlMilliseconds / 3)))
                            continue
                        }
                        if room <= 0 {
                            // At most until the next lease refresh; 10 ms while partitions are handed
                            // over (their last entry ending wakes no one).
                            var atMost = nextLeaseRefresh - .now
                            if !leaving.isEmpty { atMost = min(atMost, .milliseconds(10)) }
                            await source.waitForRoom(limit: maxInFlight, atMost: atMost)
                            try Task.checkCancellation()
                            continue
                        }
                        var entries: [BusEntry] = []
                        if ContinuousClock.now >= nextReclaim {
                            nextReclaim = .now + .milliseconds(max(100, options.visibilityTimeoutMilliseconds / 4))
                            entries = try await source.reclaimStale(streams: streams, room: room)
                        }
                        // A read waits no longer than the next lease refresh is due (at least 1 ms: 0 blocks forever).
                        let untilRefresh = max(1, Int((nextLeaseRefresh - .now).milliseconds))
                        let block = min(
                            options.blockMilliseconds, leases.ttlMilliseconds / 3, Int(source.refreshInterval.milliseconds), untilRefresh)
                        entries += try await source.readNew(streams: streams, room: room - entries.count, blockMilliseconds: block)
                        dispatch(entries, source: source, lanes: lanes, permits: permits, tasks: &tasks)
                        backoff.reset()
                    } catch {
                        if stopping.withLockedValue({ $0 }) { continue }
                        if let busError = error as? BusError, busError.message.contains("NOGROUP") { nextReclaim = .now }
                        let delay = backoff.next()
                        logger.warning("inbound read failed; retrying", metadata: ["error": "\(error)", "retry.ms": "\(delay.milliseconds)"])
                        try? await Task.sleep(for: delay)
                    }
                }
                return active.union(leaving.keys)
            }
            await leases.leave(owned: finallyOwned)
        } onGracefulShutdown: {
            stopping.withLockedValue { $0 = true }
        }
    }

    /// Hands entries to their conversation's lane (each entry is already in flight in `source`).
    private func dispatch(
        _ entries: [BusEntry], source: StreamSource, lanes: ConversationLanes, permits: TurnPermits, tasks: inout DiscardingTaskGroup
    ) {
        for entry in entries {
            if let reason = source.deadLetterReason(entry) {
                tasks.addTask { await source.deadLetter(entry, error: reason) }
                continue
            }
            guard let event = entry.event else { continue }
            source.recordWait(entry)
            guard lanes.enqueue(LaneWork(entry: entry, event: event)) else { continue }
            let fence = leases.fence(Partitioner.partition(of: event.conversationId, partitions: leases.partitions))
            tasks.addTask {
                await lanes.drain(
                    conversationId: event.conversationId,
                    perform: { work in
                        let result: Result<Void, any Error> = try await permits.withPermit {
                            await LeaseFence.$current.withValue(fence) {
                                await Result(catching: {
                                    try await options.retryingTransient(logger: logger) { try await handler(work.event, work.entry) }
                                })
                            }
                        }
                        try result.get()
                    },
                    finish: { work, outcome in await finish(work, outcome, source: source) })
            }
        }
    }

    private func finish(_ work: LaneWork, _ outcome: LaneOutcome, source: StreamSource) async {
        switch outcome {
        case .completed:
            await source.ack(work.entry)
        case .superseded:
            logger.debug("turn superseded", metadata: ["event.id": "\(work.event.id)", "conversation.id": "\(work.event.conversationId)"])
            await source.ack(work.entry)
        case .abandoned:
            Counter(label: "agentconnect_turns_abandoned_total").increment()
            source.leavePending(work.entry)
        case .failed(let error as BusError) where error.code == .fenced:
            // The partition changed hands mid-turn: the new owner redoes it.
            Counter(label: "agentconnect_turns_abandoned_total").increment()
            logger.info("turn fenced off; left to the partition's new owner", metadata: ["event.id": "\(work.event.id)"])
            source.leavePending(work.entry)
        case .failed(let error):
            if work.entry.deliveries >= options.maxDeliveries {
                await source.deadLetter(work.entry, error: "\(error)")
            } else {
                Counter(label: "agentconnect_turn_failures_total").increment()
                logger.warning(
                    "turn failed; will retry",
                    metadata: [
                        "event.id": "\(work.event.id)", "conversation.id": "\(work.event.conversationId)",
                        "error": "\(Masking.maskPhoneNumbers("\(error)"))",
                    ])
                source.leavePending(work.entry)
            }
        }
    }
}

extension Result where Failure == any Error {
    /// Captures how an async throwing body ended.
    fileprivate init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
