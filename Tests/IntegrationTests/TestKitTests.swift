import AgentConnectCore
import AgentConnectTesting
import Foundation
import PostgresNIO
import Testing

/// The test kit tested by itself, against the echo agent: calls, messaging on every channel, and
/// failing expectations that fail with a readable message.
@Suite("AgentConnectTesting: the harness", .serialized)
struct TestKitTests {
    @Test("a call: say, reply, interrupt, keypad, hang-up; messaging on every channel")
    func conversations() async throws {
        let databaseURL = try await AgentHarness.run(agent: "agent-worker", environment: ["TAC_AGENT": "echo", "ECHO_TOKEN_DELAY_MS": "60"]) {
            harness in
            let call = try await harness.call(from: "+15558880001")
            try await call.say("hello there")
            // Paced 60 ms apart, the words come as they are written (tokens the relay reads together would come joined).
            let tokens = try await call.replyTokens()
            #expect(tokens.joined() == "You said: hello there")
            #expect(tokens.count > 1)
            try await call.say("tell me a long story about many things")
            let heard = try await call.interrupt(afterTokens: 2)
            #expect(heard.hasPrefix("You said: "), "\(heard)")
            try await call.press("5")
            try await call.say("are you there")
            try await call.expectReply(contains: "are you there")
            try await call.hangUp()

            for (channel, customer) in [
                ("sms", "+15558880002"), ("whatsapp", "whatsapp:+15558880002"), ("rcs", "rcs:+15558880002"), ("chat", "kit-customer"),
            ] {
                let conversation = harness.conversation(from: customer, channel: channel)
                try await conversation.send("hi on \(channel)")
                #expect(try await conversation.reply() == "You said: hi on \(channel)")
                try await conversation.send("again")
                try await conversation.expectReply(contains: "You said: again")
            }
            return harness.databaseURL
        }
        // The harness dropped its own database when it stopped.
        let name = try #require(databaseURL.split(separator: "/").last.map(String.init))
        #expect(name.hasPrefix("harness_"))
        let connection = try await PostgresConnection.connect(
            configuration: .init(
                host: "127.0.0.1", port: TestEnvironment.postgresPort, username: "agentconnect", password: nil, database: "postgres", tls: .disable),
            id: 1, logger: TestEnvironment.logger)
        // DROP DATABASE waits for a checkpoint: on a loaded machine it may take seconds.
        var left = -1
        do {
            let deadline = ContinuousClock.now + .seconds(30)
            repeat {
                let rows = try await connection.query("SELECT count(*)::int FROM pg_database WHERE datname = \(name)", logger: TestEnvironment.logger)
                for try await count in rows.decode(Int.self) { left = count }
                if left != 0 { try await Task.sleep(for: .milliseconds(200)) }
            } while left != 0 && ContinuousClock.now < deadline
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
        #expect(left == 0)
    }

    @Test("a failing expectation fails the test with what the agent said")
    func failingExpectation() async throws {
        try await AgentHarness.run(agent: "agent-worker", environment: ["TAC_AGENT": "echo"]) { harness in
            let sms = harness.conversation(from: "+15558880003")
            try await sms.send("hello")
            try await withKnownIssue {
                try await sms.expectReply(contains: "goodbye")
            } matching: { issue in
                issue.description.contains(#"expected the reply to contain "goodbye", but the agent wrote: "You said: hello""#)
            }
            let call = try await harness.call(from: "+15558880004")
            try await call.say("hi")
            try await withKnownIssue {
                try await call.expectToolCalls(["check_order"])
            } matching: { issue in
                issue.description.contains(#"expected the tool calls ["check_order"], but the agent called []"#)
            }
        }
    }
}

@Suite("AgentConnectTesting: tool calls and model-graded expectations", .serialized)
struct TestKitModelTests {
    @Test("expected tool calls on a call and a conversation; a judge grades replies, and its FAIL is a readable issue")
    func toolsAndJudge() async throws {
        let model = try await ScriptedModel.start { request in
            let messages = request["messages"]?.array ?? []
            if messages.first?["content"]?.string?.hasPrefix("You check the replies") == true {
                let graded = (messages.last?["content"]?.string ?? "").components(separatedBy: "Reply:\n").last ?? ""
                return .init(chunks: [
                    .text(graded.contains("callback") ? "PASS: it apologises and offers a callback." : "FAIL: it offers no callback.")
                ])
            }
            if ScriptedModel.toolMessages(request).isEmpty {
                return .init(chunks: [.tool(index: 0, id: "c1", name: "check_order", arguments: #"{"orderId":"A-1001"}"#)])
            }
            return .init(chunks: [.text("Sorry for the wait: A-1001 has shipped."), .text(" Shall I arrange a callback?")])
        }
        defer { model.stop() }
        let judge = ModelJudge(baseURL: model.baseURL, model: "judge")
        try await AgentHarness.run(agent: "example-tool-agent", environment: ["OPENAI_BASE_URL": model.baseURL]) { harness in
            let call = try await harness.call(from: "+15558880005")
            try await call.say("where is A-1001?")
            try await call.expectReply(satisfies: "apologises and offers a callback", judge: judge)
            try await call.expectToolCalls(["check_order"])

            let sms = harness.conversation(from: "+15558880006")
            try await sms.send("where is A-1001?")
            let reply = try await sms.reply()
            #expect(try await sms.toolCalls().map(\.name) == ["check_order"])
            #expect(try await sms.toolCalls().first?.result.contains("shipped") == true)
            try await withKnownIssue {
                try await judge.expect("A-1001 has shipped.", satisfies: "offers a callback")
            } matching: { issue in
                issue.description.contains(
                    #"the reply does not satisfy "offers a callback": it offers no callback. — the reply was: "A-1001 has shipped.""#)
            }
            #expect(reply.contains("callback"))
        }
    }
}
