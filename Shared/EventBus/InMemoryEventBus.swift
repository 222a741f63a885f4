import AgentConnectCore
import NIOConcurrencyHelpers

/// An ``EventBus`` held in memory with the same group semantics as Redis Streams, for unit tests.
package final class InMemoryEventBus: EventBus {
    private struct Entry {
        var id: String
        var raw: [UInt8]
    }
    private struct Pending {
        var consumer: String
        var deliveredAt: ContinuousClock.Instant
        var deliveries: Int
    }
    private struct Group {
        var lastDelivered = 0
        var pending: [String: Pending] = [:]
    }
    private struct State {
        var sequence = 0
        var streams: [String: [Entry]] = [:]
        var groups: [String: [String: Group]] = [:]
        var dedup: Set<String> = []
        var dead: [(entry: BusEntry, error: String)] = []
        var leases: [String: String] = [:]
    }

    private let state = NIOLockedValueBox(State())
    private let clock = ContinuousClock()

    package init() {}

    /// Entries moved to the dead-letter stream, with their errors.
    package var deadLetters: [(entry: BusEntry, error: String)] { state.withLockedValue { $0.dead } }

    /// Every event on a stream, in order.
    package func events(on stream: String) -> [BusEvent] {
        state.withLockedValue { $0.streams[stream, default: []].compactMap { try? BusEvent.decode($0.raw) } }
    }

    package func publish(_ event: BusEvent, to stream: String) async throws -> String {
        let raw = try event.encoded()
        return state.withLockedValue { state in
            state.sequence += 1
            let id = "\(state.sequence)-0"
            state.streams[stream, default: []].append(Entry(id: id, raw: raw))
            return id
        }
    }

    package func publish(_ event: BusEvent, to stream: String, dedupKey: String, ttlSeconds: Int) async throws -> PublishOutcome {
        let fresh = state.withLockedValue { $0.dedup.insert(dedupKey).inserted }
        guard fresh else { return .duplicate }
        return .published(try await publish(event, to: stream))
    }

    package func ensureGroup(_ group: String, on stream: String) async throws {
        state.withLockedValue { state in
            if state.groups[stream]?[group] == nil { state.groups[stream, default: [:]][group] = Group() }
            if state.streams[stream] == nil { state.streams[stream] = [] }
        }
    }

    package func readGroup(_ group: String, consumer: String, streams: [String], count: Int, blockMilliseconds: Int) async throws -> [BusEntry] {
        let deadline = clock.now + .milliseconds(blockMilliseconds)
        while true {
            let now = clock.now
            let entries = try state.withLockedValue { state -> [BusEntry] in
                var result: [BusEntry] = []
                for stream in streams {
                    guard var groupState = state.groups[stream]?[group] else {
                        throw BusError(.server, "NOGROUP No such key '\(stream)' or consumer group '\(group)'")
                    }
                    let all = state.streams[stream, default: []]
                    while groupState.lastDelivered < all.count, result.count < count {
                        let entry = all[groupState.lastDelivered]
                        groupState.lastDelivered += 1
                        groupState.pending[entry.id] = Pending(consumer: consumer, deliveredAt: now, deliveries: 1)
                        result.append(BusEntry(stream: stream, id: entry.id, event: try? BusEvent.decode(entry.raw), raw: entry.raw))
                    }
                    state.groups[stream]?[group] = groupState
                }
                return result
            }
            if !entries.isEmpty || clock.now >= deadline { return entries }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    package func ack(_ group: String, stream: String, ids: [String]) async throws {
        state.withLockedValue { state in
            for id in ids { state.groups[stream]?[group]?.pending[id] = nil }
        }
    }

    package func reclaim(_ group: String, consumer: String, stream: String, minIdleMilliseconds: Int, count: Int) async throws -> [BusEntry] {
        let now = clock.now
        return state.withLockedValue { state in
            guard var groupState = state.groups[stream]?[group] else { return [] }
            let all = state.streams[stream, default: []]
            var result: [BusEntry] = []
            for entry in all where result.count < count {
                guard var pending = groupState.pending[entry.id], now - pending.deliveredAt >= .milliseconds(minIdleMilliseconds) else {
                    continue
                }
                pending.consumer = consumer
                pending.deliveredAt = now
                pending.deliveries += 1
                groupState.pending[entry.id] = pending
                result.append(
                    BusEntry(stream: stream, id: entry.id, event: try? BusEvent.decode(entry.raw), raw: entry.raw, deliveries: pending.deliveries))
            }
            state.groups[stream]?[group] = groupState
            return result
        }
    }

    package func touch(_ group: String, consumer: String, stream: String, ids: [String]) async throws {
        let now = clock.now
        state.withLockedValue { state in
            for id in ids where state.groups[stream]?[group]?.pending[id] != nil {
                state.groups[stream]?[group]?.pending[id]?.deliveredAt = now
                state.groups[stream]?[group]?.pending[id]?.consumer = consumer
            }
        }
    }

    package func publish(_ event: BusEvent, to stream: String, fence: LeaseFence) async throws -> String {
        let holds = state.withLockedValue { $0.leases[fence.key] == nil || $0.leases[fence.key] == fence.holder }
        guard holds else { throw BusError(.fenced, "lease \(fence.key) is no longer held by \(fence.holder)") }
        return try await publish(event, to: stream)
    }

    /// Sets (or clears) a lease value that fenced publishes check (tests).
    package func setLease(_ key: String, holder: String?) {
        state.withLockedValue { $0.leases[key] = holder }
    }

    package func deadLetter(_ entry: BusEntry, group: String, error: String) async throws {
        state.withLockedValue { state in
            state.dead.append((entry, error))
            state.groups[entry.stream]?[group]?.pending[entry.id] = nil
        }
    }

    package func read(after positions: [String: String], count: Int, blockMilliseconds: Int) async throws -> [BusEntry] {
        let deadline = clock.now + .milliseconds(blockMilliseconds)
        while true {
            let entries = state.withLockedValue { state -> [BusEntry] in
                var result: [BusEntry] = []
                for (stream, after) in positions.sorted(by: { $0.key < $1.key }) {
                    let floor = Int(after.split(separator: "-").first ?? "0") ?? 0
                    for entry in state.streams[stream, default: []] where result.count < count {
                        let sequence = Int(entry.id.split(separator: "-").first ?? "0") ?? 0
                        if after == "$" || sequence <= floor { continue }
                        result.append(BusEntry(stream: stream, id: entry.id, event: try? BusEvent.decode(entry.raw), raw: entry.raw))
                    }
                }
                return result
            }
            if !entries.isEmpty || clock.now >= deadline { return entries }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    package func pendingCount(_ group: String, stream: String) async throws -> Int {
        state.withLockedValue { $0.groups[stream]?[group]?.pending.count ?? 0 }
    }

    package func length(of stream: String) async throws -> Int {
        state.withLockedValue { $0.streams[stream]?.count ?? 0 }
    }
}
