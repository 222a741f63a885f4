import AgentConnectCore
package import EventBus
import Foundation

/// Ownership of inbound partitions, shared fairly between the live workers of a group: each worker
/// holds at most ⌈partitions / live workers⌉; a worker that stops renewing loses its partitions to
/// the others.
package protocol PartitionLeases: Sendable {
    /// This worker (the holder of its leases, and its consumer name in the group).
    var worker: String { get }
    /// How many inbound partitions there are.
    var partitions: Int { get }
    /// How long a lease lasts without renewal.
    var ttlMilliseconds: Int { get }
    /// Heartbeats, renews every partition held (`active` and those draining in `leaving`), moves the
    /// surplus over the fair share out of `active`, and takes free partitions up to the share.
    func refresh(active: Set<Int>, leaving: Set<Int>) async throws -> LeaseRefresh
    /// Renews the leases held, taking nothing new (while draining at shutdown); returns those renewed.
    func renew(_ held: Set<Int>) async throws -> Set<Int>
    /// The fence a turn of `partition` publishes under: its lease, held by this worker.
    func fence(_ partition: Int) -> LeaseFence
    /// Gives partitions back (only those still held by this worker).
    func release(_ partitionsToRelease: [Int]) async throws
    /// Leaves the group: releases every partition and the heartbeat.
    func leave(owned: Set<Int>) async
}

/// What one lease refresh found.
package struct LeaseRefresh: Sendable, Equatable {
    /// Partitions to read from now on.
    package var active: Set<Int>
    /// Active partitions over the fair share (more workers joined): stop reading them, drain their
    /// lanes, then ``PartitionLeases/release(_:)`` them. They stay held (and renewed) until then.
    package var surplus: Set<Int>
    /// Partitions whose renewal failed (another worker has them): their turns must stop now.
    package var lost: Set<Int>
    /// Partitions newly taken.
    package var acquired: Set<Int>
    /// Live workers in the group, this one included.
    package var live: Int
    /// Fewer partitions than the fair share are held: the rest are held by workers that will hand
    /// them over (a worker just joined), or by a worker whose leases have not expired yet (it died).
    package var underShare: Bool

    package init(
        active: Set<Int>, surplus: Set<Int> = [], lost: Set<Int> = [], acquired: Set<Int> = [], live: Int = 1, underShare: Bool = false
    ) {
        self.active = active
        self.surplus = surplus
        self.lost = lost
        self.acquired = acquired
        self.live = live
        self.underShare = underShare
    }

    /// When to refresh next: every third of the TTL, and every quarter second while this worker is
    /// under its share within two TTLs plus the handover drain of the group's size changing. A
    /// worker that joins sees its share at once; the holders see it at their next refresh (up to a
    /// third of the TTL), then drain what they hand over (up to `AGENT_HANDOVER_DRAIN_MS`): the
    /// joiner takes each partition within a quarter second of its release, not up to a third of
    /// the TTL later. The same holds for a crashed peer's partitions, once its leases expire. A
    /// worker that stays under its share (the last of three holding 16) is back to the slow pace
    /// when the window ends. (After a graceful leave the others see the smaller group and the
    /// released partitions in the same refresh.)
    package func nextRefresh(ttlMilliseconds: Int, handoverDrainMilliseconds: Int, sinceGroupChanged: Duration) -> Duration {
        let slow = Duration.milliseconds(ttlMilliseconds / 3)
        guard underShare, sinceGroupChanged < .milliseconds(2 * ttlMilliseconds + handoverDrainMilliseconds) else { return slow }
        return min(slow, .milliseconds(250))
    }
}

/// Partition leases in Redis (`SET NX PX`, renewed).
///
/// Each worker heartbeats into a sorted set; its fair share is ⌈partitions / live workers⌉. A worker
/// that dies stops renewing, its leases expire, and the others take the partitions over.
struct RedisPartitionLeases: PartitionLeases {
    let redis: RedisClient
    let group: String
    let worker: String
    let partitions: Int
    let ttlMilliseconds: Int
    /// ``LeaseFence/scope``: which Redis these leases are on.
    var scope = ""

    private var membersKey: String { RedisKeys.workers(group: group) }
    /// A renewal must answer well inside the lease: one that cannot is counted as failed (and after
    /// a whole TTL of failures, the partitions are given up as lost).
    private var renewalDeadline: Duration { .milliseconds(max(100, ttlMilliseconds / 3)) }
    private func leaseKey(_ partition: Int) -> String { RedisKeys.partitionLease(group: group, partition: partition) }

