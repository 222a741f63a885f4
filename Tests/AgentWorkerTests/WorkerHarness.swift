import AgentConnect
import AgentConnectCore
import AgentConnectRuntime
import EventBus
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Store

/// A worker on the in-memory twins: a real ``TAC`` (register callbacks on it as an author does), its
/// ``TurnHandler``, the bus, the store and the call registry to inspect.
struct WorkerHarness {
    /// The worker's name (its instance id, its leases' holder).
    let worker: String
    let tac: TAC
    let bus: InMemoryEventBus
    let store: InMemoryWorkerStore
    let calls: InMemoryCallRegistry
    let leaseTable: InMemoryLeaseTable
    let twimlHookRequests = InMemoryTwiMLHookRequests()
    let runtime: WorkerRuntime
    let handler: TurnHandler
    let partitions = 4

    /// A worker named `worker`; on the bus, store, calls and leases of `peer` when given (a second
    /// worker of the same deployment).
    init(_ environment: [String: String] = [:], worker: String = "worker-1", sharing peer: WorkerHarness? = nil) throws {
        self.worker = worker
        var logger = Logger(label: "agent-worker-tests")
        logger.logLevel = .critical
        let values = ["INSTANCE_ID": worker, "TAC_INBOUND_PARTITIONS": "\(partitions)", "AGENT_LEASE_TTL_MS": "300"].merging(environment) { $1 }
        let configuration = try TACConfiguration(environment: Environment(values))
        tac = TAC(configuration: configuration, logger: logger)
        let bus = peer?.bus ?? InMemoryEventBus()
        self.bus = bus
        store = peer?.store ?? InMemoryWorkerStore()
        calls = peer?.calls ?? InMemoryCallRegistry()
        leaseTable = peer?.leaseTable ?? InMemoryLeaseTable(bus: bus)
        runtime = try WorkerRuntime(
            configuration: configuration, logger: logger,
            parts: WorkerRuntime.Parts(
                bus: bus, store: store, calls: calls,
                leases: InMemoryPartitionLeases(
                    table: leaseTable, worker: worker, partitions: partitions, ttlMilliseconds: configuration.leaseTTLMilliseconds),
                twimlHookRequests: twimlHookRequests))
        try tac.attachWorkerRuntime(runtime)
        handler = TurnHandler(tac: tac, runtime: runtime)
    }

    /// The partitions `worker` holds now.
    func partitionsHeld(by worker: String) -> [Int] {
        (0..<partitions).filter { leaseTable.holder(of: $0) == worker }
    }

    /// Hands `event` to the turn handler, as the inbound consumer does.
    func deliver(_ event: BusEvent) async throws {
        let stream = Partitioner.inboundStream(for: event.conversationId, partitions: partitions)
        try await handler.handle(event, entry: BusEntry(stream: stream, id: "0-1", event: event, raw: try event.encoded()))
    }

    /// Puts `event` on its conversation's inbound partition, for the inbound consumer.
    func publishInbound(_ event: BusEvent) async throws {
        _ = try await bus.publish(event, to: Partitioner.inboundStream(for: event.conversationId, partitions: partitions))
    }

    /// Runs the worker's turn services (the inbound consumer on the lease twin, the TwiML hook)
    /// around `body`, then shuts them down gracefully.
    func running(_ body: () async throws -> Void) async throws {
        var logger = Logger(label: "agent-worker-tests")
        logger.logLevel = .critical
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: WorkerServices.turnServices(for: tac, on: runtime).map { .init(service: $0) }, logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body()
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// The replies on `tac:outbound`.
    var replies: [BusEvent] { bus.events(on: Streams.outbound) }

    /// The frames published to a relay's stream, one per ConversationRelay frame (an event carrying
    /// several in a row gives each with its own `seq`).
    func frames(relay: String) throws -> [VoiceFrame] {
        try bus.events(on: Streams.voice(instance: relay)).flatMap { event in
            let carried = try event.decode(VoiceFrame.self)
            return carried.frames.map { VoiceFrame(turnId: carried.turnId, seq: $0.sequence, frame: $0.frame, gen: carried.gen) }
        }
    }

    /// A customer message on a messaging channel.
    static func message(
        _ text: String, conversationId: String, channel: ChannelKind = .sms, from: String = "+15550001111", optOut: String? = nil
    ) throws -> BusEvent {
        try BusEvent(
            MessageReceived(mode: .orchestrator, text: text, authorAddress: from, agentAddress: "+15559990000", optOut: optOut),
            conversationId: conversationId, channel: channel)
    }

    /// A caller's prompt on a call held by `relay`.
    /// `framesInRow`: the relay reads several frames from one event (relays from before that send nil).
    static func prompt(
        _ text: String, conversationId: String, relay: String = "relay-a", from: String = "+15550002222", framesInRow: Bool? = true
    ) throws -> BusEvent {
        try BusEvent(
            MessageReceived(
                mode: .orchestrator, text: text, authorAddress: from, agentAddress: "+15559990000", relayInstance: relay,
                callSid: "CA\(conversationId)", framesInRow: framesInRow),
            conversationId: conversationId, channel: .voice)
    }

    /// Registers an `onMessageReady` that records each message's text and answers with `reply(text)`.
    func recordingMessages(reply: @escaping @Sendable (String) -> String = { _ in "ok" }) -> Recorder<String> {
        let seen = Recorder<String>()
        tac.onMessageReady { text, _, _ in
            seen.append(text)
            return reply(text)
        }
        return seen
    }
}

/// Counts and keeps what callbacks received (callbacks are `@Sendable`).
final class Recorder<Value: Sendable>: Sendable {
    private let values = NIOLockedValueBox<[Value]>([])

    func append(_ value: Value) { values.withLockedValue { $0.append(value) } }
    var all: [Value] { values.withLockedValue { $0 } }
    var count: Int { all.count }
}

/// Waits until `condition` holds (checked every few milliseconds), at most `timeout`; returns whether it did.
func eventually(timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return try await condition()
}
