import AgentConnectCore
import EventBus
import Foundation
import RelayCaller
import Testing
import TwilioKit

@Suite("Edges: limits, outages, callbacks, draining")
struct EdgeCaseTests {
    static let token = TestEnvironment.localEnv["TWILIO_AUTH_TOKEN"] ?? ""

    /// A signed JSON webhook straight to messaging-ingress.
    static func signedWebhook(port: Int, body: [UInt8]) async throws -> TestStack.HTTPResult {
        let url = "http://127.0.0.1:\(port)/webhook?bodySHA256=\(TwilioSignature.bodyHash(body))"
        return try await TestStack.request(
            .POST, url, rawBody: body,
            headers: [("Content-Type", "application/json"), ("X-Twilio-Signature", TwilioSignature(authToken: token).compute(url: url))])
    }

    /// A signed form to any route, signed for `url` or, on voice-relay (which checks its public domain
    /// only), for the same path on `https://` (the tests' domain is the relay's own host:port).
    static func signedForm(_ url: String, _ fields: [(String, String)], publicHTTPS: Bool = false) async throws -> TestStack.HTTPResult {
        let signedURL = publicHTTPS ? url.replacingOccurrences(of: "http://", with: "https://") : url
        return try await TestStack.request(
            .POST, url, rawBody: Array(FormCoding.encode(fields).utf8),
            headers: [
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Twilio-Signature", TwilioSignature(authToken: token).compute(url: signedURL, params: fields)),
            ])
    }

