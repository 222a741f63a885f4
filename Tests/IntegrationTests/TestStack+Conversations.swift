import AgentConnectCore
import Foundation
import PostgresNIO
import RelayCaller
import Testing

/// Helpers shared by the SDK, example and model tests: calls, SQL counts, Orchestrator events, replies.
extension TestStack {
    func caller(relay: Int = 0) -> RelayCaller {
        var caller = RelayCaller(relayURL: "http://127.0.0.1:\(relayPorts[relay])", authToken: environment["TWILIO_AUTH_TOKEN"] ?? "")
        caller.replyTimeout = .seconds(15)
        return caller
    }

    /// A ConversationRelay call straight to the first relay, running `script`. The conversation id
    /// (`conv_<CallSid>`) comes from the signed voice webhook URL (`/twiml?conversationId=…`), which
    /// the relay puts in the TwiML's `<Parameter>` and the call's token, so no orchestrator lookup is needed.
    func call(
        _ script: [RelayCaller.Step], callSid: String = "CA" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(32).lowercased(),
        from: String = "+15556660000"
    ) async throws -> RelayCaller.Transcript {
        let caller = caller()
        let agent = environment["TWILIO_PHONE_NUMBER"] ?? ""
        let (url, _) = try await caller.fetchTwiML(callSid: callSid, from: from, to: agent, query: [("conversationId", "conv_\(callSid)")])
        return try await caller.call(
            publicURL: url, callSid: callSid, from: from, to: agent, script: script, customParameters: ["conversationId": "conv_\(callSid)"])
    }

    /// A call to one relay as Twilio places it (TwiML first, then the socket); nil when it could not be placed.
    func placeCall(relay: Int, sid: String, from: String, script: [RelayCaller.Step]) async -> RelayCaller.Transcript? {
        let caller = caller(relay: relay)
        let callSid = sid + String(repeating: "0", count: max(0, 34 - sid.count))
        guard let (url, _) = try? await caller.fetchTwiML(callSid: callSid, from: from, to: "+15550000001") else { return nil }
        return try? await caller.call(publicURL: url, callSid: callSid, from: from, to: "+15550000001", script: script)
    }

    /// The sim's record of a call placed through outbound, once the sim has answered it and spoken
    /// (`turns`) or given up (`error`); `.null` when neither came within `timeout`.
    func placedCall(_ callSid: String, timeout: Duration = .seconds(20)) async -> JSONValue {
        var call: JSONValue = .null
        _ = await eventually(timeout: timeout) {
            call = (try? await sim(.GET, "/sim/calls/\(callSid)")) ?? .null
            return call["turns"] != nil || call["error"] != nil
        }
        return call
    }

    /// Integers from a one-column SQL query on the stack's database.
    func count(_ sql: String) async throws -> Int {
        try await database.withClient { client in
            var value = 0
            for try await count in try await client.query(PostgresQuery(unsafeSQL: sql)).decode(Int.self) { value = count }
            return value
        }
    }

    /// Strings from a one-column SQL query on the stack's database.
    func strings(_ sql: String) async throws -> [String] {
        try await database.withClient { client in
            var values: [String] = []
            for try await value in try await client.query(PostgresQuery(unsafeSQL: sql)).decode(String.self) { values.append(value) }
            return values
        }
    }

    /// A signed Conversation Orchestrator event through the sim to messaging-ingress.
    func orchestratorEvent(_ type: String, _ data: JSONValue, path: String = "/webhook") async throws -> JSONValue {
        try await sim(
            .POST, "/sim/webhooks", ["path": .string(path), "token": .string(UUID().uuidString), "body": ["eventType": .string(type), "data": data]])
    }

    /// The reply texts of a conversation, waiting for `count`.
    func replyTexts(conversationId: String, count: Int) async throws -> [String] {
        try await agentMessages(conversationId: conversationId, count: count).compactMap { $0["text"]?.string }
    }
}
