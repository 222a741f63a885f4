import AgentConnectCore
import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

/// Model-graded expectations ("the reply apologises and offers a callback") through any
/// OpenAI-compatible Chat Completions endpoint. Deterministic expectations never need one.
///
/// ```swift
/// let judge = try #require(ModelJudge.fromEnvironment)   // AGENTCONNECT_JUDGE_BASE_URL, …
/// try await call.expectReply(satisfies: "apologises and offers a callback", judge: judge)
/// ```
public struct ModelJudge: Sendable {
    public var baseURL: String
    public var model: String
    public var apiKey: String?

    public init(baseURL: String, model: String, apiKey: String? = nil) {
        self.baseURL = baseURL
        self.model = model
        self.apiKey = apiKey
    }

    /// From `AGENTCONNECT_JUDGE_BASE_URL` (up to `/v1`), `AGENTCONNECT_JUDGE_MODEL` (default
    /// `gpt-4o-mini`) and `AGENTCONNECT_JUDGE_API_KEY` (else `OPENAI_API_KEY`); nil without a base URL.
    public static var fromEnvironment: ModelJudge? {
        let env = ProcessInfo.processInfo.environment
        guard let base = env["AGENTCONNECT_JUDGE_BASE_URL"], !base.isEmpty else { return nil }
        return ModelJudge(
            baseURL: base.hasSuffix("/") ? String(base.dropLast()) : base, model: env["AGENTCONNECT_JUDGE_MODEL"] ?? "gpt-4o-mini",
            apiKey: env["AGENTCONNECT_JUDGE_API_KEY"] ?? env["OPENAI_API_KEY"])
    }

    /// The verdict on one reply.
    public struct Verdict: Sendable, Equatable {
        public var passed: Bool
        /// The judge's one-sentence reason.
        public var reason: String
    }

    /// Asks the model whether `reply` meets `criterion`.
    public func grade(_ reply: String, criterion: String) async throws -> Verdict {
        let instructions = """
            You check the replies of a customer service agent in automated tests. Decide whether the reply meets the \
            criterion. Answer with PASS or FAIL, a colon, and one short sentence saying why.
            """
        let body: JSONValue = [
            "model": .string(model), "stream": false, "temperature": 0,
            "messages": [
                ["role": "system", "content": .string(instructions)],
                ["role": "user", "content": .string("Criterion: \(criterion)\n\nReply:\n\(reply)")],
            ],
        ]
        var request = HTTPClientRequest(url: baseURL + "/chat/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        request.body = .bytes(ByteBuffer(string: body.compactJSON))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let text = String(buffer: try await response.body.collect(upTo: 4 << 20))
        guard response.status == .ok else { throw HarnessError("the judge answered \(response.status.code): \(text.prefix(300))") }
        let answer = Self.content(text).trimmingCharacters(in: .whitespacesAndNewlines)
        let verdict = answer.uppercased()
        guard verdict.hasPrefix("PASS") || verdict.hasPrefix("FAIL") else {
            throw HarnessError("the judge answered neither PASS nor FAIL: \(answer)")
        }
        let reason = answer.dropFirst(4).drop { $0 == ":" || $0 == " " }
        return Verdict(passed: verdict.hasPrefix("PASS"), reason: String(reason))
    }

    /// The answer's text, from a JSON completion or (for servers that always stream) its events.
    static func content(_ body: String) -> String {
        if let json = try? JSONDecoder().decode(JSONValue.self, from: Data(body.utf8)),
            let content = json["choices"]?.array?.first?["message"]?["content"]?.string
        {
            return content
        }
        return body.split(separator: "\n").filter { $0.hasPrefix("data: ") }.compactMap { line in
            (try? JSONDecoder().decode(JSONValue.self, from: Data(line.dropFirst(6).utf8)))?["choices"]?.array?.first?["delta"]?["content"]?.string
        }.joined()
    }

    /// Records an issue with the judge's reason unless `reply` meets `criterion`.
    @discardableResult
    public func expect(_ reply: String, satisfies criterion: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Verdict {
        let verdict = try await grade(reply, criterion: criterion)
        if !verdict.passed {
            Issue.record(
                "the reply does not satisfy \"\(criterion)\": \(verdict.reason) — the reply was: \"\(reply)\"", sourceLocation: sourceLocation)
        }
        return verdict
    }
}

extension HarnessCall {
    /// Reads the next reply and has `judge` check it against `criterion` (an issue with the judge's reason if not).
    @discardableResult
    public func expectReply(satisfies criterion: String, judge: ModelJudge, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String
    {
        let reply = try await reply()
        try await judge.expect(reply, satisfies: criterion, sourceLocation: sourceLocation)
        return reply
    }
}

extension HarnessConversation {
    /// Reads the next reply and has `judge` check it against `criterion` (an issue with the judge's reason if not).
    @discardableResult
    public func expectReply(satisfies criterion: String, judge: ModelJudge, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String
    {
        let reply = try await reply()
        try await judge.expect(reply, satisfies: criterion, sourceLocation: sourceLocation)
        return reply
    }
}
