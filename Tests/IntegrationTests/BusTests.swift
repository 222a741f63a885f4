import AgentConnectCore
import EventBus
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Testing

@Suite("Redis Streams bus against a real Redis")
struct BusTests {
    func event(_ n: Int) -> BusEvent {
        BusEvent(type: EventType.messageReceived, conversationId: "conv-\(n % 7)", channel: .sms, payload: ["n": .number(Double(n))])
    }

    /// Runs consumers as services until `done` holds or the timeout passes.
    func run(_ services: [any Service], timeout: Duration = .seconds(20), until done: @escaping @Sendable () async -> Bool) async throws {
        let group = ServiceGroup(services: services, logger: TestEnvironment.logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let deadline = ContinuousClock.now + timeout
            while await !done(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test("entries keep their order within a stream")
    func order() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        let bus = RedisStreamsEventBus(client: client)
        try await bus.ensureGroup("g", on: "s")
        try await bus.ensureGroup("g", on: "s")  // idempotent
        for n in 0..<100 { _ = try await bus.publish(event(n), to: "s") }
        var seen: [Int] = []
        while seen.count < 100 {
            let entries = try await bus.readGroup("g", consumer: "c", streams: ["s"], count: 30, blockMilliseconds: 100)
            seen += entries.compactMap { $0.event?.payload["n"]?.double }.map { Int($0) }
        }
        #expect(seen == Array(0..<100))
    }

    @Test("two consumers in one group split the entries; none is handled twice")
    func split() async throws {
        let redis = try await TestRedis.make()
        let (a, b, publisher) = (redis.client(), redis.client(), redis.client())
        defer { [a, b, publisher].forEach { $0.shutdown() } }
        let handled = NIOLockedValueBox<[String: [Int]]>([:])
        func consumer(_ name: String, _ client: RedisClient) -> GroupConsumer {
            GroupConsumer(
                bus: RedisStreamsEventBus(client: client), group: "g", consumer: name, streams: ["s"],
                options: .init(batchSize: 8, blockMilliseconds: 100), logger: TestEnvironment.logger
            ) { event, _ in
                handled.withLockedValue { $0[name, default: []].append(Int(event.payload["n"]?.double ?? -1)) }
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        let bus = RedisStreamsEventBus(client: publisher)
        try await bus.ensureGroup("g", on: "s")
        for n in 0..<200 { _ = try await bus.publish(event(n), to: "s") }
        try await run([consumer("a", a), consumer("b", b)]) { handled.withLockedValue { $0.values.map(\.count).reduce(0, +) } >= 200 }
        let result = handled.withLockedValue { $0 }
        let all = result.values.flatMap { $0 }
        #expect(all.count == 200)
        #expect(Set(all) == Set(0..<200))
        #expect(result["a", default: []].count > 0 && result["b", default: []].count > 0)
        #expect(try await bus.pendingCount("g", stream: "s") == 0)
    }

    @Test("an entry a dead consumer never acked reaches another consumer after the visibility timeout")
    func reclaim() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        let bus = RedisStreamsEventBus(client: client)
        try await bus.ensureGroup("g", on: "s")
        _ = try await bus.publish(event(42), to: "s")
        let taken = try await bus.readGroup("g", consumer: "dead", streams: ["s"], count: 10, blockMilliseconds: 100)
        #expect(taken.count == 1)  // "dead" read it and then died without acking
        let handled = NIOLockedValueBox<[Int]>([])
        let started = ContinuousClock.now
        let survivor = GroupConsumer(
            bus: bus, group: "g", consumer: "alive", streams: ["s"], options: .init(blockMilliseconds: 100, visibilityTimeoutMilliseconds: 500),
            logger: TestEnvironment.logger
        ) { event, _ in handled.withLockedValue { $0.append(Int(event.payload["n"]?.double ?? -1)) } }
        try await run([survivor]) { !handled.withLockedValue { $0 }.isEmpty }
        #expect(handled.withLockedValue { $0 } == [42])
        #expect(ContinuousClock.now - started >= .milliseconds(500))
        #expect(try await bus.pendingCount("g", stream: "s") == 0)
    }

    @Test("an entry that always fails moves to tac:dead after N deliveries, with its error")
    func deadLetter() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        let bus = RedisStreamsEventBus(client: client)
        _ = try await bus.ensureGroup("g", on: "s")
        _ = try await bus.publish(event(7), to: "s")
        let attempts = NIOLockedValueBox(0)
        let consumer = GroupConsumer(
            bus: bus, group: "g", consumer: "c", streams: ["s"],
            options: .init(blockMilliseconds: 50, visibilityTimeoutMilliseconds: 150, maxDeliveries: 3), logger: TestEnvironment.logger
        ) { _, _ in
            attempts.withLockedValue { $0 += 1 }
            throw TestFailure("boom: the handler always fails")
        }
        try await run([consumer]) { ((try? await bus.length(of: Streams.dead)) ?? 0) >= 1 }
        let dead = try await client.command("XRANGE", .string(Streams.dead), "-", "+")
        let rawFields = dead.array?.first?.array?.last?.array ?? []
        let fields = rawFields.compactMap { $0.string }
        let map = Dictionary(stride(from: 0, to: fields.count - 1, by: 2).map { (fields[$0], fields[$0 + 1]) }, uniquingKeysWith: { a, _ in a })
        #expect(map["error"]?.contains("boom") == true)
        #expect(map["deliveries"] == "3")
        #expect(map["stream"] == "s")
        #expect(attempts.withLockedValue { $0 } == 3)
        #expect(try await bus.pendingCount("g", stream: "s") == 0)
    }

    @Test("Redis restarted mid-run: publisher and consumer recover and no acknowledged publish is lost")
    func redisRestart() async throws {
        let server = try RedisServerProcess()
        defer { server.kill() }
        try await server.start()
        let (publisherClient, consumerClient) = (
            RedisClient(configuration: .init(host: "127.0.0.1", port: server.port), logger: TestEnvironment.logger),
            RedisClient(configuration: .init(host: "127.0.0.1", port: server.port), logger: TestEnvironment.logger)
        )
        defer { [publisherClient, consumerClient].forEach { $0.shutdown() } }
        let publisher = RedisStreamsEventBus(client: publisherClient)
        try await publisher.ensureGroup("g", on: "s")
        let acknowledged = NIOLockedValueBox<Set<Int>>([])
        let received = NIOLockedValueBox<Set<Int>>([])
        let consumer = GroupConsumer(
            bus: RedisStreamsEventBus(client: consumerClient), group: "g", consumer: "c", streams: ["s"],
            options: .init(blockMilliseconds: 100, visibilityTimeoutMilliseconds: 500), logger: TestEnvironment.logger
        ) { event, _ in _ = received.withLockedValue { $0.insert(Int(event.payload["n"]?.double ?? -1)) } }
        let giveUp = ContinuousClock.now + .seconds(40)
        let publishing = Task {
            for n in 0..<300 {
                while ContinuousClock.now < giveUp {
                    do {
                        _ = try await publisher.publish(event(n), to: "s")
                        _ = acknowledged.withLockedValue { $0.insert(n) }
                        break
                    } catch {
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
        let restarting = Task {
            while acknowledged.withLockedValue({ $0.count }) < 100 { try? await Task.sleep(for: .milliseconds(10)) }
            await server.stop()
            try? await Task.sleep(for: .milliseconds(300))
            try? await server.start()
        }
        try await run([consumer], timeout: .seconds(40)) {
            acknowledged.withLockedValue { $0.count } == 300 && received.withLockedValue { $0.isSuperset(of: acknowledged.withLockedValue { $0 }) }
        }
        await restarting.value
        await publishing.value
        let lost = acknowledged.withLockedValue { $0 }.subtracting(received.withLockedValue { $0 })
        #expect(server.restarts == 1)
        #expect(acknowledged.withLockedValue { $0.count } == 300)
        #expect(lost.isEmpty, "lost \(lost.count) acknowledged events")
    }
}

/// A redis-server of the test's own (append-only file on), daemonized so it can be stopped and
/// restarted on the same port and data. `appendfsync no`: Redis still writes the file before it
/// answers, so a killed server loses nothing, and no fsync stalls under the suite's disk traffic.
final class RedisServerProcess: Sendable {
    /// Handed out once for the run, so no other test is given it while this server restarts.
    let port = TestEnvironment.freePort()
    let directory = NSTemporaryDirectory() + "agentconnect-redis-\(UUID().uuidString.prefix(8))"
    private let starts = NIOLockedValueBox(0)

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    var restarts: Int { max(0, starts.withLockedValue { $0 } - 1) }

    private func client() -> RedisClient {
        RedisClient(configuration: .init(host: "127.0.0.1", port: port), logger: TestEnvironment.logger)
    }

    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "no", "--dir", directory,
            "--daemonize", "yes", "--pidfile", "\(directory)/redis.pid", "--logfile", "\(directory)/redis.log",
        ]
        try process.run()
        starts.withLockedValue { $0 += 1 }
        let client = client()
        defer { client.shutdown() }
        for _ in 0..<100 {
            if (try? await client.command("PING")) != nil { return }
            try await Task.sleep(for: .milliseconds(30))
        }
        throw TestFailure("redis-server did not start on \(port)")
    }

    /// `SHUTDOWN` (the AOF is synced), then waits until the port stops answering.
    func stop() async {
        let client = client()
        defer { client.shutdown() }
        _ = try? await client.send([["SHUTDOWN"]])
        for _ in 0..<100 {
            let probe = self.client()
            let alive = (try? await probe.command("PING")) != nil
            probe.shutdown()
            if !alive { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Best-effort stop for cleanup paths that cannot await.
    func kill() {
        if let text = try? String(contentsOfFile: "\(directory)/redis.pid", encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        {
            // SIGKILL: the daemon inherited the test runner's blocked signal mask, so SIGTERM would wait forever.
            Foundation.kill(pid, SIGKILL)
        }
    }
}
