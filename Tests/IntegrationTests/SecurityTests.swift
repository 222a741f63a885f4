import AgentConnectCore
import Foundation
import RelayCaller
import Testing
import TwilioKit

#if canImport(Glibc)
import Glibc
#endif

/// "No way in" (issue 14): only Twilio can make the agent speak, and only once per signed event. Replayed
/// webhooks and spoofed hosts are refused in process (MessagingIngressTests, VoiceRelayTests); here what
/// needs real sockets and processes.
@Suite("Security: captured upgrades, unsigned parameters, call options, slow clients, the sim's credentials")
struct SecurityTests {
    static let authToken = TestEnvironment.localEnv["TWILIO_AUTH_TOKEN"] ?? ""

    /// A classic Messaging webhook posted straight to messaging-ingress, correctly signed (as Twilio
    /// would have sent it), with `token` as its `I-Twilio-Idempotency-Token` — the header is not signed,
    /// so an attacker who captured the request can replay it with any value.
    static func signedClassicWebhook(port: Int, fields: [(String, String)], token: String) async throws -> TestStack.HTTPResult {
        let url = "http://127.0.0.1:\(port)/webhook"
        return try await TestStack.request(
            .POST, url, rawBody: Array(FormCoding.encode(fields).utf8),
            headers: [
                ("Content-Type", "application/x-www-form-urlencoded"), ("I-Twilio-Idempotency-Token", token),
                ("X-Twilio-Signature", TwilioSignature(authToken: authToken).compute(url: url, params: fields)),
            ])
    }

    /// A classic SMS from `customer` to the agent's number.
    static func classicFields(_ stack: TestStack, sid: String, customer: String, text: String) -> [(String, String)] {
        [
            ("AccountSid", stack.environment["TWILIO_ACCOUNT_SID"] ?? ""), ("MessageSid", sid), ("From", customer),
            ("To", stack.environment["TWILIO_PHONE_NUMBER"] ?? ""), ("Body", text), ("NumMedia", "0"),
        ]
    }

    static func callSid() -> String { "CA" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }

    @Test("a captured WebSocket upgrade (URL and signature) opens no second socket: not for another call, not again for its own")
    func capturedUpgrade() async throws {
        try await withStack(VoiceAcceptanceTests.relayOnly()) { stack in
            let relay = stack.relayPorts[0]
            let caller = stack.caller()
            let sid = Self.callSid()
            let (url, _) = try await caller.fetchTwiML(callSid: sid, from: "+15554440010", to: "+15550000001")
            let genuine = try await caller.call(publicURL: url, callSid: sid, from: "+15554440010", to: "+15550000001", script: [.say("hello")])
            #expect(genuine.turns.map(\.text) == ["You said: hello"])
            // The same URL and X-Twilio-Signature, as an eavesdropper would have captured them.
            let otherCall = try await caller.call(
                publicURL: url, callSid: Self.callSid(), from: "+15554440011", to: "+15550000001",
                script: [.pause(.milliseconds(300)), .say("let me in")])
            let sameCall = try await caller.call(
                publicURL: url, callSid: sid, from: "+15554440010", to: "+15550000001", script: [.pause(.milliseconds(300)), .say("again")])
            for refused in [otherCall, sameCall] {
                #expect(refused.turns.allSatisfy { $0.tokens.isEmpty })
                #expect(refused.closeCode == 1008 || refused.closeCode == nil)
            }
            #expect(try await stack.metric("agentconnect_voice_frames_total", port: relay, matching: "rejected_token") == 2)
            #expect(try await stack.metric("agentconnect_voice_frames_total", port: relay, matching: "kind=\"setup\"") == 1)
        }
    }

