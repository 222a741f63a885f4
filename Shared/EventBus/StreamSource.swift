import AgentConnectCore
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The entries a consumer is working on right now, by stream.
package final class InFlightEntries: Sendable {
    private struct Waiter {
        var id: UInt64
        /// Resumed once this many entries or fewer are in flight.
        var target: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var entries: [String: Set<String>] = [:]
        var count = 0
        /// The consumer loop, waiting for room (one loop reads for a source).
        var waiter: Waiter?
        var nextWaiter: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    package init() {}

    /// Starts tracking an entry; false when it is already in flight here (a reclaim of our own work).
    package func begin(_ entry: BusEntry) -> Bool {
        state.withLockedValue { state in
            let inserted = state.entries[entry.stream, default: []].insert(entry.id).inserted
            if inserted { state.count += 1 }
            return inserted
        }
    }

    /// Stops tracking an entry (acknowledged, dead-lettered, or left pending on purpose), and wakes the
    /// consumer loop when that made the room it waits for.
    package func end(_ entry: BusEntry) {
        let waiter = state.withLockedValue { state -> Waiter? in
            guard state.entries[entry.stream]?.remove(entry.id) != nil else { return nil }
            if state.entries[entry.stream]?.isEmpty == true { state.entries[entry.stream] = nil }
            state.count -= 1
            guard let waiter = state.waiter, state.count <= waiter.target else { return nil }
            state.waiter = nil
            return waiter
        }
        waiter?.continuation.resume()
    }

    /// How many entries are in flight.
    package var count: Int { state.withLockedValue { $0.count } }

    /// How many entries of these streams are in flight.
    package func count(in streams: Set<String>) -> Int {
        state.withLockedValue { state in streams.reduce(0) { $0 + (state.entries[$1]?.count ?? 0) } }
    }

    /// The ids in flight, by stream.
    package var snapshot: [String: [String]] { state.withLockedValue { $0.entries.mapValues { Array($0) } } }

    /// Returns once at most `target` entries are in flight, once `bound` has passed, or once the task
    /// is cancelled, whichever comes first: a consumer loop at its limit waits here for room instead of
    /// polling. The bound is a timer on the caller's event loop (a `Task.sleep` is a dispatch timer,
    /// armed through dispatch's manager thread and fired on a dispatch thread: replacing a poll every
    /// 2 ms that way took 8–14% off outbound's CPU a message at its max rate).
    package func wait(untilAtMost target: Int, bound: Duration) async {
        let id = state.withLockedValue { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Checked under the lock the cancellation handler takes (see StatementBatcher.run).
                let (waiting, replaced) = state.withLockedValue { state -> (Bool, Waiter?) in
                    guard state.count > target, !Task.isCancelled else { return (false, nil) }
                    defer { state.waiter = Waiter(id: id, target: target, continuation: continuation) }
                    return (true, state.waiter)
                }
                replaced?.continuation.resume()
                guard waiting else { return continuation.resume() }
                // Left to fire when room came first: it then finds another waiter, or none, and does nothing.
                let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
                loop.scheduleTask(in: .nanoseconds(bound.nanoseconds)) { self.release(id) }
            }
        } onCancel: {
            release(id)
        }
    }

    private func release(_ id: UInt64) {
        let waiter = state.withLockedValue { state -> Waiter? in
            guard state.waiter?.id == id else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.continuation.resume()
    }
}

/// The reading side every consumer loop shares: new entries, reclaiming what was abandoned, keeping
/// entries in flight fresh, acknowledging and dead-lettering — each in this one place.
///
/// - Work in flight here is never reclaimed here again, and its idle time is reset every
///   ``refreshInterval`` (`XCLAIM … JUSTID`), so a live peer never reclaims it either, however long a
///   handler retries in place while a dependency is down.
/// - Only entries idle past the visibility timeout are reclaimed: a dead consumer's, or a failed
///   handler's (left pending for a retry).
/// - An entry delivered more than `maxDeliveries` times, or one that does not decode, goes to
///   ``Streams/dead`` (counted in `agentconnect_dead_letters_total{stream}`).
package struct StreamSource: Sendable {
    package let bus: any EventBus
    package let group: String
    package let consumer: String
    package let options: ConsumerOptions
    package let logger: Logger
    /// What this consumer is working on.
    package let inFlight = InFlightEntries()
    private let lastRefresh = NIOLockedValueBox(ContinuousClock.now)
    /// Acknowledgements of entries finished at about the same time go out together.
    private let acks: AckBatcher
    /// `agentconnect_bus_wait_seconds` by stream label, each made on first use (a `Timer(label:dimensions:)`
    /// per entry asked the metrics registry each time).
    private let waitTimers = NIOLockedValueBox<[String: Timer]>([:])

    package init(bus: any EventBus, group: String, consumer: String, options: ConsumerOptions, logger: Logger) {
        self.bus = bus
        self.group = group
        self.consumer = consumer
        self.options = options
        self.logger = logger
        self.acks = AckBatcher { batch in
            guard batch.count > 1 else {
                for item in batch { try await bus.ack(group, stream: item.stream, ids: item.ids) }
                return
            }
            // Several streams: their XACKs are sent together (pipelined on one connection).
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for item in batch { tasks.addTask { try await bus.ack(group, stream: item.stream, ids: item.ids) } }
                try await tasks.waitForAll()
            }
        }
    }

    /// How often in-flight entries have their idle time reset: well inside the visibility timeout.
    package var refreshInterval: Duration { .milliseconds(max(200, options.visibilityTimeoutMilliseconds / 5)) }

    /// Creates the group on each stream when missing.
    package func ensureGroups(_ streams: [String]) async throws {
        for stream in streams { try await bus.ensureGroup(group, on: stream) }
    }

    /// New entries (`>`), at most `room`, waiting up to `blockMilliseconds`; each now in flight.
    package func readNew(streams: [String], room: Int, blockMilliseconds: Int) async throws -> [BusEntry] {
        guard room > 0, !streams.isEmpty else { return [] }
        let entries = try await bus.readGroup(group, consumer: consumer, streams: streams, count: room, blockMilliseconds: blockMilliseconds)
        return entries.filter { inFlight.begin($0) }
    }

    /// Entries of `streams` idle past the visibility timeout, at most `room`; each now in flight.
    /// Entries already in flight here are skipped (they stay pending under this consumer).
    package func reclaimStale(streams: [String], room: Int) async throws -> [BusEntry] {
        var result: [BusEntry] = []
        for stream in streams where result.count < room {
            let stale = try await bus.reclaim(
                group, consumer: consumer, stream: stream, minIdleMilliseconds: options.visibilityTimeoutMilliseconds,
                count: room - result.count)
            let fresh = stale.filter { inFlight.begin($0) }
            if !fresh.isEmpty {
                logger.info("reclaimed abandoned entries", metadata: ["stream": "\(stream)", "count": "\(fresh.count)"])
            }
            result += fresh
        }
        return result
    }

    /// The longest a consumer loop waits for room at a time. Its timer stays on the event loop's heap
    /// until it fires, even when room came first (SwiftNIO cancels a scheduled task by a linear search
    /// of that heap, which every other timer's cancellation then pays for): a short bound keeps the
    /// heap to a few entries.
    private static let maxRoomWait = Duration.milliseconds(100)

    /// For a consumer loop with `limit` entries in flight: waits until an eighth of the limit is free
    /// (one read for several entries), at most until ``refreshIfDue()`` has work, `atMost` has passed,
    /// or 100 ms, whichever comes first.
    package func waitForRoom(limit: Int, atMost: Duration = .seconds(3600)) async {
        let untilRefresh = refreshInterval - (ContinuousClock.now - lastRefresh.withLockedValue { $0 })
        let bound = max(.milliseconds(1), min(untilRefresh, atMost, Self.maxRoomWait))
        await inFlight.wait(untilAtMost: limit - max(1, limit / 8), bound: bound)
    }

    /// Resets the idle time of everything in flight, when ``refreshInterval`` has passed.
    package func refreshIfDue() async {
        let due = lastRefresh.withLockedValue { last in
            guard ContinuousClock.now - last >= refreshInterval else { return false }
            last = .now
            return true
        }
        guard due else { return }
        for (stream, ids) in inFlight.snapshot where !ids.isEmpty {
            do {
                try await bus.touch(group, consumer: consumer, stream: stream, ids: ids)
            } catch {
                logger.warning("could not refresh entries in flight", metadata: ["stream": "\(stream)", "error": "\(error)"])
            }
        }
    }

    /// Whether the entry has been delivered too often, or cannot be decoded: dead-letter it.
    package func deadLetterReason(_ entry: BusEntry) -> String? {
        if entry.event == nil { return "entry does not decode as an event envelope" }
        if entry.deliveries > options.maxDeliveries { return "delivered \(entry.deliveries) times without success" }
        return nil
    }

    /// Acknowledges a handled entry (a few quick retries across a Redis blip) and ends it. Entries
    /// acknowledged while an earlier acknowledgement is on its way go out together (``AckBatcher``):
    /// one `XACK` per stream, each caller returning once its own entry's was answered.
    package func ack(_ entry: BusEntry) async {
        defer { inFlight.end(entry) }
        do {
            try await withRetries { try await acks.ack(stream: entry.stream, id: entry.id) }
        } catch {
            logger.warning("ack failed; entry will be redelivered", metadata: ["entry": "\(entry.id)", "error": "\(error)"])
        }
    }

    /// Ends an entry without acknowledging it: it stays pending and is retried after the visibility
    /// timeout, here or on a peer.
    package func leavePending(_ entry: BusEntry) {
        inFlight.end(entry)
    }

    /// Moves an entry to the dead-letter stream (acknowledging it there) and ends it. When even that
    /// fails the entry stays pending, to be retried.
    package func deadLetter(_ entry: BusEntry, error: String) async {
        defer { inFlight.end(entry) }
        let reason = Masking.maskPhoneNumbers(error)
        do {
            try await withRetries { try await bus.deadLetter(entry, group: group, error: reason) }
            Counter(label: "agentconnect_dead_letters_total", dimensions: [("stream", streamLabel(entry.stream))]).increment()
            logger.error(
                "entry moved to the dead-letter stream", metadata: ["stream": "\(entry.stream)", "entry": "\(entry.id)", "error": "\(reason)"])
        } catch {
            logger.error("dead-lettering failed; entry stays pending", metadata: ["entry": "\(entry.id)", "error": "\(error)"])
        }
    }

    /// Records how long a first delivery waited on its stream.
    package func recordWait(_ entry: BusEntry) {
        guard entry.deliveries == 1, let occurred = entry.event?.occurredDate else { return }
        let label = streamLabel(entry.stream)
        let timer = waitTimers.withLockedValue { timers in
            if let timer = timers[label] { return timer }
            let timer = Timer(label: "agentconnect_bus_wait_seconds", dimensions: [("stream", label)])
            timers[label] = timer
            return timer
        }
        timer.recordNanoseconds(Int64(max(0, Date().timeIntervalSince(occurred)) * 1e9))
    }

    /// A few quick retries for bookkeeping writes (ack, dead letter) across a Redis blip.
    private func withRetries(_ body: () async throws -> Void) async throws {
        var backoff = Backoff(initial: .milliseconds(20), maximum: .milliseconds(500))
        for attempt in 1...5 {
            do {
                return try await body()
            } catch _ where attempt < 5 {
                try await Task.sleep(for: backoff.next())
            }
        }
    }
}
