import AgentConnectCore
package import EventBus
import NIOConcurrencyHelpers

/// A group's partition leases and live workers held in memory, shared by the
/// ``InMemoryPartitionLeases`` of the workers of one test; leases taken and given back are mirrored
/// to `bus`, so fenced publishes of a worker that lost a partition are refused as on Redis.
package final class InMemoryLeaseTable: Sendable {
    private struct Lease {
        var worker: String
        var until: ContinuousClock.Instant
    }

    private struct State {
        var leases: [Int: Lease] = [:]
        var members: [String: ContinuousClock.Instant] = [:]
    }

    let group: String
    private let bus: InMemoryEventBus?
    private let state = NIOLockedValueBox(State())

    package init(group: String = "agents", bus: InMemoryEventBus? = nil) {
        self.group = group
        self.bus = bus
    }

    /// The worker holding `partition`'s live lease; nil when it is free.
    package func holder(of partition: Int) -> String? {
        state.withLockedValue { state in
            state.leases[partition].flatMap { $0.until > .now ? $0.worker : nil }
        }
    }

    /// Heartbeats `worker` and returns how many workers are live.
    func heartbeat(_ worker: String, ttl: Duration) -> Int {
        state.withLockedValue { state in
            let now = ContinuousClock.now
            state.members[worker] = now
            state.members = state.members.filter { now - $0.value < ttl }
            return state.members.count
        }
    }

    /// Renews the lease if `worker` holds it, takes it if it is free or expired (as the Redis renewal
    /// script and `SET NX` do); true when `worker` holds it now.
    func take(_ partition: Int, by worker: String, ttl: Duration) -> Bool {
        let taken = state.withLockedValue { state -> Bool? in
            let now = ContinuousClock.now
            if let lease = state.leases[partition], lease.until > now {
                guard lease.worker == worker else { return nil }
                state.leases[partition]?.until = now + ttl
                return false
            }
            state.leases[partition] = Lease(worker: worker, until: now + ttl)
            return true
        }
        if taken == true { bus?.setLease(RedisKeys.partitionLease(group: group, partition: partition), holder: worker) }
        return taken != nil
    }

    /// Gives a partition back if `worker` holds it.
    func release(_ partition: Int, by worker: String) {
        let released = state.withLockedValue { state -> Bool in
            guard state.leases[partition]?.worker == worker else { return false }
            state.leases[partition] = nil
            return true
        }
        if released { bus?.setLease(RedisKeys.partitionLease(group: group, partition: partition), holder: nil) }
    }

    /// Removes `worker`'s heartbeat.
    func leave(_ worker: String) {
        _ = state.withLockedValue { $0.members.removeValue(forKey: worker) }
    }
}

/// One worker's ``PartitionLeases`` on an ``InMemoryLeaseTable``, with the fair share of
/// ``RedisPartitionLeases``.
package struct InMemoryPartitionLeases: PartitionLeases {
    let table: InMemoryLeaseTable
    package let worker: String
    package let partitions: Int
    package let ttlMilliseconds: Int

    package init(table: InMemoryLeaseTable, worker: String, partitions: Int, ttlMilliseconds: Int) {
        self.table = table
        self.worker = worker
        self.partitions = partitions
        self.ttlMilliseconds = ttlMilliseconds
    }

    private var ttl: Duration { .milliseconds(ttlMilliseconds) }

    package func refresh(active: Set<Int>, leaving: Set<Int>) async throws -> LeaseRefresh {
        let live = table.heartbeat(worker, ttl: ttl)
        let share = (partitions + live - 1) / live
        let held = active.union(leaving)
        let renewed = Set(held.filter { table.take($0, by: worker, ttl: ttl) })
        var result = LeaseRefresh(active: active.intersection(renewed), surplus: [], lost: held.subtracting(renewed), acquired: [])
        if result.active.count > share {
            result.surplus = Set(result.active.sorted().suffix(result.active.count - share))
            result.active.subtract(result.surplus)
        } else {
            for partition in 0..<partitions where result.active.count < share && !renewed.contains(partition) {
                if table.take(partition, by: worker, ttl: ttl) {
                    result.active.insert(partition)
                    result.acquired.insert(partition)
                }
            }
        }
        result.live = live
        result.underShare = result.active.count < share
        return result
    }

    package func renew(_ held: Set<Int>) async throws -> Set<Int> {
        Set(held.filter { table.take($0, by: worker, ttl: ttl) })
    }

    package func fence(_ partition: Int) -> LeaseFence {
        LeaseFence(key: RedisKeys.partitionLease(group: table.group, partition: partition), holder: worker)
    }

    package func release(_ partitionsToRelease: [Int]) async throws {
        for partition in partitionsToRelease { table.release(partition, by: worker) }
    }

    package func leave(owned: Set<Int>) async {
        try? await release(Array(owned))
        table.leave(worker)
    }
}