    @Test(
        "a setup frame for another callSid than the token's is refused with 1008, and the token is spent; so is a first frame that is not setup; a forged or missing signature is closed with 1008 and counted"
    )
    func setupForAnotherCall() async throws {
        try await withStack(VoiceAcceptanceTests.relayOnly()) { stack in
            let relay = stack.relayPorts[0]
            let caller = stack.caller()
            let sid = Self.callSid()
            let (url, _) = try await caller.fetchTwiML(callSid: sid, from: "+15554440020", to: "+15550000001")
            let hijack = try await caller.call(
                publicURL: url, callSid: Self.callSid(), from: "+15554440020", to: "+15550000001", script: [.pause(.milliseconds(300)), .say("hi")])
            #expect(hijack.turns.allSatisfy { $0.tokens.isEmpty })
            #expect(hijack.closeCode == 1008)
            #expect(try await stack.metric("agentconnect_voice_frames_total", port: relay, matching: "rejected_call") == 1)
            let late = try await caller.call(
                publicURL: url, callSid: sid, from: "+15554440020", to: "+15550000001", script: [.pause(.milliseconds(300)), .say("hi")])
            #expect(late.turns.allSatisfy { $0.tokens.isEmpty })
            #expect(try await stack.metric("agentconnect_voice_frames_total", port: relay, matching: "rejected_token") == 1)
            let noSetupSid = Self.callSid()
            let (noSetupURL, _) = try await caller.fetchTwiML(callSid: noSetupSid, from: "+15554440021", to: "+15550000001")
            let noSetup = try await caller.call(
                publicURL: noSetupURL, callSid: noSetupSid, from: "+15554440021", to: "+15550000001",
                script: [.raw(["type": "prompt", "voicePrompt": "hi", "last": true]), .pause(.seconds(1))], sendSetup: false)
            #expect(noSetup.closeCode == 1008)
            #expect(noSetup.turns.allSatisfy { $0.tokens.isEmpty })
            let forged = try await caller.call(
                publicURL: "wss://127.0.0.1:\(relay)/ws", callSid: Self.callSid(), from: "+1", to: "+2", script: [.pause(.milliseconds(300))],
                signature: "Zm9yZ2Vk")
            let unsigned = try await caller.call(
                publicURL: "wss://127.0.0.1:\(relay)/ws", callSid: Self.callSid(), from: "+1", to: "+2", script: [.pause(.milliseconds(300))],
                signature: "")
            // Under heavy load the client sometimes sees the socket end without the close frame.
            for rejected in [forged, unsigned] {
                #expect(rejected.closeCode == 1008 || rejected.closeCode == nil)
                #expect(rejected.turns.allSatisfy { $0.tokens.isEmpty })
            }
            #expect(try await stack.metric("agentconnect_voice_frames_total", port: relay, matching: "rejected_signature") == 2)
        }
    }

    @Test("a customParameters.conversationId the TwiML did not sign is ignored")
    func unsignedConversationId() async throws {
        try await withStack(VoiceAcceptanceTests.relayOnly()) { stack in
            let caller = stack.caller()
            let sid = Self.callSid()
            let (url, _) = try await caller.fetchTwiML(callSid: sid, from: "+15554440030", to: "+15550000001")
            let call = try await caller.call(
                publicURL: url, callSid: sid, from: "+15554440030", to: "+15550000001", script: [.say("whose call is this")],
                customParameters: ["conversationId": "conv_someone_else"])
            #expect(call.turns.map(\.text) == ["You said: whose call is this"])
            #expect(await eventually { (try? await stack.count("SELECT count(*)::int FROM conversations WHERE id = '\(sid)'")) == 1 })
            #expect(try await stack.count("SELECT count(*)::int FROM conversations WHERE id = 'conv_someone_else'") == 0)
        }
    }

    @Test("/v1/calls callOptions: URL-valued and unknown Calls parameters get 400 in any capitalisation; the allowed ones pass")
    func callOptions() async throws {
        try await withStack(.init(workers: 0, relays: 1, ingress: false)) { stack async throws in
            func place(_ options: JSONValue) async throws -> TestStack.HTTPResult {
                try await TestStack.request(
                    .POST, "http://127.0.0.1:\(stack.outboundPort)/v1/calls", body: ["to": "+15554440050", "callOptions": options],
                    headers: [("Authorization", "Bearer \(TestEnvironment.localEnv["OUTBOUND_API_TOKEN"] ?? "")")])
            }
            let foreign: [JSONValue] = [
                ["StatusCallback": "https://evil.example/cb"], ["statuscallback": "https://evil.example/cb"],
                ["STATUSCALLBACK": "https://evil.example/cb"],
                ["statusCallback": "https://evil.example/cb"], ["FallbackUrl": "https://evil.example"], ["fallbackURL": "https://evil.example"],
                ["Url": "https://evil.example/twiml"], ["url": "https://evil.example/twiml"], ["AsyncAmdStatusCallback": "https://evil.example"],
                ["recordingstatuscallback": "https://evil.example"], ["To": "+15550009999"], ["twiml": "<Response/>"], ["SipAuthPassword": "x"],
            ]
            for options in foreign {
                let answer = try await place(options)
                #expect(answer.status == 400, "\(options) → \(answer.status) \(answer.body)")
            }
            #expect(try await stack.simRequests(path: "/Calls.json").isEmpty)
            let allowed = try await place(["timeout": 20, "StatusCallback": true, "machineDetection": "Enable"])
            #expect(allowed.status == 201, "\(allowed.body)")
            let form = try #require(try await stack.simRequests(path: "/Calls.json").first?["form"])
            #expect(form["Timeout"]?.string == "20")
            #expect(form["MachineDetection"]?.string == "Enable")
            #expect(form["StatusCallback"]?.string == "https://127.0.0.1:\(stack.relayPorts[0])/twilio/call-events/status")
        }
    }

