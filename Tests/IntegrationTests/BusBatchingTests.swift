import AgentConnectCore
import Foundation
import NIOConcurrencyHelpers
import NIOPosix
import ServiceLifecycle
import Testing

@testable import EventBus

@Suite("Bus batching: acknowledgements together, scripts by digest")
struct BusBatchingTests {
    /// A stand-in for Redis that records what each batch acknowledged, holds the first batch until
    /// `release` says so, and fails the batches `failing` names.
    final class Recorder: Sendable {
        let batches = NIOLockedValueBox<[[String]]>([])
        let answered = NIOLockedValueBox<Set<String>>([])
        let holdFirst = NIOLockedValueBox(false)
        let failing = NIOLockedValueBox<Set<Int>>([])

        func send(_ batch: [(stream: String, ids: [String])]) async throws {
            let ids = batch.flatMap { item in item.ids.map { "\(item.stream)/\($0)" } }
            let index = batches.withLockedValue { batches -> Int in
                batches.append(ids)
                return batches.count - 1
            }
            if index == 0 { while holdFirst.withLockedValue({ $0 }) { await Task.yield() } }
            if failing.withLockedValue({ $0.contains(index) }) { throw BusError(.unavailable, "batch \(index) failed") }
            answered.withLockedValue { $0.formUnion(ids) }
        }
    }

