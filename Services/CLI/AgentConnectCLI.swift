import AgentConnectCore
import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore

/// `agentconnect`: starts conversations and calls through the outbound service's API (reads
/// `OUTBOUND_URL` and `OUTBOUND_API_TOKEN`, or `--url` / `--token`), and operator tooling: `doctor`
/// checks a deployment, `dead-letters` handles what consumers gave up on.
@main
struct AgentConnectCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentconnect", abstract: "Start conversations and calls through AgentConnect's outbound API; check and operate a deployment.",
        subcommands: [StartConversation.self, StartCall.self, Handoff.self, Doctor.self, DeadLetters.self, Knowledge.self])
}

/// Where the API is and how to authenticate.
struct APIOptions: ParsableArguments {
    @Option(help: "The outbound service's base URL (default: $OUTBOUND_URL, else http://127.0.0.1:8083).")
    var url: String?

    @Option(help: "Bearer token (default: $OUTBOUND_API_TOKEN).")
    var token: String?

    @Option(name: .customLong("idempotency-key"), help: "Retrying with the same key never starts twice.")
    var idempotencyKey: String?

    /// POSTs `body` and prints the answer; a non-2xx answer is an error naming the status and reason.
    func post(_ path: String, _ body: JSONValue) async throws {
        let environment = Environment.process()
        let base = (url ?? environment.string("OUTBOUND_URL", default: "http://127.0.0.1:8083")).trimmingSuffix("/")
        guard let token = token ?? environment.string("OUTBOUND_API_TOKEN") else {
            throw ValidationError("no token: pass --token or set OUTBOUND_API_TOKEN")
        }
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        if let idempotencyKey { request.headers.add(name: "Idempotency-Key", value: idempotencyKey) }
        request.body = .bytes(ByteBuffer(string: body.compactJSON))
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        } catch {
            throw CLIError("cannot reach \(base): \(error)")
        }
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        guard (200..<300).contains(response.status.code) else {
            let reason = (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)))?["error"]?.string ?? text
            throw CLIError("\(response.status.code): \(reason)")
        }
        print(text)
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `agentconnect conversation --channel sms --to +1… --message "…"`.
struct StartConversation: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conversation", abstract: "Start a messaging conversation with a first message.")

    @OptionGroup var api: APIOptions

    @Option(help: "sms, whatsapp, rcs or chat.")
    var channel: String = "sms"

    @Option(help: "The customer's address (+1…, whatsapp:+1…, rcs:…).")
    var to: String

    @Option(help: "One of the configured senders (default: the channel's first).")
    var from: String?

    @Option(help: "The first message.")
    var message: String

    @Option(name: .customLong("metadata"), parsing: .upToNextOption, help: "key=value pairs stored on the conversation.")
    var metadata: [String] = []

    func validate() throws {
        guard ["sms", "whatsapp", "rcs", "chat"].contains(channel.lowercased()) else {
            throw ValidationError("--channel must be sms, whatsapp, rcs or chat")
        }
        for pair in metadata where !pair.contains("=") { throw ValidationError("--metadata expects key=value, got \(pair)") }
    }

    func run() async throws {
        var body: [String: JSONValue] = ["channel": .string(channel.lowercased()), "to": .string(to), "message": .string(message)]
        if let from { body["from"] = .string(from) }
        if !metadata.isEmpty {
            body["metadata"] = JSONValue(
                Dictionary(
                    metadata.map { pair in
                        let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                        return (parts[0], parts.count > 1 ? parts[1] : "")
                    }, uniquingKeysWith: { _, last in last }))
        }
        try await api.post("/v1/conversations", .object(body))
    }
}

/// `agentconnect call --to +1… [--greeting "…"]`.
struct StartCall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "call", abstract: "Place a call that the agent answers through ConversationRelay.")

    @OptionGroup var api: APIOptions

    @Option(help: "The number to call.")
    var to: String

    @Option(help: "One of the configured numbers (default: the first).")
    var from: String?

    @Option(help: "What the agent says first.")
    var greeting: String?

    @Flag(help: "Ask for call status callbacks.")
    var statusCallback = false

    @Flag(help: "Ask for answering-machine detection.")
    var amd = false

    @Flag(help: "Record the call.")
    var record = false

    func run() async throws {
        var body: [String: JSONValue] = [
            "to": .string(to), "callOptions": ["statusCallback": .bool(statusCallback), "amd": .bool(amd), "record": .bool(record)],
        ]
        if let from { body["from"] = .string(from) }
        if let greeting { body["welcomeGreeting"] = .string(greeting) }
        try await api.post("/v1/calls", .object(body))
    }
}

/// `agentconnect handoff --conversation conv_… --reason "…"`.
struct Handoff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Hand a messaging conversation to the Studio flow (a person).")

    @OptionGroup var api: APIOptions

    @Option(help: "The conversation id.")
    var conversation: String

    @Option(help: "Why, for the person taking over.")
    var reason: String = "operator"

    func run() async throws {
        try await api.post("/v1/handoffs", ["conversationId": .string(conversation), "attributes": ["reason": .string(reason)]])
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
