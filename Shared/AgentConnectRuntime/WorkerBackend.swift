package import AgentConnect
package import AgentConnectCore
import Foundation
import NIOConcurrencyHelpers
import ServiceLifecycle
import ServiceSupport
import Store

/// The runtime's side of ``TACBackend``: one per ``TAC``, holding the worker's connections once
/// ``run(_:)`` started them.
package final class WorkerBackend: TACBackend {
    private let runtimeBox = NIOLockedValueBox<WorkerRuntime?>(nil)

    init() {}

    /// The running worker's connections; throws when called before `tac.run()`.
    package func runtime() throws -> WorkerRuntime {
        guard let runtime = runtimeBox.withLockedValue({ $0 }) else {
            throw TACError("the worker is not running: call tac.run() first")
        }
        return runtime
    }

    /// Connects (lazily: the services connect when they run) and remembers the worker's runtime.
    func start(_ tac: TAC) throws -> WorkerRuntime {
        let runtime = try WorkerRuntime(configuration: tac.configuration, logger: tac.logger)
        attach(runtime)
        return runtime
    }

    /// Remembers the worker's runtime: the author's calls (`sendResponse`, `retrieveMemory`, …) go to it.
    func attach(_ runtime: WorkerRuntime) {
        runtimeBox.withLockedValue { $0 = runtime }
    }

    package func run(_ tac: TAC) async throws {
        if !tac.hasOwnLogger, let logger = try? ServiceMain.bootstrap(service: "agent-worker", environment: tac.configuration.environment) {
            tac.setLogger(logger)
        }
        // With the author's own logger, metrics are still ours unless the author set up their own:
        // bootstrapped before the services are built, since each makes its metrics once, at start.
        _ = Observability.registry
        ServiceMain.unblockTerminationSignals()
        try await WorkerServices.group(for: tac).run()
    }

    package func sendMessage(
        _ tac: TAC, channel: ChannelKind, conversationId: String, response: String, media: [String], template: MessageTemplate?
    ) async throws {
        try await runtime().sendMessage(channel: channel, conversationId: conversationId, response: response, media: media, template: template)
    }

    package func sendFrames(
        _ tac: TAC, conversationId: String, _ body: (_ emit: (JSONValue) async throws -> Void) async throws -> Void
    ) async throws {
        try await runtime().sendFrames(conversationId: conversationId, body)
    }

    package func retrieveMemory(_ tac: TAC, session: ConversationSession, query: String?) async throws -> TACMemoryResponse {
        try await runtime().retrieveMemory(session, query: query)
    }

    package func profileId(_ tac: TAC, session: ConversationSession) async throws -> String? {
        try await runtime().profileId(for: session)
    }

    package func addObservation(_ tac: TAC, profileId: String, content: String, source: String, conversationId: String) async throws -> String {
        try await runtime().store.addObservation(profileId: profileId, content: content, source: source, conversationId: conversationId, id: nil)
    }

    package func addSummary(_ tac: TAC, profileId: String, content: String, source: String, conversationId: String) async throws -> String {
        try await runtime().store.addSummary(
            profileId: profileId, content: content, source: source, conversationId: conversationId, occurredAt: Date(), id: nil)
    }

    package func setTraits(_ tac: TAC, profileId: String, group: String, values: [String: String]) async throws {
        try await runtime().store.setTraits(profileId: profileId, group: group, values: values)
    }

    package func history(_ tac: TAC, conversationId: String, limit: Int) async throws -> [Communication] {
        try await runtime().store.history(conversationId: conversationId, limit: limit).map(Communication.init(record:))
    }

    package func callOutboundAPI(_ tac: TAC, path: String, body: JSONValue, idempotencyKey: String?) async throws -> JSONValue {
        try await OutboundClient(configuration: tac.configuration).post(path, body, idempotencyKey: idempotencyKey)
    }

    package func fetchMedia(_ tac: TAC, media: MessageMedia, maxBytes: Int, timeout: Duration) async throws -> [UInt8] {
        try await MediaFetcher(environment: tac.configuration.environment).fetch(media, maxBytes: maxBytes, timeout: timeout)
    }

    package func handoff(_ tac: TAC, session: ConversationSession, attributes: [String: String]) async throws {
        try await runtime().handoff(session, attributes: attributes)
    }

    package func searchKnowledge(_ tac: TAC, query: String, limit: Int?) async throws -> [KnowledgeChunk] {
        let runtime = try runtime()
        return try await KnowledgeBase(configuration: try KnowledgeConfiguration(environment: tac.configuration.environment), store: runtime.store)
            .search(query, limit: limit)
    }
}

extension TAC {
    /// The running worker's runtime (for the built-in agents); throws before `run()`.
    package func workerRuntime() throws -> WorkerRuntime {
        try workerBackend().runtime()
    }

    /// Runs this TAC's author calls on `runtime` (tests: a runtime on in-memory parts, whose services
    /// come from ``WorkerServices/turnServices(for:on:)``).
    package func attachWorkerRuntime(_ runtime: WorkerRuntime) throws {
        try workerBackend().attach(runtime)
    }

    func workerBackend() throws -> WorkerBackend {
        guard let backend = backend as? WorkerBackend else { throw TACError("this TAC does not run on the worker runtime") }
        return backend
    }
}

/// The face's ``makeTACBackend()``, resolved by the linker: every `TAC` gets a ``WorkerBackend``.
@_silgen_name("agentconnect_runtime_make_backend")
package func makeWorkerBackend() -> any TACBackend {
    WorkerBackend()
}
