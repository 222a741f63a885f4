import AgentConnectCore
import AgentConnectTesting
import Foundation
import RelayCaller
import Testing

/// The built-in `openai` agent's tool loop, through example-tool-agent (a typed `check_order` tool
/// that takes `ORDER_LOOKUP_DELAY_MS`) and agent-worker's built-in tools, against a scripted model.
@Suite("Tool loop against a scripted model", .serialized)
struct ToolLoopTests {
    static let orderCalls: [ScriptedModel.Chunk] = [
        .tool(index: 0, id: "call_model_1", name: "check_order"), .tool(index: 1, id: "call_model_2", name: "check_order"),
        .tool(index: 0, arguments: #"{"order"#), .tool(index: 1, arguments: #"{"orderId":"#),
        .tool(index: 0, arguments: #"Id":"A-1001"}"#), .tool(index: 1, arguments: #""Z-9"}"#),
    ]

    func withToolAgent<T>(_ model: ScriptedModel, relays: Int = 0, extra: [String: String] = [:], _ body: (TestStack) async throws -> T) async throws
        -> T
    {
        var options = TestStack.Options(workers: 0, relays: relays)
        // No worker is killed here: a lease long enough that a slow machine never redoes a turn
        // (a redo would ask the model again, and the tests count its requests).
        options.extra = ["OPENAI_BASE_URL": model.baseURL, "OPENAI_TIMEOUT_MS": "6000", "AGENT_LEASE_TTL_MS": "10000"].merging(extra) { $1 }
        return try await withStack(options) { stack in
            try await stack.launch("example-tool-agent", port: TestEnvironment.freePort(), extra: ["INSTANCE_ID": "tool-agent"])
            return try await body(stack)
        }
    }

    @Test("messaging: two calls streamed in pieces run at once, a failing tool becomes a message, the answer follows; history holds the calls")
    func messaging() async throws {
        let model = try await ScriptedModel.start { request in
            ScriptedModel.toolMessages(request).isEmpty
                ? .init(chunks: Self.orderCalls)
                : .init(chunks: [.text("A-1001 has shipped"), .text(" and arrives Thursday;"), .text(" I found no order Z-9.")])
        }
        defer { model.stop() }
        try await withToolAgent(model, extra: ["ORDER_LOOKUP_DELAY_MS": "1500"]) { stack in
            let customer = "+15557770001"
            let id = try #require(try await stack.customerSays("where are A-1001 and Z-9?", from: customer)["conversationId"]?.string)
            #expect(try await stack.replyTexts(conversationId: id, count: 1) == ["A-1001 has shipped and arrives Thursday; I found no order Z-9."])

            let requests = model.requests
            #expect(requests.count == 2)
            let offered = requests.first?["tools"]?.array ?? []
            let checkOrder = try #require(offered.first { $0["function"]?["name"]?.string == "check_order" })
            #expect(checkOrder["function"]?["parameters"]?["properties"]?["orderId"]?["description"]?.string == "The order number, like A-1001.")
            #expect(checkOrder["function"]?["parameters"]?["required"] == ["orderId"])
            #expect(offered.contains { $0["function"]?["name"]?.string == "text_customer" })

            // Both lookups ran at once: the one that finished last started before the other finished.
            // Each call's end is when its record was made (right after the handler returned), its start
            // that end less the duration the worker logged; run one after the other, the later one would
            // start only after the earlier one's record was made. Load stretches both alike.
            let agent = try #require(stack.processes("example-tool-agent").first)
            var intervals: [(start: Double, end: Double)] = []
            for row in try await stack.strings(
                "SELECT id || ' ' || extract(epoch FROM created_at)::text FROM tool_calls WHERE conversation_id = '\(id)' ORDER BY created_at")
            {
                let fields = row.split(separator: " ")
                let logged = agent.log.split(separator: "\n").first { $0.contains("tool called") && $0.contains("tool.call=\(fields[0]) ") }
                let duration = logged.flatMap { $0.firstMatch(of: /duration=([0-9.]+) seconds/) }.flatMap { Double($0.1) }
                let end = try #require(Double(fields[1]))
                let took = try #require(duration, "\(agent.log)")
                #expect(took >= 1.5)
                intervals.append((end - took, end))
            }
            #expect(intervals.count == 2 && intervals[1].start < intervals[0].end, "\(intervals)")

            let messages = requests[1]["messages"]?.array ?? []
            let asked = try #require(messages.first { $0["tool_calls"] != nil })
            let calls = asked["tool_calls"]?.array ?? []
            #expect(calls.map { $0["function"]?["arguments"]?.string } == [#"{"orderId":"A-1001"}"#, #"{"orderId":"Z-9"}"#])
            let ids = calls.compactMap { $0["id"]?.string }
            #expect(ids.count == 2 && ids.allSatisfy { $0.hasPrefix("call_") && !$0.hasPrefix("call_model") })
            let results = ScriptedModel.toolMessages(requests[1])
            #expect(results.map { $0["tool_call_id"]?.string } == ids)
            #expect(results.first?["content"]?.string?.contains(#""status":"shipped""#) == true)
            #expect(results.last?["content"]?.string?.contains("there is no order Z-9") == true)
            #expect(results.last?["content"]?.string?.contains(#""error""#) == true)

            _ = await eventually { (try? await stack.count("SELECT count(*)::int FROM messages WHERE conversation_id = '\(id)'")) == 2 }
            #expect(try await stack.count("SELECT count(*)::int FROM tool_calls WHERE conversation_id = '\(id)'") == 2)
            try await stack.customerSays("thanks", from: customer)
            _ = try await stack.replyTexts(conversationId: id, count: 2)
            let history = (model.requests.last?["messages"]?.array ?? []).filter { $0["role"]?.string != "system" }
            #expect(history.map { $0["role"]?.string ?? "" } == ["user", "assistant", "tool", "tool", "assistant", "user"])
            #expect(history[1]["tool_calls"]?.array?.compactMap { $0["id"]?.string } == ids)
        }
    }

    @Test("voice: a slow tool gets a filler first, then the answer streams token by token")
    func voiceFiller() async throws {
        let answer = ["Your", " order", " A-1002", " is", " being", " packed."]
        let model = try await ScriptedModel.start { request in
            ScriptedModel.toolMessages(request).isEmpty
                ? .init(chunks: [.tool(index: 0, id: "c1", name: "check_order", arguments: #"{"orderId":"A-1002"}"#)])
                : .init(chunks: answer.map { .text($0) }, delay: .milliseconds(150))
        }
        defer { model.stop() }
        try await withToolAgent(model, relays: 1, extra: ["ORDER_LOOKUP_DELAY_MS": "3000", "OPENAI_TOOL_FILLER_MS": "200"]) { stack in
            let transcript = try await stack.call([.say("where is my order A-1002?")])
            let turn = try #require(transcript.turns.first)
            #expect(turn.tokens.first == "One moment, please. ")
            #expect(turn.text == "One moment, please. " + answer.joined())
            let first = try #require(turn.firstToken)
            let done = try #require(turn.completed)
            // The filler is spoken while the 3 s lookup runs.
            #expect(first < .milliseconds(2500))
            #expect(done - first > .milliseconds(1000))
        }
    }

    @Test("voice: an interrupt during a slow tool cancels it; the model is not asked again")
    func interruptMidTool() async throws {
        let model = try await ScriptedModel.start { request in
            ScriptedModel.toolMessages(request).isEmpty
                ? .init(chunks: [.tool(index: 0, id: "c1", name: "check_order", arguments: #"{"orderId":"A-1001"}"#)])
                : .init(chunks: [.text("too late")])
        }
        defer { model.stop() }
        try await withToolAgent(model, relays: 1, extra: ["ORDER_LOOKUP_DELAY_MS": "5000", "OPENAI_TOOL_FILLER_MS": "200"]) { stack in
            let transcript = try await stack.call([.sayAndInterrupt("where is A-1001?", afterTokens: 1, settle: .milliseconds(800))])
            let turn = try #require(transcript.turns.first)
            #expect(turn.acknowledged)
            #expect(turn.lateTokens.isEmpty)
            let agent = try #require(stack.processes("example-tool-agent").first)
            #expect(await eventually(timeout: .seconds(10)) { agent.log.contains("order lookup cancelled") })
            #expect(model.requests.count == 1)
            #expect(try await stack.count("SELECT count(*)::int FROM tool_calls") == 0)
        }
    }

    @Test("rounds are bounded: after OPENAI_MAX_TOOL_ROUNDS the model is asked without tools and answers")
    func boundedRounds() async throws {
        let model = try await ScriptedModel.start { request in
            request["tools"] == nil
                ? .init(chunks: [.text("A-1001 has shipped.")])
                : .init(chunks: [.tool(index: 0, id: "again", name: "check_order", arguments: #"{"orderId":"A-1001"}"#)])
        }
        defer { model.stop() }
        try await withToolAgent(model, extra: ["OPENAI_MAX_TOOL_ROUNDS": "2"]) { stack in
            let id = try #require(try await stack.customerSays("status of A-1001?", from: "+15557770002")["conversationId"]?.string)
            #expect(try await stack.replyTexts(conversationId: id, count: 1) == ["A-1001 has shipped."])
            #expect(model.requests.count == 3)
            #expect(model.requests.last?["tools"] == nil)
            #expect(ScriptedModel.toolMessages(model.requests[2]).count == 2)
        }
    }
}

@Suite("Text the caller: faults", .serialized)
struct TextCustomerFaultTests {
    @Test("during a call the caller gets the SMS once, although the worker running the tool is killed mid-send and the turn is redone")
    func textOnceAcrossRedo() async throws {
        let model = try await ScriptedModel.start { request in
            ScriptedModel.toolMessages(request).isEmpty
                ? .init(chunks: [
                    .tool(index: 0, id: "c1", name: "text_customer", arguments: #"{"message":"Pay here: "#),
                    .tool(index: 0, arguments: #"https://acme.example/pay/42"}"#),
                ])
                : .init(chunks: [.text("I've texted you the link.")])
        }
        defer { model.stop() }
        var options = TestStack.Options(workers: 2, relays: 1)
        // LOG_LEVEL debug: the worker running the turn is found by its `turn` line, which is debug.
        options.extra = [
            "TAC_AGENT": "openai", "OPENAI_BASE_URL": model.baseURL, "OPENAI_TIMEOUT_MS": "6000", "OPENAI_TOOLS": "text_customer",
            "LOG_LEVEL": "debug",
        ]
        try await withFaultStack(options) { stack in
            let caller = "+15557770003"
            // Twilio accepts the SMS but answers late: the worker is killed while the tool waits.
            _ = try await stack.sim(
                .POST, "/sim/faults", ["status": 200, "afterAccept": true, "delayMs": 3000, "count": 1, "pathContains": "/Actions"])
            let callSid = "CA" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(32).lowercased()
            async let transcript = stack.call([.say("text me the payment link")], callSid: callSid, from: caller)
            #expect(await eventually(timeout: .seconds(15)) { (try? await stack.simRequests(path: "/Actions").count) ?? 0 >= 1 })
            let owner = try #require(stack.processes("agent-worker").first { $0.log.contains("conv_\(callSid)") })
            _ = await owner.signal(SIGKILL, timeout: .seconds(5))
            let finished = try await transcript
            let turn = try #require(finished.turns.first)
            #expect(turn.text.hasSuffix("I've texted you the link."))
            let texts = try await stack.agentMessages(to: caller, count: 2, waitMs: 3000)
            #expect(texts.count == 1)
            #expect(texts.first?["text"]?.string == "Pay here: https://acme.example/pay/42")
            #expect(model.requests.count >= 3)
        }
    }
}

@Suite("Built-in call tools, scripted with the test kit", .serialized)
struct CallToolTests {
    @Test("end_call: the caller hears the goodbye, then the call ends; transfer_call: the end frame carries the handoff")
    func endAndTransfer() async throws {
        let model = try await ScriptedModel.start { request in
            let said = (request["messages"]?.array ?? []).last { $0["role"]?.string == "user" }?["content"]?.string ?? ""
            guard ScriptedModel.toolMessages(request).isEmpty || !said.contains("bye") && !said.contains("person") else {
                return .init(chunks: [.text(said.contains("bye") ? "Goodbye!" : "Connecting you now.")])
            }
            if said.contains("bye") { return .init(chunks: [.tool(index: 0, id: "e", name: "end_call", arguments: "{}")]) }
            if said.contains("person") {
                return .init(chunks: [.tool(index: 0, id: "t", name: "transfer_call", arguments: #"{"reason":"asked for a person"}"#)])
            }
            return .init(chunks: [.text("Hello!")])
        }
        defer { model.stop() }
        let environment = ["TAC_AGENT": "openai", "OPENAI_BASE_URL": model.baseURL, "OPENAI_TOOLS": "end_call,transfer_call"]
        try await AgentHarness.run(agent: "agent-worker", environment: environment) { harness in
            let call = try await harness.call(from: "+15557770010")
            try await call.say("hi")
            #expect(try await call.reply() == "Hello!")
            try await call.say("thanks, bye")
            #expect(try await call.reply() == "Goodbye!")
            #expect(try await call.waitForEnd() == .null)
            try await call.expectToolCalls(["end_call"])

            let transferred = try await harness.call(from: "+15557770011")
            try await transferred.say("can I talk to a person")
            #expect(try await transferred.reply() == "Connecting you now.")
            let handoff = try await transferred.waitForEnd()
            #expect(handoff["attributes"]?["reason"]?.string == "asked for a person")
            try await transferred.expectToolCalls(["transfer_call"])
            let offered = model.requests.first?["tools"]?.array?.compactMap { $0["function"]?["name"]?.string } ?? []
            #expect(offered.contains("end_call") && offered.contains("transfer_call"))
        }
    }
}
