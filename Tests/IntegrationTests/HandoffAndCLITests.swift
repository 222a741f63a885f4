import AgentConnectCore
import EventBus
import Foundation
import RelayCaller
import Testing

@Suite("Handoff to a person, and the agentconnect CLI", .serialized)
struct HandoffAndCLITests {
    @Test("SMS handoff: INACTIVE, status callbacks cleared, Studio execution with HandoffData; the conversation ends once")
    func smsHandoff() async throws {
        try await withStack(TestStack.Options(workers: 0)) { stack in
            let bot = try await stack.launch("example-sms-bot", port: TestEnvironment.freePort(), extra: ["INSTANCE_ID": "bot"])
            let customer = "+15552230001"
            let id = try #require(try await stack.customerSays("can I talk to a human?", from: customer)["conversationId"]?.string)
            #expect(try await stack.replyTexts(conversationId: id, count: 1) == ["Connecting you with a person shortly."])

            let requests = try await stack.simRequests(path: "/v2/")
            let inactive = requests.first { $0["method"]?.string == "PUT" && $0["path"]?.string == "/v2/Conversations/\(id)" }
            #expect(inactive?["body"]?["status"]?.string == "INACTIVE")
            let patch = requests.first { $0["method"]?.string == "PATCH" && $0["path"]?.string == "/v2/Conversations/\(id)" }
            #expect(patch?["body"]?["configuration"]?["statusCallbacks"]?.array == [])
            let flow = try #require(stack.environment["TWILIO_STUDIO_HANDOFF_FLOW_SID"])
            let studio = try #require(requests.first { $0["path"]?.string == "/v2/Flows/\(flow)/Executions" })
            #expect(studio["form"]?["To"]?.string == customer)
            #expect(studio["form"]?["From"]?.string == stack.environment["TWILIO_PHONE_NUMBER"])
            let parameters = try JSONDecoder().decode(JSONValue.self, from: Data((studio["form"]?["Parameters"]?.string ?? "").utf8))
            #expect(parameters["HandoffData"]?["conversationId"]?.string == id)
            #expect(parameters["HandoffData"]?["attributes"]?["reason"]?.string == "the customer asked for a person")

            #expect(await eventually { (try? await stack.metric("agentconnect_conversations_ended_total", port: bot.port)) == 1 })
            // Closing it later (callbacks are cleared, and the row says ended) does not end it again.
            _ = try await stack.sim(.POST, "/sim/conversations/\(id)/close")
            #expect(await stack.settled())
            #expect(try await stack.metric("agentconnect_conversations_ended_total", port: bot.port) == 1)
            #expect(try await stack.count("SELECT count(*)::int FROM conversations WHERE id = '\(id)' AND ended_at IS NOT NULL") == 1)
        }
    }

