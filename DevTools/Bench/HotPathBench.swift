import AgentConnectCore
import ArgumentParser
import EventBus
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceSupport

/// The bus work of one message, in this one process, for `valgrind --tool=callgrind` (instructions
/// per message, stable run to run): what messaging-ingress publishes (the deduplicated `EVAL`),
/// what an agent-worker does with it (read it from the group, publish the reply under its partition
/// lease, acknowledge), and what outbound does with the reply (read, acknowledge) — through the
/// same ``RedisStreamsEventBus`` and ``GroupConsumer`` the services use, with the events they carry.
///
/// scripts/bench_callgrind.sh runs it twice (two message counts) and divides the difference of
/// the instruction counts by the difference of the messages, so start-up cancels out.
struct HotPathBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hotpath")

    @Option var redisURL = "redis://127.0.0.1:6379/9"
    @Option var messages = 1000
    @Option(help: "Webhooks in flight at once (as concurrent requests would be).") var concurrency = 16
    @Option(
        help:
            "What runs the tasks: dispatch (Swift's own executor), event-loops (the services' own: one SwiftNIO event loop, each job as the generic executor), nio-takeover (SwiftNIO's takeover: each job isolated to its loop)."
    ) var executor: Executor = .dispatch

    enum Executor: String, ExpressibleByArgument, Sendable {
        case dispatch
        case eventLoops = "event-loops"
        case nioTakeover = "nio-takeover"
    }

    /// Installs `executor` as Swift's global executor (before the command's task starts: BenchMain).
    static func install(_ executor: Executor) {
        guard executor != .dispatch else { return }
        // Exactly the executor named (the services' own falls back to SwiftNIO's where it is not built).
        NIOSingletons.groupLoopCountSuggestion = 1
        let installed =
            executor == .eventLoops
            ? EventLoopGlobalExecutor.install() : NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        if !installed { Bench.exit(withError: ValidationError("could not install \(executor.rawValue) as the global executor")) }
    }

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let configuration = try RedisConfiguration(url: redisURL)
        let clients = (0..<3).map { _ in RedisClient(configuration: configuration, logger: logger) }
        defer { clients.forEach { $0.shutdown() } }
        let ingress = RedisStreamsEventBus(client: clients[0], durability: .none)
        let worker = RedisStreamsEventBus(client: clients[1], durability: .none)
        let outbound = RedisStreamsEventBus(client: clients[2], durability: .none)
        let tag = UUID().uuidString.prefix(8).lowercased()
        let inbound = "bench:hot:\(tag):in"
        let replies = "bench:hot:\(tag):out"
        let fence = LeaseFence(key: "bench:hot:\(tag):lease", holder: "bench-worker")
        try await clients[1].command("SET", .string(fence.key), .string(fence.holder), "PX", "600000")
        let delivered = NIOLockedValueBox(0)
        let done = AsyncStream<Void>.makeStream()
        let total = messages
        let options = ConsumerOptions(batchSize: 64, blockMilliseconds: 200)

        let workerConsumer = GroupConsumer(bus: worker, group: "g", consumer: "w", streams: [inbound], options: options, logger: logger) { event, _ in
            let message = try event.decode(MessageReceived.self)
            let payload = ReplyReady(
                text: "You said: \(message.text)", mode: .orchestrator, customerAddress: message.authorAddress,
                customerParticipantId: message.authorParticipantId, agentAddress: message.agentAddress, agentParticipantId: message.agentParticipantId
            )
            let reply = try BusEvent(
                payload, conversationId: event.conversationId, channel: event.channel,
                traceparent: Traceparent.continuing(event.traceparent).description)
            _ = try await worker.publish(reply, to: replies, fence: fence)
        }
        let outboundConsumer = GroupConsumer(bus: outbound, group: "g", consumer: "o", streams: [replies], options: options, logger: logger) {
            event, _ in
            // Read once, as outbound does.
            guard event.carries(ReplyReady.self) else { return }
            _ = try event.decode(ReplyReady.self)
            let count = delivered.withLockedValue { value -> Int in
                value += 1
                return value
            }
            if count == total { done.continuation.finish() }
        }
        let next = NIOLockedValueBox(0)
        try await worker.ensureGroup("g", on: inbound)
        try await outbound.ensureGroup("g", on: replies)

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await workerConsumer.run() }
            group.addTask { try await outboundConsumer.run() }
            // Webhooks: `concurrency` at a time.
            for _ in 0..<concurrency {
                group.addTask {
                    // A failed publish ends the run (and is thrown below) instead of leaving it waiting.
                    do { try await publishLoop() } catch {
                        done.continuation.finish()
                        throw error
                    }
                }
            }
            for await _ in done.stream {}
            group.cancelAll()
            try await group.waitForAll()
        }
        _ = try? await clients[0].command("DEL", .string(inbound), .string(replies), .string(fence.key))
        print("hotpath: \(delivered.withLockedValue { $0 }) messages")

        /// One webhook after another: a deduplicated publish of a realistic `message.received`.
        @Sendable func publishLoop() async throws {
            while true {
                let n = next.withLockedValue { value -> Int in
                    value += 1
                    return value
                }
                guard n <= total else { return }
                let conversation = "benchconv\(n % 200)"
                let payload = MessageReceived(
                    mode: .orchestrator, text: "m\(n)", authorAddress: "+16660000123", authorParticipantId: "PC\(conversation)",
                    agentAddress: "+15550000001", agentParticipantId: "PA\(conversation)", communicationId: "comm\(n)-\(tag)")
                let event = try BusEvent(payload, conversationId: conversation, channel: .sms)
                _ = try await ingress.publish(event, to: inbound, dedupKey: "bench:hot:\(tag):comm\(n)", ttlSeconds: 60)
            }
        }
    }
}
