import AgentConnect
import AgentConnectCore
import AgentConnectRuntime
import Foundation
import Logging
import NIOConcurrencyHelpers
import Store

/// The built-in agent's tool loop for one turn: stream the model's answer (text goes to the
/// customer at once), run the tools it asks for — concurrently, each bounded by cancellation (an
/// interrupt cancels the turn and every tool in flight) — feed the results back, and stream again,
/// for at most `OPENAI_MAX_TOOL_ROUNDS` rounds; the last round offers no tools, so the model answers.
///
/// Tool call ids are derived from the turn (the inbound event's id, the round, the call's place),
/// so a turn redone after a worker died asks for the same ids: a call that finished before is
/// answered from history without running again, and one that was in flight runs again with the
/// same ``ToolCallContext/id`` (the idempotency key the built-in tools pass on).
struct ToolLoop: Sendable {
    let tac: TAC
    let client: OpenAIChatClient
    let session: ConversationSession
    let tools: [AgentTool]

    private var logger: Logger { tac.logger }

    /// The answer's text pieces across every round. With `filler`, a short phrase is said when tools
    /// are still running after `OPENAI_TOOL_FILLER_MS` and nothing was said this turn.
    func stream(_ messages: [ChatMessage], maxTokens: Int?, filler: Bool) -> AsyncThrowingStream<String, any Error> {
        let turnKey = TurnContext.current?.event.id ?? BusEvent.newID()
        return AsyncThrowingStream { continuation in
            let spoken = NIOLockedValueBox(false)
            let say: @Sendable (String) -> Void = { piece in
                spoken.withLockedValue { $0 = true }
                continuation.yield(piece)
            }
            let task = Task {
                do {
                    try await run(messages, turnKey: turnKey, maxTokens: maxTokens, say: say) {
                        guard filler, !client.configuration.toolFiller.isEmpty, !spoken.withLockedValue({ $0 }) else { return }
                        say(client.configuration.toolFiller + " ")
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func run(
        _ initial: [ChatMessage], turnKey: String, maxTokens: Int?, say: @escaping @Sendable (String) -> Void,
        filler: @escaping @Sendable () -> Void
    ) async throws {
        var messages = initial
        let maxRounds = client.configuration.maxToolRounds
        for round in 0...maxRounds {
            let offered = round < maxRounds ? tools.map(\.openAIFormat) : []
            var text = ""
            var requested: [ToolCallRequest] = []
            for try await event in client.events(messages, tools: offered, maxTokens: maxTokens) {
                switch event {
                case .text(let piece):
                    text += piece
                    say(piece)
                case .toolCalls(let calls):
                    requested = calls
                }
            }
            guard !requested.isEmpty, !offered.isEmpty else { return }
            let roundId = Self.roundPrefix(turnKey: turnKey) + "\(round)"
            let calls = requested.enumerated().map { index, call in
                ToolCallRequest(id: Self.callId(roundId: roundId, position: index), name: call.name, arguments: call.arguments)
            }
            messages.append(ChatMessage(role: "assistant", content: text, toolCalls: calls))
            let results = try await runTools(calls, roundId: roundId, filler: filler)
            for (call, result) in zip(calls, results) { messages.append(.tool(result, id: call.id)) }
        }
    }

    /// Runs a round's calls concurrently; results in the calls' order (JSON text).
    private func runTools(_ calls: [ToolCallRequest], roundId: String, filler: @escaping @Sendable () -> Void) async throws -> [String] {
        let fillerDelay = Duration.milliseconds(client.configuration.toolFillerMilliseconds)
        return try await withThrowingTaskGroup(of: (Int, String)?.self) { group in
            group.addTask {
                try await Task.sleep(for: fillerDelay)
                filler()
                return nil
            }
            for (position, call) in calls.enumerated() {
                group.addTask { (position, try await runTool(call, roundId: roundId, position: position)) }
            }
            var results = [String](repeating: "", count: calls.count)
            var done = 0
            while done < calls.count, let next = try await group.next() {
                guard let (position, result) = next else { continue }
                results[position] = result
                done += 1
            }
            group.cancelAll()
            return results
        }
    }

    private func runTool(_ call: ToolCallRequest, roundId: String, position: Int) async throws -> String {
        let store = try? tac.workerRuntime().store
        if let earlier = try? await store?.toolCall(id: call.id), earlier.name == call.name {
            logger.info("tool call answered from history (redone turn)", metadata: ["tool": "\(call.name)", "tool.call": "\(call.id)"])
            return earlier.result
        }
        let result: JSONValue
        if let tool = tools.first(where: { $0.name == call.name }) {
            let arguments = call.arguments.trimmingCharacters(in: .whitespacesAndNewlines)
            if arguments.isEmpty {
                result = try await invoke(tool, call, .object([:]))
            } else if let parsed = try? JSONDecoder().decode(JSONValue.self, from: Data(arguments.utf8)) {
                result = try await invoke(tool, call, parsed)
            } else {
                result = ["error": "the arguments are not valid JSON", "tool": .string(call.name)]
            }
        } else {
            result = ["error": .string("there is no tool named \(call.name)"), "tool": .string(call.name)]
        }
        try Task.checkCancellation()
        let text = result.compactJSON
        if let store {
            let record = ToolCallRecord(
                id: call.id, conversationId: session.conversationId, roundId: roundId, position: position, name: call.name,
                arguments: call.arguments, result: text)
            let logger = logger
            await Uncancellable.run {
                do {
                    try await store.recordToolCall(record)
                } catch {
                    logger.warning("could not record the tool call", metadata: ["tool.call": "\(record.id)", "error": "\(error)"])
                }
            }
        }
        return text
    }

    private func invoke(_ tool: AgentTool, _ call: ToolCallRequest, _ arguments: JSONValue) async throws -> JSONValue {
        let started = ContinuousClock.now
        let context = ToolCallContext(id: call.id, name: call.name, session: session)
        let result = await ToolCallContext.$current.withValue(context) { await tool.call(arguments) }
        try Task.checkCancellation()
        logger.info(
            "tool called",
            metadata: [
                "conversation.id": "\(session.conversationId)", "tool": "\(call.name)", "tool.call": "\(call.id)",
                "failed": "\(result["error"] != nil)", "duration": "\(ContinuousClock.now - started)",
            ])
        return result
    }

    /// The prefix of every round id of a turn.
    static func roundPrefix(turnKey: String) -> String { "\(turnKey):t" }

    /// A short id that is the same whenever the same turn asks for a call at the same place.
    static func callId(roundId: String, position: Int) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(roundId).\(position)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return "call_" + String(hash, radix: 16)
    }

    /// Chat messages of stored history: the messages, and before each later message the tool calls
    /// made before it (one assistant message per round, then one tool message per call).
    static func history(messages: [MessageRecord], toolCalls: [ToolCallRecord]) -> [ChatMessage] {
        enum Item {
            case message(MessageRecord)
            case round([ToolCallRecord])
        }
        var rounds: [[ToolCallRecord]] = []
        for call in toolCalls {
            if let last = rounds.last?.first, last.roundId == call.roundId {
                rounds[rounds.count - 1].append(call)
            } else {
                rounds.append([call])
            }
        }
        var items: [(Date, Int, Item)] = messages.map { ($0.createdAt, 1, .message($0)) }
        items += rounds.compactMap { round in round.first.map { ($0.createdAt, 0, .round(round)) } }
        items.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        var chat: [ChatMessage] = []
        for (_, _, item) in items {
            switch item {
            case .message(let message):
                chat.append(message.direction == .inbound ? .user(message.body) : .assistant(message.body))
            case .round(let calls):
                let sorted = calls.sorted { $0.position < $1.position }
                chat.append(
                    ChatMessage(
                        role: "assistant", content: "", toolCalls: sorted.map { ToolCallRequest(id: $0.id, name: $0.name, arguments: $0.arguments) }))
                chat += sorted.map { ChatMessage.tool($0.result, id: $0.id) }
            }
        }
        return chat
    }
}