    @Test("ingress: a body over the limit gets 413, unparseable JSON 400, and nothing is published")
    func limits() async throws {
        var options = TestStack.Options()
        options.workers = 0
        options.outbound = false
        options.extra["WEBHOOK_MAX_BODY_BYTES"] = "2048"
        try await withStack(options) { stack in
            let huge = try await Self.signedWebhook(port: stack.ingressPort, body: Array(repeating: UInt8(ascii: "a"), count: 10_000))
            #expect(huge.status == 413)
            let garbage = try await Self.signedWebhook(port: stack.ingressPort, body: Array(#"{"eventType": "COMMUNICATION_CREA"#.utf8))
            #expect(garbage.status == 400)
            let notObject = try await Self.signedWebhook(port: stack.ingressPort, body: Array("[1,2]".utf8))
            #expect(notObject.status == 400)
            let invalidUTF8 = try await Self.signedWebhook(port: stack.ingressPort, body: [0xff, 0xfe, 0x7b])
            #expect(invalidUTF8.status == 400)
            let ignored = try await Self.signedWebhook(port: stack.ingressPort, body: Array(#"{"eventType":"PARTICIPANT_UPDATED","data":{}}"#.utf8))
            #expect(ignored.status == 200)
            #expect(try await stack.inboundLength() == 0)
            #expect(stack.processes("messaging-ingress").first?.isRunning == true)
        }
    }

    @Test("ingress: Redis unreachable → 503 so Twilio retries")
    func redisDown() async throws {
        var environment = TestEnvironment.localEnv
        environment["REDIS_URL"] = "redis://127.0.0.1:\(TestEnvironment.freePort())"
        let ingress = try ServiceProcess(
            "messaging-ingress", port: TestEnvironment.freePort(), environment: environment, logDirectory: NSTemporaryDirectory())
        // Live, but not ready: /health/ready looks at Redis.
        try await ingress.waitReady(path: "/health/live")
        let ready = try await TestStack.request(.GET, "http://127.0.0.1:\(ingress.port)/health/ready")
        #expect(ready.status == 503)
        let body = Array(
            #"{"eventType":"COMMUNICATION_CREATED","data":{"id":"c1","conversationId":"conv_503","author":{"address":"+15550001234","channel":"SMS"},"content":{"text":"hi"},"recipients":[]}}"#
                .utf8)
        let response = try await Self.signedWebhook(port: ingress.port, body: body)
        #expect(response.status == 503)
        #expect(await ingress.terminate() == 0)
    }

    @Test("voice callbacks: signed forms answer 200 with an empty body; unsigned 403; a missing CallSid 400")
    func callbacks() async throws {
        try await withStack(VoiceAcceptanceTests.relayOnly()) { stack in
            let base = "http://127.0.0.1:\(stack.relayPorts[0])"
            let action = try await Self.signedForm(
                "\(base)/conversation-relay-callback",
                [
                    ("AccountSid", stack.environment["TWILIO_ACCOUNT_SID"] ?? ""), ("CallSid", "CAcallback1"), ("CallStatus", "completed"),
                    ("SessionId", "VX1"), ("SessionStatus", "ended"), ("SessionDuration", "12"), ("HandoffData", #"{"reason":"human"}"#),
                ],
                publicHTTPS: true)
            #expect(action.status == 200)
            #expect(action.body.isEmpty)
            for kind in ["status", "amd", "recording"] {
                let event = try await Self.signedForm(
                    "\(base)/twilio/call-events/\(kind)", [("CallSid", "CAcallback1"), ("CallStatus", "completed")], publicHTTPS: true)
                #expect(event.status == 200, "\(kind)")
            }
            let missing = try await Self.signedForm("\(base)/twilio/call-events/status", [("CallStatus", "completed")], publicHTTPS: true)
            #expect(missing.status == 400)
            let unsigned = try await TestStack.request(
                .POST, "\(base)/twilio/call-events/amd", rawBody: Array("CallSid=CA1".utf8),
                headers: [("Content-Type", "application/x-www-form-urlencoded")])
            #expect(unsigned.status == 403)
            // The completed callback ended the relay-only conversation: once, on the worker.
            let worker = try #require(stack.processes("agent-worker").first)
            #expect(await eventually { (try? await stack.metric("agentconnect_conversations_ended_total", port: worker.port)) == 1 })
        }
    }

    @Test("orchestrated voice: the relay finds the conversation ConversationRelay created, and the call flows")
    func orchestratedCall() async throws {
        var options = TestStack.Options()
        options.relays = 1
        options.outbound = false
        options.ingress = false
        try await withStack(options) { stack in
            let result = try await stack.sim(.POST, "/sim/calls", ["from": "+15556661111", "say": ["hello orchestrator", "second turn"]])
            let texts = result["turns"]?.array?.compactMap { $0["text"]?.string }
            #expect(texts == ["You said: hello orchestrator", "You said: second turn"])
            let conversations = try await stack.sim(.GET, "/v2/Conversations?channelId=\(result["callSid"]?.string ?? "")")["conversations"]?.array
            #expect(conversations?.count == 1)
        }
    }

    @Test("SIGTERM on voice-relay: ready turns 503, new calls are refused, the live call continues, then it exits 0")
    func relayDrain() async throws {
        try await withStack(VoiceAcceptanceTests.relayOnly(extra: ["VOICE_DRAIN_SECONDS": "20"])) { stack in
            let relay = try #require(stack.processes("voice-relay").first)
            var caller = RelayCaller(relayURL: "http://127.0.0.1:\(relay.port)", authToken: Self.token)
            caller.replyTimeout = .seconds(10)
            let (url, _) = try await caller.fetchTwiML(callSid: "CAdrain", from: "+15556660000", to: "+15550000001")
            let transcript = try await caller.call(
                publicURL: url, callSid: "CAdrain", from: "+15556660000", to: "+15550000001",
                script: [
                    .say("before"),
                    .sayWithAction("during the drain", afterTokens: 0) {
                        kill(relay.pid, SIGTERM)
                        _ = await eventually { (try? await TestStack.request(.GET, "http://127.0.0.1:\(relay.port)/health/ready").status) == 503 }
                    },
                    .say("still answered"),
                ])
            #expect(transcript.turns.map(\.text) == ["You said: before", "You said: during the drain", "You said: still answered"])
            let ready = try? await TestStack.request(.GET, "http://127.0.0.1:\(relay.port)/health/ready")
            #expect(ready?.status == 503 || ready == nil)
            #expect(await relay.waitForExit(timeout: .seconds(15)) == 0)
        }
    }

    @Test("DTMF reaches the agent as voice.dtmf")
    func dtmf() async throws {
        try await withStack(VoiceAcceptanceTests.relayOnly(workers: 0)) { stack in
            let caller = RelayCaller(relayURL: "http://127.0.0.1:\(stack.relayPorts[0])", authToken: Self.token)
            let (url, _) = try await caller.fetchTwiML(callSid: "CAdtmf", from: "+15556660000", to: "+15550000001")
            _ = try await caller.call(
                publicURL: url, callSid: "CAdtmf", from: "+15556660000", to: "+15550000001", script: [.dtmf("7"), .pause(.milliseconds(200))])
            let client = stack.redis.client()
            defer { client.shutdown() }
            let stream = Partitioner.inboundStream(for: "CAdtmf", partitions: 16)
            func events() async throws -> [BusEvent] {
                try await RedisStreamsEventBus(client: client).read(after: [stream: "0-0"], count: 100, blockMilliseconds: 0).compactMap(\.event)
            }
            // The end is published as the relay tears the socket down, just after the caller hung up.
            #expect(await eventually { (try? await events().contains { $0.type == EventType.conversationEnded }) == true })
            let dtmf = try await events().first { $0.type == EventType.voiceDTMF }
            #expect(dtmf?.payload["digit"]?.string == "7")
        }
    }
}
