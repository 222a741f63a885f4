/// What the author's API needs from the worker runtime: everything that takes a connection (Redis,
/// PostgreSQL, HTTP). The face declares it; `AgentConnectRuntime` implements it and provides it
/// through ``makeTACBackend()``, which the linker resolves, so an author imports only `AgentConnect`.
///
/// Calls that need the running worker's connections throw a ``TACError`` before ``TAC/run()``;
/// the HTTP calls (the outbound API, media) work at any time.
package protocol TACBackend: Sendable {
    /// Starts the worker for `tac` (logging and metrics unless the author passed a logger, Redis,
    /// PostgreSQL, the consumer, health) and runs it until SIGTERM/SIGINT.
    func run(_ tac: TAC) async throws

    /// Sends a messaging reply (see ``MessagingChannel/sendResponse(conversationId:response:media:template:)``).
    func sendMessage(
        _ tac: TAC, channel: ChannelKind, conversationId: String, response: String, media: [String], template: MessageTemplate?
    ) async throws

    /// Publishes the ConversationRelay frames `body` emits as one reply to the call's relay.
    func sendFrames(_ tac: TAC, conversationId: String, _ body: (_ emit: (JSONValue) async throws -> Void) async throws -> Void) async throws

    /// The customer's memory (see ``TAC/retrieveMemory(_:query:)``).
    func retrieveMemory(_ tac: TAC, session: ConversationSession, query: String?) async throws -> TACMemoryResponse

    /// The customer's profile id, found or created from their address (see ``TAC/profileId(for:)``).
    func profileId(_ tac: TAC, session: ConversationSession) async throws -> String?

    /// Stores an observation on a profile; returns its id.
    func addObservation(_ tac: TAC, profileId: String, content: String, source: String, conversationId: String) async throws -> String

    /// Stores a conversation summary on a profile; returns its id.
    func addSummary(_ tac: TAC, profileId: String, content: String, source: String, conversationId: String) async throws -> String

    /// Sets fields of a profile's trait group.
    func setTraits(_ tac: TAC, profileId: String, group: String, values: [String: String]) async throws

    /// The conversation's latest messages, oldest first.
    func history(_ tac: TAC, conversationId: String, limit: Int) async throws -> [Communication]

    /// POSTs to the outbound service's API (`OUTBOUND_URL`, bearer `OUTBOUND_API_TOKEN`); its JSON answer.
    func callOutboundAPI(_ tac: TAC, path: String, body: JSONValue, idempotencyKey: String?) async throws -> JSONValue

    /// Fetches a medium of a customer's message (see ``TAC/fetchMedia(_:maxBytes:timeout:)``).
    func fetchMedia(_ tac: TAC, media: MessageMedia, maxBytes: Int, timeout: Duration) async throws -> [UInt8]

    /// Hands the conversation to a person (see ``TAC/handoff(_:reason:attributes:)``); throws when it failed.
    func handoff(_ tac: TAC, session: ConversationSession, attributes: [String: String]) async throws

    /// The knowledge chunks most relevant to `query`, best first.
    func searchKnowledge(_ tac: TAC, query: String, limit: Int?) async throws -> [KnowledgeChunk]
}

/// The runtime's backend, defined by `AgentConnectRuntime` under the same symbol name: the `AgentConnect`
/// product links both modules, so a program that imports only `AgentConnect` still gets the runtime.
@_silgen_name("agentconnect_runtime_make_backend")
func makeTACBackend() -> any TACBackend
