package import AgentConnect
package import AgentConnectCore
import AgentConnectRuntime
package import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Store

/// One message of a Chat Completions request.
package struct ChatMessage: Sendable, Codable, Equatable {
    package var role: String
    package var content: String
    /// The tools an `assistant` message asked for.
    package var toolCalls: [ToolCallRequest]?
    /// The call a `tool` message answers.
    package var toolCallId: String?

    package init(role: String, content: String, toolCalls: [ToolCallRequest]? = nil, toolCallId: String? = nil) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallId = toolCallId
    }

    package static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    package static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    package static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
    /// A tool's result for the call `id`.
    package static func tool(_ content: String, id: String) -> ChatMessage { ChatMessage(role: "tool", content: content, toolCallId: id) }

    /// The message as Chat Completions wants it.
    package var json: JSONValue {
        var members: [String: JSONValue] = ["role": .string(role), "content": .string(content)]
        if let toolCalls, !toolCalls.isEmpty {
            if content.isEmpty { members["content"] = .null }
            members["tool_calls"] = .array(
                toolCalls.map {
                    ["id": .string($0.id), "type": "function", "function": ["name": .string($0.name), "arguments": .string($0.arguments)]]
                })
        }
        if let toolCallId { members["tool_call_id"] = .string(toolCallId) }
        return .object(members)
    }
}