    @Test(
        "voice handoff: the goodbye, then the end frame with handoffData; the conversation ends once (with calls on a Redis of their own, its end is there, once)",
        arguments: [false, true])
    func voiceHandoff(callsApart: Bool) async throws {
        let callsRedis = callsApart ? try await TestRedis.make() : nil
        var options = TestStack.Options(workers: 0, relays: 1)
        if let callsRedis { options.extra = ["VOICE_REDIS_URL": callsRedis.url] }
        try await withStack(options) { stack in
            let assistant = try await stack.launch("example-voice-assistant", port: TestEnvironment.freePort(), extra: ["INSTANCE_ID": "assistant"])
            let transcript = try await stack.call([.say("I want a human please"), .pause(.milliseconds(500))])
            #expect(transcript.turns.first?.text.trimmingCharacters(in: .whitespaces) == "Let me transfer you to a colleague. Goodbye!")
            let end = try #require(transcript.otherFrames.first { $0["type"]?.string == "end" })
            let data = try JSONDecoder().decode(JSONValue.self, from: Data((end["handoffData"]?.string ?? "").utf8))
            #expect(data["conversationId"]?.string == "conv_\(transcript.callSid)")
            #expect(data["attributes"]?["reason"]?.string == "caller asked for a human")
            #expect(data["attributes"]?["queue"]?.string == "billing")
            #expect(await eventually { (try? await stack.metric("agentconnect_conversations_ended_total", port: assistant.port)) == 1 })
            // The relay has torn the call down (its end published, "call ended" logged after) and the
            // worker has handled every inbound entry: a second end would have been counted by now.
            let relay = try #require(stack.processes("voice-relay").first)
            #expect(await eventually { relay.log.contains("call ended") }, "\(relay.log)")
            #expect(await stack.settled())
            #expect(try await stack.metric("agentconnect_conversations_ended_total", port: assistant.port) == 1)
            if let callsRedis {
                // The worker's end (the handoff) and the relay's (the socket closing) share a dedup key on the calls' Redis.
                let (main, calls) = (stack.redis.client(), callsRedis.client())
                defer {
                    main.shutdown()
                    calls.shutdown()
                }
                #expect(try await calls.inboundEvents().filter { $0.type == EventType.conversationEnded }.count == 1)
                #expect(try await main.inboundEvents().filter { $0.type == EventType.conversationEnded }.isEmpty)
            }
        }
    }

    /// Runs the CLI (``CLIRun/agentconnect(_:environment:timeout:)``); returns exit status, stdout and stderr.
    func cli(_ arguments: [String], environment: [String: String]) async throws -> (Int32, String, String) {
        let outcome = try await CLIRun.agentconnect(arguments, environment: environment)
        return (outcome.status, outcome.out, outcome.err)
    }

    @Test("agentconnect CLI starts a conversation and a call; a bad sender or no token fails with the reason")
    func commandLine() async throws {
        try await withStack(TestStack.Options(relays: 1)) { stack in
            let env = ["OUTBOUND_URL": "http://127.0.0.1:\(stack.outboundPort)", "OUTBOUND_API_TOKEN": stack.environment["OUTBOUND_API_TOKEN"] ?? ""]
            let customer = "+15552230002"
            let (status, out, _) = try await cli(
                ["conversation", "--channel", "sms", "--to", customer, "--message", "Your parcel is on its way", "--metadata", "order=42"],
                environment: env)
            #expect(status == 0)
            let conversationId = try #require(try JSONDecoder().decode(JSONValue.self, from: Data(out.utf8))["conversationId"]?.string)
            #expect(try await stack.agentMessages(to: customer).first?["text"]?.string == "Your parcel is on its way")
            let reply = try await stack.customerSays("thanks!", from: customer)
            #expect(reply["conversationId"]?.string == conversationId)
            #expect(try await stack.replyTexts(conversationId: conversationId, count: 2).last == "You said: thanks!")

            let (callStatus, callOut, _) = try await cli(["call", "--to", "+15552230003", "--greeting", "Hi from the CLI"], environment: env)
            #expect(callStatus == 0)
            #expect(callOut.contains("\"callSid\""))

            let (badStatus, _, badError) = try await cli(
                ["conversation", "--to", customer, "--message", "x", "--from", "+19999999999"], environment: env)
            #expect(badStatus != 0)
            #expect(badError.contains("400") && badError.contains(stack.environment["TWILIO_PHONE_NUMBER"] ?? "?"))
            let (noTokenStatus, _, noTokenError) = try await cli(
                ["conversation", "--to", customer, "--message", "x"], environment: ["OUTBOUND_URL": env["OUTBOUND_URL"] ?? ""])
            #expect(noTokenStatus != 0)
            #expect(noTokenError.contains("OUTBOUND_API_TOKEN"))
            let (wrongTokenStatus, _, wrongTokenError) = try await cli(
                ["conversation", "--to", customer, "--message", "x", "--token", "wrong"], environment: env)
            #expect(wrongTokenStatus != 0)
            #expect(wrongTokenError.contains("401"))
        }
    }
}
