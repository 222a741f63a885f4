import AgentConnectCore
import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One message of a Chat Completions request.
public struct ChatMessage: Sendable, Codable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
}

/// Settings of the `openai` agent: any OpenAI-compatible Chat Completions endpoint (OpenAI, Ollama, vLLM).
public struct OpenAIConfiguration: Sendable {
    /// `OPENAI_BASE_URL`, up to and including `/v1`.
    public var baseURL: String
    /// `OPENAI_API_KEY` (local servers often need none).
    public var apiKey: String?
    /// `OPENAI_MODEL`.
    public var model: String
    /// `OPENAI_SYSTEM_PROMPT`.
    public var systemPrompt: String
    /// `OPENAI_TIMEOUT_MS`: longest wait for the answer to start, and between two of its chunks.
    public var timeoutMilliseconds: Int
    /// What the customer hears or reads when the model fails: never silence.
    public var apology: String

    public init(environment: Environment) throws {
        baseURL = try environment.url("OPENAI_BASE_URL", default: "https://api.openai.com/v1")
        apiKey = environment.string("OPENAI_API_KEY")
        model = environment.string("OPENAI_MODEL", default: "gpt-4o-mini")
        systemPrompt = environment.string("OPENAI_SYSTEM_PROMPT", default: "You are a helpful, friendly customer service assistant.")
        timeoutMilliseconds = try environment.int("OPENAI_TIMEOUT_MS", default: 15_000, range: 100...600_000)
        apology = "Sorry, I'm having trouble answering right now. Please try again in a moment."
    }
}

/// A streaming Chat Completions client (server-sent events through AsyncHTTPClient).
public struct OpenAIChatClient: Sendable {
    public let configuration: OpenAIConfiguration
    let http: HTTPClient

    public init(configuration: OpenAIConfiguration, http: HTTPClient = .shared) {
        self.configuration = configuration
        self.http = http
    }

    /// The answer's text pieces as the model writes them. Cancelling the consumer cancels the
    /// upstream request; a stall longer than the timeout ends the stream with an error.
    public func stream(_ messages: [ChatMessage], maxTokens: Int? = nil) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { continuation in
            let lastProgress = NIOLockedValueBox(ContinuousClock.now)
            let timeout = Duration.milliseconds(configuration.timeoutMilliseconds)
            let task = Task {
                do {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            try await self.read(messages, maxTokens: maxTokens) { piece in
                                lastProgress.withLockedValue { $0 = .now }
                                continuation.yield(piece)
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

    private func read(_ messages: [ChatMessage], maxTokens: Int?, yield: @Sendable (String) -> Void) async throws {
        var body: JSONValue = [
            "model": .string(configuration.model), "stream": true,
            "messages": .array(messages.map { ["role": .string($0.role), "content": .string($0.content)] }),
        ]
        if let maxTokens, case .object(var members) = body {
            members["max_tokens"] = .number(Double(maxTokens))
            body = .object(members)
        }
        var request = HTTPClientRequest(url: configuration.baseURL + "/chat/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "text/event-stream")
        if let key = configuration.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        request.body = .bytes(ByteBuffer(string: body.compactJSON))
        let response = try await http.execute(request, timeout: .milliseconds(Int64(configuration.timeoutMilliseconds)))
        guard response.status == .ok else {
            let detail = (try? await response.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
            throw TACError("the model answered \(response.status.code): \(detail.prefix(300))")
        }
        var parser = ServerSentEvents()
        for try await chunk in response.body {
            for data in parser.feed(chunk.readableBytesView) {
                if data == "[DONE]" { return }
                guard let event = try? JSONDecoder().decode(JSONValue.self, from: Data(data.utf8)) else { continue }
                if let message = event["error"]?["message"]?.string { throw TACError("the model failed: \(message)") }
                if let piece = event["choices"]?.array?.first?["delta"]?["content"]?.string, !piece.isEmpty { yield(piece) }
            }
        }
    }
}

/// Splits a `text/event-stream` body into the `data` of each event (multi-line data joined by `\n`).
public struct ServerSentEvents: Sendable {
    private var line: [UInt8] = []
    private var data: [String] = []

    public init() {}

    /// Feeds bytes; returns the events completed by them.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [String] {
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
    /// channels' `memoryMode`) and the conversation's history from PostgreSQL; on voice it speaks
    /// the first words while the model is still writing, and keeps answers short; on failure the
    /// customer gets an apology, never silence.
    public static func installOpenAI(on tac: TAC) throws {
        let client = OpenAIChatClient(configuration: try OpenAIConfiguration(environment: tac.configuration.environment))
        let voice = registerAllChannels(on: tac)
        let apology = client.configuration.apology
        let logger = tac.logger
        tac.onMessageReady { message, session, memory in
            let messages = try await openAIMessages(tac: tac, client: client, message: message, session: session, memory: memory)
            if session.channel == .voice {
                let tokens = client.stream(messages, maxTokens: 200).replacingFailure(with: apology, logger: logger)
                try await voice.sendResponse(conversationId: session.conversationId, response: tokens)
                return nil
            }
            var reply = ""
            do {
                for try await piece in client.stream(messages) { reply += piece }
            } catch {
                try Task.checkCancellation()
                logger.error("the model failed; apologising", metadata: ["conversation.id": "\(session.conversationId)", "error": "\(error)"])
                return apology
            }
            let text = reply.trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? apology : text
        }
    }

    /// The request's messages: instructions, memory, history, the customer's message.
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
        for item in try await tac.history(conversationId: session.conversationId) {
            messages.append(item.direction == "inbound" ? .user(item.text) : .assistant(item.text))
        }
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
