import AgentConnectCore
import ArgumentParser
import EventBus
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Publish→deliver latency at a fixed rate, and the maximum sustained rate, on the real bus.
struct BusBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bus")

    @Option var redisURL = "redis://127.0.0.1:6379/9"
    @Option var rate = 5000
    @Option var seconds = 5
    @Option var publishers = 32

    func run() async throws {
        let logger = Logger(label: "bench")
        let configuration = try RedisConfiguration(url: redisURL)
        let publisherClient = RedisClient(configuration: configuration, logger: logger)
        let consumerClient = RedisClient(configuration: configuration, logger: logger)
        defer { [publisherClient, consumerClient].forEach { $0.shutdown() } }
        let publisher = RedisStreamsEventBus(client: publisherClient)
        let consumer = RedisStreamsEventBus(client: consumerClient)
        let clock = ContinuousClock()
        let origin = clock.now

        // 1. Latency at a fixed rate.
        let stream = "bench:bus:\(UUID().uuidString.prefix(8))"
        try await consumer.ensureGroup("g", on: stream)
        let total = rate * seconds
        let latencies = NIOLockedValueBox(Samples())
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // As the services consume: the next read does not wait for the previous batch's XACK.
                try await withThrowingDiscardingTaskGroup { acks in
                    var received = 0
                    while received < total {
                        let entries = try await consumer.readGroup("g", consumer: "c", streams: [stream], count: 512, blockMilliseconds: 1000)
                        let now = clock.now - origin
                        for entry in entries {
                            if let sent = entry.event?.payload["t"]?.double {
                                latencies.withLockedValue { $0.add(milliseconds: now.inMilliseconds - sent) }
                            }
                        }
                        received += entries.count
                        let ids = entries.map(\.id)
                        if !ids.isEmpty { acks.addTask { try await consumer.ack("g", stream: stream, ids: ids) } }
                    }
                }
            }
            group.addTask {
                // Paced in 1 ms ticks; each publish is its own XADD (no batching), as services do.
                let interval = Duration.seconds(1) / rate
                var next = clock.now
                try await withThrowingTaskGroup(of: Void.self) { sends in
                    for _ in 0..<total {
                        try await clock.sleep(until: next)
                        next += interval
                        sends.addTask {
                            let now = clock.now - origin
                            let t = now.inMilliseconds
                            _ = try await publisher.publish(
                                BusEvent(type: "bench", conversationId: "c", channel: .sms, payload: ["t": .number(t)]), to: stream)
                        }
                    }
                    try await sends.waitForAll()
                }
            }
            try await group.waitForAll()
        }
        let samples = latencies.withLockedValue { $0 }
        row("bus publish→deliver p50 at \(rate)/s (ms)", format(samples.percentile(50), digits: 3))
        row("bus publish→deliver p99 at \(rate)/s (ms)", format(samples.percentile(99), digits: 3))

        // 2. Maximum sustained rate: concurrent publishers, one consumer that acks.
        let maxStream = "bench:busmax:\(UUID().uuidString.prefix(8))"
        try await consumer.ensureGroup("g", on: maxStream)
        let published = NIOLockedValueBox(0)
        let consumed = NIOLockedValueBox(0)
        let deadline = clock.now + .seconds(seconds)
        let started = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<publishers {
                group.addTask {
                    while clock.now < deadline {
                        _ = try await publisher.publish(BusEvent(type: "bench", conversationId: "c", channel: .sms, payload: ["x": 1]), to: maxStream)
                        published.withLockedValue { $0 += 1 }
                    }
                }
            }
            group.addTask {
                while clock.now < deadline + .seconds(2) {
                    let entries = try await consumer.readGroup("g", consumer: "c", streams: [maxStream], count: 1024, blockMilliseconds: 200)
                    if !entries.isEmpty { try await consumer.ack("g", stream: maxStream, ids: entries.map(\.id)) }
                    let done = consumed.withLockedValue { value -> Bool in
                        value += entries.count
                        return clock.now >= deadline && value >= published.withLockedValue { $0 }
                    }
                    if done { break }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = clock.now - started
        row("bus max sustained rate, publish+deliver+ack (events/s)", String(Int(Double(consumed.withLockedValue { $0 }) / elapsed.inSeconds)))
        _ = try? await publisherClient.command("DEL", .string(stream), .string(maxStream))
    }
}