    @Test("acknowledgements made while one is on its way go out as the next batch; each returns after its own was answered")
    func batchesAcknowledgements() async throws {
        let recorder = Recorder()
        recorder.holdFirst.withLockedValue { $0 = true }
        let batcher = AckBatcher { try await recorder.send($0) }
        let wrong = NIOLockedValueBox<[String]>([])
        func ack(_ stream: String, _ id: String) async throws {
            try await batcher.ack(stream: stream, id: id)
            // Returned: its own acknowledgement must have been answered already.
            if !recorder.answered.withLockedValue({ $0.contains("\(stream)/\(id)") }) { wrong.withLockedValue { $0.append(id) } }
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await ack("s0", "first") }
            while recorder.batches.withLockedValue({ $0.isEmpty }) { await Task.yield() }
            for n in 0..<199 { tasks.addTask { try await ack("s\(n % 3)", "e\(n)") } }
            // Every other acknowledgement waits behind the first batch, which is still out.
            while batcher.queued < 199 { await Task.yield() }
            recorder.holdFirst.withLockedValue { $0 = false }
            try await tasks.waitForAll()
        }
        let batches = recorder.batches.withLockedValue { $0 }
        #expect(batches.count == 2)
        #expect(batches.first == ["s0/first"])
        let all = batches.flatMap { $0 }
        #expect(all.count == 200 && Set(all).count == 200)
        #expect(wrong.withLockedValue { $0 }.isEmpty)
        // Grouped by stream: each stream's ids together (one XACK each).
        let streams = (batches.last ?? []).map { $0.prefix(2) }
        #expect(zip(streams, streams.dropFirst()).filter { $0 != $1 }.count == Set(streams).count - 1)
        #expect(batcher.queued == 0)
    }

    @Test("a failed batch fails every acknowledgement in it, and the next ones still go out")
    func failedBatch() async throws {
        let recorder = Recorder()
        recorder.holdFirst.withLockedValue { $0 = true }
        recorder.failing.withLockedValue { $0 = [1] }
        let batcher = AckBatcher { try await recorder.send($0) }
        let failed = NIOLockedValueBox<Set<String>>([])
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await batcher.ack(stream: "s", id: "first") }
            while recorder.batches.withLockedValue({ $0.isEmpty }) { await Task.yield() }
            for n in 0..<10 {
                tasks.addTask {
                    do { try await batcher.ack(stream: "s", id: "e\(n)") } catch { failed.withLockedValue { _ = $0.insert("e\(n)") } }
                }
            }
            while batcher.queued < 10 { await Task.yield() }
            recorder.holdFirst.withLockedValue { $0 = false }
            try await tasks.waitForAll()
        }
        #expect(failed.withLockedValue { $0 } == Set((0..<10).map { "e\($0)" }))
        // A later acknowledgement is sent in a batch of its own and succeeds.
        try await batcher.ack(stream: "s", id: "later")
        #expect(recorder.answered.withLockedValue { $0 }.contains("s/later"))
    }

    @Test("a consumer on three streams handles every entry once and leaves none pending")
    func consumerAcknowledgesEverything() async throws {
        let redis = try await TestRedis.make()
        let (consumerClient, publisher) = (redis.client(), redis.client())
        defer { [consumerClient, publisher].forEach { $0.shutdown() } }
        let streams = ["s0", "s1", "s2"]
        let bus = RedisStreamsEventBus(client: publisher)
        for stream in streams { try await bus.ensureGroup("g", on: stream) }
        for n in 0..<300 {
            let event = BusEvent(type: EventType.messageReceived, conversationId: "c\(n % 7)", channel: .sms, payload: ["n": .number(Double(n))])
            _ = try await bus.publish(event, to: streams[n % 3])
        }
        let handled = NIOLockedValueBox<[String: [Int]]>([:])
        let consumer = GroupConsumer(
            bus: RedisStreamsEventBus(client: consumerClient), group: "g", consumer: "c", streams: streams,
            options: .init(batchSize: 64, blockMilliseconds: 100), logger: TestEnvironment.logger
        ) { event, entry in
            handled.withLockedValue { $0[entry.stream, default: []].append(Int(event.payload["n"]?.double ?? -1)) }
        }
        let group = ServiceGroup(services: [consumer], logger: TestEnvironment.logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                var pending = 0
                for stream in streams { pending += try await bus.pendingCount("g", stream: stream) }
                let count = handled.withLockedValue { $0.values.map(\.count).reduce(0, +) }
                if count >= 300 && pending == 0 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let result = handled.withLockedValue { $0 }
        for (index, stream) in streams.enumerated() {
            #expect(result[stream]?.sorted() == Array(stride(from: index, to: 300, by: 3)))
            #expect(try await bus.pendingCount("g", stream: stream) == 0)
        }
    }

    @Test("a script goes out by digest, and runs once when the server forgot it (NOSCRIPT)")
    func scriptByDigest() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        let script = RedisScript("return redis.call('INCR', KEYS[1])")
        let key: RedisArgument = .string("script-test-\(UUID().uuidString)")
        #expect(try await script.run(on: client, keys: [key], arguments: [])[0] == .integer(1))
        #expect(script.sendsDigest)
        #expect(try await script.run(on: client, keys: [key], arguments: [])[0] == .integer(2))
        // The server forgets every script (as after a restart): the next call is refused (NOSCRIPT)
        // without running, and sent again with its text, once.
        try await client.command("SCRIPT", "FLUSH")
        let replies = try await script.run(on: client, keys: [key], arguments: [], then: [["GET", key]])
        #expect(replies == [.integer(3), .bulk(Array("3".utf8))])
        #expect(script.sendsDigest)
        #expect(try await client.command("GET", key).string == "3")
    }

    @Test("commands sent at once on one connection go out together and each gets its own reply, in order")
    func concurrentCommandsKeepTheirReplies() async throws {
        let redis = try await TestRedis.make()
        let connection = try await RedisConnection.connect(configuration: redis.configuration, on: MultiThreadedEventLoopGroup.singleton)
        defer { connection.close() }
        let wrong = NIOLockedValueBox<[Int]>([])
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for n in 0..<2000 {
                tasks.addTask {
                    if n % 5 == 0 {
                        // A batch keeps its order and stays in one piece among the others.
                        let replies = try await connection.send([
                            ["ECHO", .string("a\(n)")], ["INCR", .string("counter")], ["ECHO", .string("b\(n)")],
                        ])
                        if replies.count != 3 || replies[0].string != "a\(n)" || replies[1].integer == nil || replies[2].string != "b\(n)" {
                            wrong.withLockedValue { $0.append(n) }
                        }
                    } else if try await connection.command("ECHO", .string("m\(n)")).string != "m\(n)" {
                        wrong.withLockedValue { $0.append(n) }
                    }
                }
            }
            try await tasks.waitForAll()
        }
        #expect(wrong.withLockedValue { $0 }.isEmpty)
        #expect(try await connection.command("GET", "counter").string == "400")
        // Writes issued one after another in one task reach Redis in that order.
        for n in 0..<50 { try await connection.command("RPUSH", "list", .string(String(n))) }
        let list = try await connection.command("LRANGE", "list", "0", "-1").array?.compactMap(\.string)
        #expect(list == (0..<50).map { String($0) })
    }

    @Test("a command sent on a closed connection fails at once as unavailable")
    func closedConnectionFails() async throws {
        let redis = try await TestRedis.make()
        let connection = try await RedisConnection.connect(configuration: redis.configuration, on: MultiThreadedEventLoopGroup.singleton)
        #expect(try await connection.command("PING").string == "PONG")
        connection.close()
        while connection.isActive { await Task.yield() }
        await #expect(throws: BusError.self) { try await connection.command("PING") }
    }
}