    private static let renewScript = """
        local v = redis.call('GET', KEYS[1])
        if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
        if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
        return 0
        """
    private static let releaseScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """

    /// Heartbeats, renews every partition held (`active` and those draining in `leaving`), moves the
    /// surplus over the fair share ⌈partitions / live workers⌉ out of `active`, and takes free
    /// partitions up to the share.
    func refresh(active: Set<Int>, leaving: Set<Int>) async throws -> LeaseRefresh {
        let nowMs = Int(Date().timeIntervalSince1970 * 1000)
        let membership = try await redis.send(
            [
                ["ZADD", .string(membersKey), .string(String(nowMs)), .string(worker)],
                ["ZREMRANGEBYSCORE", .string(membersKey), "-inf", .string(String(nowMs - ttlMilliseconds))],
                ["ZCARD", .string(membersKey)],
                ["PEXPIRE", .string(membersKey), .string(String(ttlMilliseconds * 10))],
            ], timeout: renewalDeadline)
        let live = max(1, Int(membership[2].integer ?? 1))
        let share = (partitions + live - 1) / live
        let held = active.union(leaving).sorted()
        var renewed = Set<Int>()
        if !held.isEmpty {
            let replies = try await redis.send(held.map(renewCommand), timeout: renewalDeadline)
            for (partition, reply) in zip(held, replies) where reply.integer == 1 { renewed.insert(partition) }
        }
        var result = LeaseRefresh(active: active.intersection(renewed), surplus: [], lost: Set(held).subtracting(renewed), acquired: [])
        if result.active.count > share {
            // More workers joined: hand the surplus over once its turns are done (the new owner
            // redoes only what is left pending).
            result.surplus = Set(result.active.sorted().suffix(result.active.count - share))
            result.active.subtract(result.surplus)
        } else if result.active.count < share {
            // Start at a worker-specific offset so workers do not all race for partition 0.
            let offset = Int(stableHash(worker) % UInt64(partitions))
            let candidates = (0..<partitions).map { ($0 + offset) % partitions }.filter { !renewed.contains($0) }
            let replies = try await redis.send(
                candidates.map { partition in
                    ["SET", .string(leaseKey(partition)), .string(worker), "NX", "PX", .string(String(ttlMilliseconds))]
                })
            var extra: [Int] = []
            for (partition, reply) in zip(candidates, replies) where reply == .status("OK") {
                if result.active.count < share {
                    result.active.insert(partition)
                    result.acquired.insert(partition)
                } else {
                    extra.append(partition)
                }
            }
            try await release(extra)
        }
        result.live = live
        result.underShare = result.active.count < share
        return result
    }

    /// Renews the leases held, taking nothing new (while draining at shutdown); returns those renewed.
    func renew(_ held: Set<Int>) async throws -> Set<Int> {
        let partitions = held.sorted()
        guard !partitions.isEmpty else { return [] }
        let replies = try await redis.send(partitions.map(renewCommand), timeout: renewalDeadline)
        return Set(zip(partitions, replies).filter { $0.1.integer == 1 }.map(\.0))
    }

    /// The fence a turn of `partition` publishes under: its lease, held by this worker.
    func fence(_ partition: Int) -> LeaseFence {
        LeaseFence(key: leaseKey(partition), holder: worker, scope: scope)
    }

    private func renewCommand(_ partition: Int) -> [RedisArgument] {
        ["EVAL", .string(Self.renewScript), "1", .string(leaseKey(partition)), .string(worker), .string(String(ttlMilliseconds))]
    }

    /// Gives partitions back (only those still held by this worker).
    func release(_ partitionsToRelease: [Int]) async throws {
        guard !partitionsToRelease.isEmpty else { return }
        _ = try await redis.send(
            partitionsToRelease.map { partition in
                ["EVAL", .string(Self.releaseScript), "1", .string(leaseKey(partition)), .string(worker)]
            })
    }

    /// Leaves the group: releases every partition and the heartbeat.
    func leave(owned: Set<Int>) async {
        try? await release(Array(owned))
        _ = try? await redis.send([["ZREM", .string(membersKey), .string(worker)]])
    }
}
