import AgentConnectCore
import Foundation
import PostgresNIO
import RelayCaller
import Store
import Testing

/// Helpers shared by the SDK, example and model tests.
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

@Suite("SDK: memory modes, Conversation Intelligence results", .serialized)
struct SDKMemoryTests {
    @Test("memory reads per memoryMode: always on every message, never none, once once per call until INACTIVE (runs as always on messaging)")
    func memoryModes() async throws {
        var options = TestStack.Options(relays: 1)
        options.extra = [
            "TAC_SMS_MEMORY_MODE": "always", "TAC_WHATSAPP_MEMORY_MODE": "never", "TAC_VOICE_MEMORY_MODE": "once", "TAC_CHAT_MEMORY_MODE": "once",
        ]
        try await withStack(options) { stack in
            let worker = try #require(stack.processes("agent-worker").first)
            func reads(_ channel: String) async throws -> Double {
                try await stack.metric("agentconnect_memory_reads_total", port: worker.port, matching: "channel=\"\(channel)\"")
            }
            for channel in ["sms", "whatsapp", "chat"] {
                let from = channel == "whatsapp" ? "whatsapp:+15553330001" : channel == "chat" ? "chat-customer-1" : "+15553330001"
                let first = try await stack.customerSays("first", channel: channel, from: from)
                let conversationId = try #require(first["conversationId"]?.string)
                _ = try await stack.replyTexts(conversationId: conversationId, count: 1)
                try await stack.customerSays("second", channel: channel, from: from)
                _ = try await stack.replyTexts(conversationId: conversationId, count: 2)
            }
            #expect(try await reads("sms") == 2)
            #expect(try await reads("whatsapp") == 0)
            #expect(try await reads("chat") == 2)

            let sid = "CAmemoryonce0000000000000000000001"
            let configuration = stack.environment["TWILIO_CONVERSATION_CONFIGURATION_ID"] ?? ""
            let transcript = try await stack.call(
                [
                    .say("one"), .say("two"),
                    .sayWithAction(
                        "three", afterTokens: 1,
                        action: {
                            // The orchestrator marks the conversation INACTIVE (it writes memory then).
                            let conversationId = "conv_\(sid)"
                            _ = try? await stack.orchestratorEvent(
                                "CONVERSATION_UPDATED",
                                ["id": .string(conversationId), "configurationId": .string(configuration), "status": "INACTIVE"])
                            _ = await eventually {
                                (try? await stack.count(
                                    "SELECT count(*)::int FROM conversations WHERE id = '\(conversationId)' AND status = 'INACTIVE'")) == 1
                            }
                        }),
                    .say("four"),
                ], callSid: sid)
            #expect(transcript.turns.map(\.text) == ["You said: one", "You said: two", "You said: three", "You said: four"])
            #expect(try await reads("voice") == 2)
        }
    }

    @Test("/ci-webhook operator results become summaries and observations on the customer's profile, once; other configurations are skipped")
    func intelligenceResults() async throws {
        var options = TestStack.Options()
        options.extra = [
            "CONVERSATION_INTELLIGENCE_CONFIGURATION_ID": "GAtest", "CONVERSATION_INTELLIGENCE_SUMMARY_OPERATOR_SID": "LYsummary",
            "CONVERSATION_INTELLIGENCE_OBSERVATION_OPERATOR_SID": "LYobservation",
        ]
        try await withStack(options) { stack in
            let sent = try await stack.customerSays("I want to change my plan", from: "+15553330100")
            let conversationId = try #require(sent["conversationId"]?.string)
            _ = try await stack.replyTexts(conversationId: conversationId, count: 1)
            _ = await eventually { (try? await stack.count("SELECT count(*)::int FROM messages WHERE conversation_id = '\(conversationId)'")) == 2 }
            func event(configuration: String) -> JSONValue {
                [
                    "accountId": "ACsim", "conversationId": .string(conversationId), "memoryStoreId": "mem_store_1",
                    "intelligenceConfiguration": ["id": .string(configuration), "friendlyName": "CONVERSATION_MEMORY", "version": 1],
                    "operatorResults": [
                        [
                            "id": "intelligence_operatorresult_1", "operator": ["id": "LYsummary", "friendlyName": "Summary Extractor"],
                            "outputFormat": "JSON", "result": ["payload": #"{"summary":"Customer wants to change their plan"}"#],
                            "dateCreated": "2026-11-21T10:30:45Z",
                            "executionDetails": ["participants": [["id": "comms_participant_1", "type": "CUSTOMER"]]],
                        ],
                        [
                            "id": "intelligence_operatorresult_2", "operator": ["id": "LYobservation"], "outputFormat": "TEXT",
                            "result": ["result": "Is price sensitive"], "executionDetails": ["participants": []],
                        ],
                        [
                            "id": "intelligence_operatorresult_3", "operator": ["id": "LYother"], "outputFormat": "TEXT",
                            "result": ["result": "ignored"],
                        ],
                    ],
                ]
            }
            for configuration in ["GAtest", "GAtest", "GAsomeoneelse"] {
                let answer = try await stack.sim(
                    .POST, "/sim/webhooks", ["path": "/ci-webhook", "token": .string(UUID().uuidString), "body": event(configuration: configuration)])
                #expect(answer["status"]?.double == 200)
            }
            let profileQuery = "SELECT profile_id FROM profile_identifiers WHERE value = '+15553330100'"
            #expect(await eventually { (try? await stack.count("SELECT count(*)::int FROM conversation_summaries")) == 1 })
            try await Task.sleep(for: .milliseconds(500))
            let summaries = try await stack.strings(
                "SELECT content || '|' || source FROM conversation_summaries WHERE profile_id = (\(profileQuery))")
            let observations = try await stack.strings("SELECT content FROM observations WHERE profile_id = (\(profileQuery))")
            #expect(summaries == ["Customer wants to change their plan|conversation-intelligence"])
            #expect(observations == ["Is price sensitive"])
        }
    }
}
