import AgentConnectCore
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// An OpenAI-compatible Chat Completions server in the test process: streams the scripted tokens as
/// server-sent events, `delay` apart, and records the requests and whether each stream was cut off
/// by the client.
final class FakeModel: Sendable {
    struct Script: Sendable {
        var tokens: [String]
        var delay: Duration = .milliseconds(10)
        /// Non-200 answers with an error body instead.
        var status: Int = 200
    }

    private struct State {
        var script: Script
        var requests: [JSONValue] = []
        var completed = 0
        var aborted = 0
        var started: [ContinuousClock.Instant] = []
        var abortedAt: [ContinuousClock.Instant] = []
    }

    private let state: NIOLockedValueBox<State>
    let port: Int
    private let task: Task<Void, any Error>

    var baseURL: String { "http://127.0.0.1:\(port)/v1" }
    var requests: [JSONValue] { state.withLockedValue(\.requests) }
    var completed: Int { state.withLockedValue(\.completed) }
    var aborted: Int { state.withLockedValue(\.aborted) }
    var abortedAt: [ContinuousClock.Instant] { state.withLockedValue(\.abortedAt) }

    func setScript(_ script: Script) {
        state.withLockedValue { $0.script = script }
    }

    private init(state: NIOLockedValueBox<State>, port: Int, task: Task<Void, any Error>) {
        self.state = state
        self.port = port
        self.task = task
    }

    static func start(_ script: Script) async throws -> FakeModel {
        let state = NIOLockedValueBox(State(script: script))
        let router = Router()
        router.post("/v1/chat/completions") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let json = (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: body))) ?? .null
            let script = state.withLockedValue { state -> Script in
                state.requests.append(json)
                state.started.append(.now)
                return state.script
            }
            guard script.status == 200 else {
                return Response(
                    status: HTTPResponse.Status(code: script.status), headers: [.contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"error":{"message":"scripted failure"}}"#)))
            }
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream"],
                body: ResponseBody { writer in
                    do {
                        for token in script.tokens {
                            try await Task.sleep(for: script.delay)
                            let chunk: JSONValue = [
                                "object": "chat.completion.chunk", "choices": [["index": 0, "delta": ["content": .string(token)]]],
                            ]
                            try await writer.write(ByteBuffer(string: "data: \(chunk.compactJSON)\n\n"))
                        }
                        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                        try await writer.finish(nil)
                        state.withLockedValue { $0.completed += 1 }
                    } catch {
                        state.withLockedValue {
                            $0.aborted += 1
                            $0.abortedAt.append(.now)
                        }
                        throw error
                    }
                })
        }
        let port = NIOLockedValueBox<Int?>(nil)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLockedValue { $0 = channel.localAddress?.port } })
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        let deadline = ContinuousClock.now + .seconds(10)
        while port.withLockedValue({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        guard let bound = port.withLockedValue({ $0 }) else { throw TestFailure("the fake model did not start") }
        return FakeModel(state: state, port: bound, task: task)
    }

    func stop() {
        task.cancel()
    }
}