/// A tool call the model asked for: arguments are JSON text, as the model wrote it.
package struct ToolCallRequest: Sendable, Codable, Equatable {
    package var id: String
    package var name: String
    package var arguments: String

    package init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// What a streamed Chat Completions answer carries: text pieces as they are written, then the
/// tool calls (assembled from their pieces) when the model asks for any.
package enum ChatStreamEvent: Sendable, Equatable {
    case text(String)
    case toolCalls([ToolCallRequest])
}

/// Settings of the `openai` agent: any OpenAI-compatible Chat Completions endpoint (OpenAI, Ollama, vLLM).
package struct OpenAIConfiguration: Sendable {
    /// `OPENAI_BASE_URL`, up to and including `/v1`.
    package var baseURL: String
    /// `OPENAI_API_KEY` (local servers often need none).
    package var apiKey: String?
    /// `OPENAI_MODEL`.
    package var model: String
    /// `OPENAI_SYSTEM_PROMPT`.
    package var systemPrompt: String
    /// `OPENAI_TIMEOUT_MS`: longest wait for the answer to start, and between two of its chunks.
    package var timeoutMilliseconds: Int
    /// What the customer hears or reads when the model fails: never silence.
    package var apology: String
    /// `OPENAI_MAX_TOOL_ROUNDS`: model responses with tool calls in one turn before the model must answer.
    package var maxToolRounds: Int
    /// `OPENAI_TOOL_FILLER`: said on voice when tools are still running after `OPENAI_TOOL_FILLER_MS`
    /// and nothing was said yet (empty: never).
    package var toolFiller: String
    /// `OPENAI_TOOL_FILLER_MS`.
    package var toolFillerMilliseconds: Int

    package init(environment: Environment) throws {
        baseURL = try environment.url("OPENAI_BASE_URL", default: "https://api.openai.com/v1")
        apiKey = environment.string("OPENAI_API_KEY")
        model = environment.string("OPENAI_MODEL", default: "gpt-4o-mini")
        systemPrompt = environment.string("OPENAI_SYSTEM_PROMPT", default: "You are a helpful, friendly customer service assistant.")
        timeoutMilliseconds = try environment.int("OPENAI_TIMEOUT_MS", default: 15_000, range: 100...600_000)
        apology = "Sorry, I'm having trouble answering right now. Please try again in a moment."
        maxToolRounds = try environment.int("OPENAI_MAX_TOOL_ROUNDS", default: 5, range: 1...20)
        toolFiller = environment.string("OPENAI_TOOL_FILLER", default: "One moment, please.")
        toolFillerMilliseconds = try environment.int("OPENAI_TOOL_FILLER_MS", default: 1200, range: 0...60_000)
    }
}

/// A streaming Chat Completions client (server-sent events through AsyncHTTPClient).
package struct OpenAIChatClient: Sendable {
    package let configuration: OpenAIConfiguration
    let http: HTTPClient

    package init(configuration: OpenAIConfiguration, http: HTTPClient = .shared) {
        self.configuration = configuration
        self.http = http
    }

    /// The answer's text pieces as the model writes them. Cancelling the consumer cancels the
    /// upstream request; a stall longer than the timeout ends the stream with an error.
    package func stream(_ messages: [ChatMessage], maxTokens: Int? = nil) -> AsyncThrowingStream<String, any Error> {
        let events = events(messages, maxTokens: maxTokens)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await case .text(let piece) in events { continuation.yield(piece) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The answer as it streams, offering `tools` (Chat Completions format): text pieces as they are
    /// written, then, if the model asks for tools, one ``ChatStreamEvent/toolCalls(_:)`` with every
    /// call assembled from its pieces. Cancelling the consumer cancels the upstream request; a stall
    /// longer than the timeout ends the stream with an error.
    package func events(_ messages: [ChatMessage], tools: [JSONValue] = [], maxTokens: Int? = nil) -> AsyncThrowingStream<ChatStreamEvent, any Error>
    {
        AsyncThrowingStream { continuation in
            let lastProgress = NIOLockedValueBox(ContinuousClock.now)
            let timeout = Duration.milliseconds(configuration.timeoutMilliseconds)
            let task = Task {
                do {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            try await self.read(messages, tools: tools, maxTokens: maxTokens) { event in
                                lastProgress.withLockedValue { $0 = .now }
                                if let event { continuation.yield(event) }
                            }
                        }
                        group.addTask {
                            while true {
                                try await Task.sleep(for: .milliseconds(50))
                                if ContinuousClock.now - lastProgress.withLockedValue({ $0 }) > timeout {
                                    throw TACError("the model did not answer within \(configuration.timeoutMilliseconds) ms")
                                }
                            }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Reads the answer; `yield` gets each event, and `nil` for progress without one (a piece of a
    /// tool call's arguments).
    private func read(_ messages: [ChatMessage], tools: [JSONValue], maxTokens: Int?, yield: @Sendable (ChatStreamEvent?) -> Void) async throws {
        var body: [String: JSONValue] = [
            "model": .string(configuration.model), "stream": true, "messages": .array(messages.map(\.json)),
        ]
        if let maxTokens { body["max_tokens"] = .number(Double(maxTokens)) }
        if !tools.isEmpty { body["tools"] = .array(tools) }
        var request = HTTPClientRequest(url: configuration.baseURL + "/chat/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "text/event-stream")
        if let key = configuration.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        request.body = .bytes(ByteBuffer(string: JSONValue.object(body).compactJSON))
        let response = try await http.execute(request, timeout: .milliseconds(Int64(configuration.timeoutMilliseconds)))
        guard response.status == .ok else {
            let detail = (try? await response.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
            throw TACError("the model answered \(response.status.code): \(detail.prefix(300))")
        }
        var parser = ServerSentEvents()
        var calls = ToolCallAssembler()
        for try await chunk in response.body {
            for data in parser.feed(chunk.readableBytesView) {
                if data == "[DONE]" {
                    if let assembled = calls.assembled { yield(.toolCalls(assembled)) }
                    return
                }
                guard let event = try? JSONDecoder().decode(JSONValue.self, from: Data(data.utf8)) else { continue }
                if let message = event["error"]?["message"]?.string { throw TACError("the model failed: \(message)") }
                let delta = event["choices"]?.array?.first?["delta"]
                if let pieces = delta?["tool_calls"]?.array {
                    calls.add(pieces)
                    yield(nil)
                }
                if let piece = delta?["content"]?.string, !piece.isEmpty { yield(.text(piece)) }
            }
        }
        if let assembled = calls.assembled { yield(.toolCalls(assembled)) }
    }
}

/// Puts streamed tool calls together: each delta names its call by `index`; the id and name come
/// once, the arguments in pieces.
struct ToolCallAssembler {
    private var calls: [Int: ToolCallRequest] = [:]

    mutating func add(_ deltas: [JSONValue]) {
        for delta in deltas {
            let index = delta["index"]?.int ?? calls.count
            var call = calls[index] ?? ToolCallRequest(id: "", name: "", arguments: "")
            if let id = delta["id"]?.string, !id.isEmpty { call.id = id }
            if let name = delta["function"]?["name"]?.string { call.name += name }
            if let arguments = delta["function"]?["arguments"]?.string { call.arguments += arguments }
            calls[index] = call
        }
    }

    /// The calls in order, nil when there were none.
    var assembled: [ToolCallRequest]? {
        calls.isEmpty ? nil : calls.keys.sorted().compactMap { calls[$0] }
    }
}

/// Splits a `text/event-stream` body into the `data` of each event (multi-line data joined by `\n`).
package struct ServerSentEvents: Sendable {
    private var line: [UInt8] = []
    private var data: [String] = []

    package init() {}

    /// Feeds bytes; returns the events completed by them.
    package mutating func feed(_ bytes: some Sequence<UInt8>) -> [String] {
        var events: [String] = []
        for byte in bytes {
            guard byte == UInt8(ascii: "\n") else {
                line.append(byte)
                continue
            }
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            let text = String(decoding: line, as: UTF8.self)
            line.removeAll(keepingCapacity: true)
            if text.isEmpty {
                if !data.isEmpty { events.append(data.joined(separator: "\n")) }
                data.removeAll()
            } else if text.hasPrefix("data:") {
                var value = text.dropFirst(5)
                if value.first == " " { value = value.dropFirst() }
                data.append(String(value))
            }
        }
        return events
    }
}

extension BuiltInAgents {
    /// `openai`: answers with an OpenAI-compatible model. System prompt, memory prompts (per the
    /// channels' `memoryMode`) and the conversation's history (tool calls included) from PostgreSQL;
    /// on voice it speaks the first words while the model is still writing, and keeps answers
    /// short; on failure the customer gets an apology, never silence.
    ///
    /// With tools it runs the tool loop (``ToolLoop``): `tools` are offered on every turn, and so
    /// are the `builtIn` tools made for the turn's session (plus the handoff tool whenever
    /// `TWILIO_STUDIO_HANDOFF_FLOW_SID` is set). `OPENAI_TOOLS` adds built-in tools by name.
    package static func installOpenAI(on tac: TAC, tools: [AgentTool] = [], builtIn: [BuiltInTool] = []) throws {
        let client = OpenAIChatClient(configuration: try OpenAIConfiguration(environment: tac.configuration.environment))
        let voice = registerAllChannels(on: tac)
        let apology = client.configuration.apology
        let logger = tac.logger
        var builtIn = builtIn
        for name in tac.configuration.environment.list("OPENAI_TOOLS") {
            guard let tool = BuiltInTool(name: name) else {
                throw TACError("OPENAI_TOOLS: unknown tool \(name) (known: \(BuiltInTool.names.joined(separator: ", ")))")
            }
            builtIn.append(tool)
        }
        if tac.configuration.studioHandoffFlowSid != nil, !builtIn.contains(.handoff) { builtIn.append(.handoff) }
        let offered = builtIn
        tac.onMessageReady { message, session, memory in
            // An `end_call` of a turn that was cut off does not end a later one.
            _ = BuiltInTool.pendingEnds.withLockedValue { $0.remove(session.conversationId) }
            let messages = try await openAIMessages(tac: tac, client: client, message: message, session: session, memory: memory)
            let loop = ToolLoop(
                tac: tac, client: client, session: session,
                tools: tools + offered.flatMap { (try? $0.tools(tac: tac, session: session)) ?? [] })
            if session.channel == .voice {
                let tokens = loop.stream(messages, maxTokens: 200, filler: true).replacingFailure(with: apology, logger: logger)
                try await voice.sendResponse(conversationId: session.conversationId, response: tokens)
                if BuiltInTool.pendingEnds.withLockedValue({ $0.remove(session.conversationId) }) != nil {
                    try await voice.sendFrame(conversationId: session.conversationId, frame: ["type": "end"])
                }
                return nil
            }
            var reply = ""
            do {
                for try await piece in loop.stream(messages, maxTokens: nil, filler: false) { reply += piece }
            } catch {
                try Task.checkCancellation()
                logger.error("the model failed; apologising", metadata: ["conversation.id": "\(session.conversationId)", "error": "\(error)"])
                return apology
            }
            let text = reply.trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? apology : text
        }
    }

    /// The request's messages: instructions, memory, history (with the tool calls of earlier
    /// turns), the customer's message.
    static func openAIMessages(
        tac: TAC, client: OpenAIChatClient, message: String, session: ConversationSession, memory: TACMemoryResponse?
    ) async throws -> [ChatMessage] {
        var system = client.configuration.systemPrompt
        if session.channel == .voice {
            system += "\nYou are speaking on a phone call: answer in one or two short sentences, in plain spoken words, without lists or markdown."
        }
        var messages: [ChatMessage] = [.system(system)]
        let prompts = memory?.buildMemoryPrompts() ?? []
        if !prompts.isEmpty { messages.append(.system(prompts.joined(separator: "\n\n"))) }
        let runtime = try tac.workerRuntime()
        let limit = tac.configuration.historyLimit
        async let said = runtime.store.history(conversationId: session.conversationId, limit: limit)
        async let called = runtime.store.toolCalls(conversationId: session.conversationId, limit: limit)
        // This turn's own calls (a redone turn) are not history yet: the loop finds them by id.
        let turnPrefix = TurnContext.current.map { ToolLoop.roundPrefix(turnKey: $0.event.id) }
        let calls = try await called.filter { turnPrefix == nil || !$0.roundId.hasPrefix(turnPrefix ?? "") }
        messages += ToolLoop.history(messages: try await said, toolCalls: calls)
        messages.append(.user(message))
        return messages
    }
}

extension AsyncSequence where Self: Sendable, Element == String {
    /// The same tokens; if the source fails (not cancelled), the apology is spoken instead of silence.
    func replacingFailure(with apology: String, logger: Logger) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var spoken = false
                do {
                    for try await token in self {
                        spoken = true
                        continuation.yield(token)
                    }
                    if !spoken { continuation.yield(apology) }
                    continuation.finish()
                } catch {
                    if Task.isCancelled {
                        continuation.finish(throwing: CancellationError())
                        return
                    }
                    logger.error("the model failed mid-answer; apologising", metadata: ["error": "\(error)"])
                    continuation.yield(spoken ? " " + apology : apology)
                    continuation.finish()
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
