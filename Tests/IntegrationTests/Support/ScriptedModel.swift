import AgentConnectCore
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// An OpenAI-compatible server in the test process that answers each Chat Completions request with
/// what `respond` makes of it: streamed text, tool calls with their arguments in pieces, pauses, or
/// an error status. Records the requests, when each started, and streams cut off by the client.
/// `/v1/embeddings` answers with ``embedding(_:)`` of each input.
final class ScriptedModel: Sendable {
    enum Chunk: Sendable {
        case text(String)
        /// A piece of a tool call: the first piece of a call carries its id and name.
        case tool(index: Int, id: String? = nil, name: String? = nil, arguments: String = "")
        case pause(Duration)
    }

    struct Reply: Sendable {
        var chunks: [Chunk]
        var status = 200
        /// Between chunks.
        var delay: Duration = .milliseconds(5)
    }

    private struct State {
        var requests: [JSONValue] = []
        var started: [ContinuousClock.Instant] = []
        var aborted = 0
        var embeddings = 0
    }

    private let state = NIOLockedValueBox(State())
    private let task: NIOLockedValueBox<Task<Void, any Error>?> = NIOLockedValueBox(nil)
    private let boundPort = NIOLockedValueBox<Int?>(nil)

    var port: Int { boundPort.withLockedValue { $0 } ?? 0 }
    var baseURL: String { "http://127.0.0.1:\(port)/v1" }
    var requests: [JSONValue] { state.withLockedValue(\.requests) }
    var started: [ContinuousClock.Instant] { state.withLockedValue(\.started) }
    var aborted: Int { state.withLockedValue(\.aborted) }
    var embeddingRequests: Int { state.withLockedValue(\.embeddings) }

    /// Starts the server; `respond` gets each request's JSON body.
    static func start(_ respond: @escaping @Sendable (JSONValue) -> Reply) async throws -> ScriptedModel {
        let model = ScriptedModel()
        let router = Router()
        router.post("/v1/chat/completions") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 4 << 20)
            let json = (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: body))) ?? .null
            model.state.withLockedValue {
                $0.requests.append(json)
                $0.started.append(.now)
            }
            let reply = respond(json)
            guard reply.status == 200 else {
                return Response(
                    status: HTTPResponse.Status(code: reply.status), headers: [.contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"error":{"message":"scripted failure"}}"#)))
            }
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream"],
                body: ResponseBody { writer in
                    do {
                        for chunk in reply.chunks {
                            try await Task.sleep(for: reply.delay)
                            let delta: JSONValue
                            switch chunk {
                            case .pause(let duration):
                                try await Task.sleep(for: duration)
                                continue
                            case .text(let text):
                                delta = ["content": .string(text)]
                            case .tool(let index, let id, let name, let arguments):
                                var function: [String: JSONValue] = ["arguments": .string(arguments)]
                                if let name { function["name"] = .string(name) }
                                var call: [String: JSONValue] = ["index": .number(Double(index)), "function": .object(function)]
                                if let id {
                                    call["id"] = .string(id)
                                    call["type"] = "function"
                                }
                                delta = ["tool_calls": [.object(call)]]
                            }
                            let event: JSONValue = ["object": "chat.completion.chunk", "choices": [["index": 0, "delta": delta]]]
                            try await writer.write(ByteBuffer(string: "data: \(event.compactJSON)\n\n"))
                        }
                        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                        try await writer.finish(nil)
                    } catch {
                        model.state.withLockedValue { $0.aborted += 1 }
                        throw error
                    }
                })
        }
        router.post("/v1/embeddings") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 4 << 20)
            let json = (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: body))) ?? .null
            model.state.withLockedValue { $0.embeddings += 1 }
            let inputs = json["input"]?.array?.compactMap(\.string) ?? json["input"]?.string.map { [$0] } ?? []
            let data: [JSONValue] = inputs.enumerated().map { index, text in
                ["object": "embedding", "index": .number(Double(index)), "embedding": .array(ScriptedModel.embedding(text).map { .number($0) })]
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: JSONValue.object(["object": "list", "data": .array(data)]).compactJSON)))
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in model.boundPort.withLockedValue { $0 = channel.localAddress?.port } })
        model.task.withLockedValue { $0 = Task { try await app.runService(gracefulShutdownSignals: []) } }
        let deadline = ContinuousClock.now + .seconds(10)
        while model.boundPort.withLockedValue({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard model.boundPort.withLockedValue({ $0 }) != nil else { throw TestFailure("the scripted model did not start") }
        return model
    }

    func stop() {
        task.withLockedValue { $0?.cancel() }
    }

    /// A fake embedding: concepts, not words, so paraphrases land near each other. Each dimension
    /// counts the words of one synonym group.
    static func embedding(_ text: String) -> [Double] {
        let groups: [[String]] = [
            ["refund", "refunds", "money", "back", "reimburse", "reimbursed", "return", "returns"],
            ["ship", "shipping", "delivery", "deliver", "arrive", "arrives", "parcel", "package"],
            ["password", "login", "sign", "account", "locked", "credentials"],
            ["hours", "open", "opening", "close", "closing", "time", "weekend"],
            ["price", "cost", "plan", "plans", "pricing", "pay", "monthly"],
        ]
        let words = text.lowercased().split { !$0.isLetter }.map(String.init)
        return groups.map { group in Double(words.filter(group.contains).count) } + [0.01]
    }

    /// The tool messages (role `tool`) of a request.
    static func toolMessages(_ request: JSONValue) -> [JSONValue] {
        (request["messages"]?.array ?? []).filter { $0["role"]?.string == "tool" }
    }
}
