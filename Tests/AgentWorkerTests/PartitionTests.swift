import AgentConnect
import AgentConnectCore
import AgentConnectRuntime
import EventBus
import Foundation
import Store
import Testing

@Suite("Agent worker in-process: partitions shared between workers")
struct PartitionTests {
    @Test("a second worker takes half the partitions over; every conversation is answered once; its partitions come back when it leaves")
    func twoWorkers() async throws {
        let a = try WorkerHarness(worker: "worker-a")
        let b = try WorkerHarness(worker: "worker-b", sharing: a)
        let answered = Recorder<String>()
        for worker in [a, b] {
            let name = worker.worker
            worker.tac.onMessageReady { text, _, _ in
                answered.append("\(name) \(text)")
                return "ok"
            }
        }
        // Two conversations on each partition.
        var conversations: [String] = []
        var index = 0
        while conversations.count < 2 * a.partitions {
            let id = "conv-p\(index)"
            index += 1
            let partition = Partitioner.partition(of: id, partitions: a.partitions)
            if conversations.filter({ Partitioner.partition(of: $0, partitions: a.partitions) == partition }).count < 2 { conversations.append(id) }
        }

        try await a.running {
            #expect(await eventually { a.partitionsHeld(by: "worker-a").count == a.partitions })
            try await b.running {
                #expect(await eventually { a.partitionsHeld(by: "worker-a").count == 2 && a.partitionsHeld(by: "worker-b").count == 2 })
                for id in conversations { try await a.publishInbound(try WorkerHarness.message(id, conversationId: id)) }
                #expect(await eventually { a.replies.count == conversations.count })
            }
            #expect(await eventually { a.partitionsHeld(by: "worker-a").count == a.partitions })
        }

        #expect(a.replies.count == conversations.count)
        #expect(answered.all.map { String($0.split(separator: " ")[1]) }.sorted() == conversations.sorted())
        // Each conversation was answered by the worker holding its partition: both workers answered.
        #expect(Set(answered.all.map { String($0.split(separator: " ")[0]) }) == ["worker-a", "worker-b"])
        #expect(a.partitionsHeld(by: "worker-a").isEmpty)
    }
}

@Suite("Partition leases: how soon a worker asks again")
struct LeaseRefreshPaceTests {
    @Test("a joining worker takes the partitions handed to it within a fraction of a second, not at its next slow refresh")
    func joinerPicksUpAtOnce() async throws {
        // Slow refreshes every 3 s. The joiner starts 1.5 s after the holder's refresh: the holder
        // hands over at its next one, 1.5 s later, when the joiner's next slow refresh is still
        // 1.5 s away.
        let ttl = ["AGENT_LEASE_TTL_MS": "9000"]
        let a = try WorkerHarness(ttl, worker: "worker-a")
        let b = try WorkerHarness(ttl, worker: "worker-b", sharing: a)
        try await a.running {
            #expect(await eventually { a.partitionsHeld(by: "worker-a").count == a.partitions })
            try await Task.sleep(for: .milliseconds(1500))
            try await b.running {
                var released: ContinuousClock.Instant?
                var taken: ContinuousClock.Instant?
                let deadline = ContinuousClock.now + .seconds(10)
                while taken == nil, ContinuousClock.now < deadline {
                    if released == nil, a.partitionsHeld(by: "worker-a").count < a.partitions { released = .now }
                    if !a.partitionsHeld(by: "worker-b").isEmpty { taken = .now }
                    try await Task.sleep(for: .milliseconds(10))
                }
                let gap = try #require(taken.flatMap { taken in released.map { taken - $0 } }, "no handover")
                #expect(gap < .milliseconds(900), "taken \(gap) after the release")
            }
        }
    }

    @Test("a worker that joins is under its share until the holder hands over, and says so with the group's size")
    func joiningWorkerIsUnderShare() async throws {
        let table = InMemoryLeaseTable()
        let a = InMemoryPartitionLeases(table: table, worker: "a", partitions: 8, ttlMilliseconds: 6000)
        let b = InMemoryPartitionLeases(table: table, worker: "b", partitions: 8, ttlMilliseconds: 6000)
        let alone = try await a.refresh(active: [], leaving: [])
        #expect(alone.active.count == 8 && alone.live == 1 && !alone.underShare)
        let joined = try await b.refresh(active: [], leaving: [])
        #expect(joined.active.isEmpty && joined.live == 2 && joined.underShare)
        let handing = try await a.refresh(active: alone.active, leaving: [])
        #expect(handing.surplus.count == 4 && handing.active.count == 4 && !handing.underShare)
        try await a.release(handing.surplus.sorted())
        let taken = try await b.refresh(active: [], leaving: [])
        #expect(taken.active == handing.surplus && !taken.underShare)
    }

    @Test("under its share just after the group changed: a quarter second; otherwise, or two TTLs and a drain later: a third of the TTL")
    func pace() {
        var refresh = LeaseRefresh(active: [], live: 2, underShare: true)
        #expect(
            refresh.nextRefresh(ttlMilliseconds: 10_000, handoverDrainMilliseconds: 10_000, sinceGroupChanged: Duration.seconds(1))
                == .milliseconds(250))
        #expect(
            refresh.nextRefresh(ttlMilliseconds: 10_000, handoverDrainMilliseconds: 10_000, sinceGroupChanged: Duration.seconds(29))
                == .milliseconds(250))
        #expect(
            refresh.nextRefresh(ttlMilliseconds: 10_000, handoverDrainMilliseconds: 10_000, sinceGroupChanged: Duration.seconds(30))
                == .milliseconds(3333))
        // A short TTL's third is already quicker than a quarter second.
        #expect(refresh.nextRefresh(ttlMilliseconds: 300, handoverDrainMilliseconds: 10_000, sinceGroupChanged: Duration.zero) == .milliseconds(100))
        refresh.underShare = false
        #expect(
            refresh.nextRefresh(ttlMilliseconds: 10_000, handoverDrainMilliseconds: 10_000, sinceGroupChanged: Duration.zero) == .milliseconds(3333))
    }
}