    /// Connects, sends `bytes` (an unfinished request head) and returns how long the server took to
    /// close the connection (nil: still open after `timeout`).
    static func secondsUntilClosed(port: Int, sending bytes: String, timeout: Int = 10) async -> Double? {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                guard let fd = TestEnvironment.connectTCP(port: port) else { return continuation.resume(returning: nil) }
                defer { close(fd) }
                var wait = timeval(tv_sec: timeout, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
                let started = Date()
                _ = bytes.withCString { send(fd, $0, strlen($0), 0) }
                var buffer = [UInt8](repeating: 0, count: 512)
                while true {
                    let count = recv(fd, &buffer, buffer.count, 0)
                    if count == 0 || (count < 0 && errno != EINTR && errno != EAGAIN) {
                        return continuation.resume(returning: Date().timeIntervalSince(started))
                    }
                    if count < 0 { return continuation.resume(returning: nil) }
                }
            }
        }
    }

    @Test(
        "slow clients are let go: an unfinished request head is closed on the relay and the ingress; an idle call socket is closed; sockets past the cap get 1013"
    )
    func slowAndIdleClients() async throws {
        var options = VoiceAcceptanceTests.relayOnly(extra: [
            "HTTP_IDLE_TIMEOUT_SECONDS": "1", "VOICE_IDLE_TIMEOUT_SECONDS": "4", "VOICE_MAX_SOCKETS": "1",
        ])
        options.ingress = true
        try await withStack(options) { stack in
            let relay = stack.relayPorts[0]
            for port in [relay, stack.ingressPort] {
                let closedAfter = await Self.secondsUntilClosed(port: port, sending: "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
                #expect(closedAfter.map { $0 < 5 } == true, "port \(port): \(String(describing: closedAfter))")
            }
            let caller = stack.caller()
            let sid = Self.callSid()
            let (url, _) = try await caller.fetchTwiML(callSid: sid, from: "+15554440060", to: "+15550000001")
            async let quiet = caller.call(publicURL: url, callSid: sid, from: "+15554440060", to: "+15550000001", script: [.pause(.seconds(8))])
            _ = await eventually { (try? await stack.metric("agentconnect_voice_frames_total", port: relay, matching: "kind=\"setup\"")) == 1 }
            let second = Self.callSid()
            let (secondURL, _) = try await caller.fetchTwiML(callSid: second, from: "+15554440061", to: "+15550000001")
            let refused = try await caller.call(
                publicURL: secondURL, callSid: second, from: "+15554440061", to: "+15550000001", script: [.say("room for me?")])
            #expect(refused.closeCode == 1013 || refused.closeCode == nil)
            #expect(refused.turns.allSatisfy { $0.tokens.isEmpty })
            #expect(try await stack.metric("agentconnect_voice_frames_total", port: relay, matching: "rejected_capacity") == 1)
            let idle = try await quiet
            #expect(idle.closeCode == 1000)
            #expect(try await stack.metric("agentconnect_voice_frames_total", port: relay, matching: "idle_timeout") == 1)
        }
    }

    @Test("twilio-sim refuses real-looking credentials and Twilio URLs (exit 2, naming the variable) and binds loopback unless told")
    func simRefusesRealTwilio() async throws {
        let directory = NSTemporaryDirectory()
        let hex = String(repeating: "0123456789abcdef", count: 2)
        let refused: [(String, String)] = [
            ("TWILIO_ACCOUNT_SID", "AC" + hex), ("TWILIO_API_KEY", "SK" + hex.uppercased()), ("TWILIO_API_BASE_URL", "https://api.twilio.com"),
            ("TWILIO_CONVERSATIONS_BASE_URL", "https://Conversations.Twilio.com./v2"), ("SIM_MESSAGING_URL", "https://hooks.twilio.com:443/x"),
        ]
        for (name, value) in refused {
            var environment = TestEnvironment.localEnv
            environment[name] = value
            let sim = try ServiceProcess("twilio-sim", port: TestEnvironment.freePort(), environment: environment, logDirectory: directory)
            #expect(await sim.waitForExit(timeout: .seconds(20)) == 2, "\(name)=\(value)")
            #expect(sim.log.contains(name), "\(sim.log)")
        }
        var environment = TestEnvironment.localEnv
        environment["HTTP_HOST"] = "0.0.0.0"
        let sim = try ServiceProcess("twilio-sim", port: TestEnvironment.freePort(), environment: environment, logDirectory: directory)
        try await sim.waitReady()
        let listening = sim.log.split(separator: "\n").first { $0.contains("twilio-sim listening") } ?? ""
        #expect(listening.contains("127.0.0.1") && !listening.contains("0.0.0.0"), "\(listening)")
        #expect(await sim.terminate() == 0)
    }
}
