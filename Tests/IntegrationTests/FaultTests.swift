import AgentConnectCore
import Foundation
import NIOConcurrencyHelpers
import Testing
import TwilioKit

/// `make test-faults`: processes killed with SIGKILL under a steady load; every accepted message must
/// get exactly one reply. Skipped by `make test` (it runs when `AGENTCONNECT_FAULTS=1`).
@Suite("Faults under load", .serialized, .enabled(if: ProcessInfo.processInfo.environment["AGENTCONNECT_FAULTS"] == "1"))
struct FaultTests {
    struct Row {
        var fault: String
        var sent: Int
        var replies: Int
        var lost: Int
        var duplicated: Int
    }

    /// Sends `count` SMS from `senders` customers in parallel while `faults` runs; then counts the replies per message.
    /// `pace` is each sender's pause between messages (the load lasts about count / senders × pace);
    /// `settle` how long replies may take to arrive after the last message.
    func measure(
        _ stack: TestStack, fault: String, count: Int, senders: Int = 4, pace: Duration = .milliseconds(40), settle: Duration = .seconds(60),
        faults: @escaping @Sendable () async throws -> Void
    ) async throws -> Row {
        let tag = UUID().uuidString.prefix(6)
        let accepted = NIOLockedValueBox(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<senders {
                group.addTask {
                    for index in stride(from: sender, to: count, by: senders) {
                        let answer = try await stack.customerSays("m\(tag)-\(index)", from: "+1555880\(String(format: "%04d", index % 40))")
                        if answer["webhookStatus"]?.double == 200 { accepted.withLockedValue { $0 += 1 } }
                        try await Task.sleep(for: pace)
                    }
                }
            }
            group.addTask { try await faults() }
            try await group.waitForAll()
        }
        let expected = (0..<count).map { "You said: m\(tag)-\($0)" }
        func counts() async throws -> [String: Int] {
            let all = try await stack.sim(.GET, "/sim/messages?waitMs=0")["messages"]?.array ?? []
            return all.compactMap { $0["text"]?.string }.filter { $0.contains("m\(tag)-") }.reduce(into: [:]) { $0[$1, default: 0] += 1 }
        }
        _ = await eventually(timeout: settle) { (try? await counts().count) == count }
        try await Task.sleep(for: .seconds(2))
        let seen = try await counts()
        let row = Row(
            fault: fault, sent: accepted.withLockedValue { $0 }, replies: seen.values.reduce(0, +),
            lost: expected.filter { seen[$0] == nil }.count, duplicated: seen.values.filter { $0 > 1 }.map { $0 - 1 }.reduce(0, +))
        print(
            "fault-table: \(row.fault.padding(toLength: 46, withPad: " ", startingAt: 0)) sent \(row.sent)  replies \(row.replies)  "
                + "lost \(row.lost)  duplicated \(row.duplicated)")
        return row
    }

    @Test("kill -9 messaging-ingress, agent-worker and outbound in turn under SMS load: every accepted message answered exactly once")
    func killEachService() async throws {
        var options = TestStack.Options(workers: 2)
        options.extra = ["SIM_WEBHOOK_RETRIES": "30"]
        try await withFaultStack(options) { stack in
            var rows: [Row] = []
            rows.append(try await measure(stack, fault: "none (baseline)", count: 60) {})
            rows.append(
                try await measure(stack, fault: "kill -9 messaging-ingress, restart", count: 80) {
                    try await Task.sleep(for: .milliseconds(400))
                    let ingress = try #require(stack.processes("messaging-ingress").first { $0.isRunning })
                    _ = await ingress.signal(SIGKILL, timeout: .seconds(5))
                    try await Task.sleep(for: .milliseconds(500))
                    try await stack.launch("messaging-ingress", port: stack.ingressPort)
                })
            rows.append(
                try await measure(stack, fault: "kill -9 one of two agent-workers, start one", count: 80) {
                    try await Task.sleep(for: .milliseconds(400))
                    let worker = try #require(stack.processes("agent-worker").first { $0.isRunning })
                    _ = await worker.signal(SIGKILL, timeout: .seconds(5))
                    try await stack.startWorker(id: "worker-\(UUID().uuidString.prefix(4))")
                })
            rows.append(
                try await measure(stack, fault: "kill -9 outbound, restart", count: 80) {
                    try await Task.sleep(for: .milliseconds(400))
                    let outbound = try #require(stack.processes("outbound").first { $0.isRunning })
                    _ = await outbound.signal(SIGKILL, timeout: .seconds(5))
                    try await Task.sleep(for: .milliseconds(500))
                    try await stack.launch("outbound", port: stack.outboundPort)
                })
            for row in rows {
                #expect(row.lost == 0, "\(row.fault): \(row.lost) lost")
                #expect(row.duplicated == 0, "\(row.fault): \(row.duplicated) duplicated")
                #expect(row.replies == row.sent, "\(row.fault)")
            }
        }
    }

    /// Runs `scripts/stack.sh <arguments>` to completion without holding a thread.
    func stackScript(_ arguments: [String]) async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [TestEnvironment.root + "/scripts/stack.sh"] + arguments
        process.environment = ProcessInfo.processInfo.environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var raw: Int32 = 0
        while true {
            let reaped = waitpid(process.processIdentifier, &raw, WNOHANG)
            if reaped == process.processIdentifier { return (raw >> 8) & 0xff }
            if reaped == -1, !process.isRunning { return process.terminationStatus }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test("Redis (append-only file on) and PostgreSQL restarted under load: services reconnect, 503s are retried, each message answered once")
    func restartRedisAndPostgres() async throws {
        var options = TestStack.Options()
        options.extra = ["SIM_WEBHOOK_RETRIES": "40"]
        try await withFaultStack(options) { stack in
            var rows: [Row] = []
            rows.append(
                try await measure(stack, fault: "restart Redis (AOF), 2 s down", count: 80) {
                    try await Task.sleep(for: .milliseconds(500))
                    #expect(try await stackScript(["restart-redis", "2"]) == 0)
                })
            let ingress = try #require(stack.processes("messaging-ingress").first)
            #expect(try await stack.metric("agentconnect_webhooks_total", port: ingress.port, matching: "unavailable") > 0)
            rows.append(
                try await measure(stack, fault: "restart PostgreSQL, 2 s down", count: 80) {
                    try await Task.sleep(for: .milliseconds(500))
                    #expect(try await stackScript(["restart-postgres", "2"]) == 0)
                })
            for row in rows {
                #expect(row.lost == 0, "\(row.fault): \(row.lost) lost")
                #expect(row.duplicated == 0, "\(row.fault): \(row.duplicated) duplicated")
            }
            for name in ["messaging-ingress", "agent-worker", "outbound", "twilio-sim"] {
                #expect(stack.processes(name).allSatisfy { $0.isRunning }, "\(name) stayed up")
            }
        }
    }

    @Test("Twilio slow (1.5 s per send) then failing (500s): every reply delivered once, retries counted, outbound memory bounded")
    func slowAndFailingTwilio() async throws {
        var options = TestStack.Options()
        options.extra = ["OUTBOUND_MAX_ATTEMPTS": "30", "OUTBOUND_RETRY_BASE_MS": "20", "OUTBOUND_RETRY_MAX_MS": "200"]
        try await withFaultStack(options) { stack in
            let outbound = try #require(stack.processes("outbound").first)
            func rssKiB() -> Int {
                let status = (try? String(contentsOfFile: "/proc/\(outbound.pid)/status", encoding: .utf8)) ?? ""
                let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
                return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
            }
            let before = rssKiB()
            var rows: [Row] = []
            rows.append(
                try await measure(stack, fault: "Twilio slow: 1.5 s per send (40 sends)", count: 60) {
                    _ = try await stack.sim(.POST, "/sim/faults", ["status": 200, "count": 40, "delayMs": 1500])
                })
            rows.append(
                try await measure(stack, fault: "Twilio failing: 500 on 40 sends", count: 60) {
                    _ = try await stack.sim(.POST, "/sim/faults", ["status": 500, "count": 40])
                })
            let after = rssKiB()
            print("fault-table: outbound RSS before \(before / 1024) MiB, after \(after / 1024) MiB")
            #expect(after < before + 64 * 1024, "outbound grew from \(before) to \(after) KiB")
            #expect(try await stack.metric("agentconnect_delivery_retries_total", port: outbound.port) >= 40)
            for row in rows {
                #expect(row.lost == 0, "\(row.fault): \(row.lost) lost")
                #expect(row.duplicated == 0, "\(row.fault): \(row.duplicated) duplicated")
            }
        }
    }

    @Test("hostile input on every route: the right 4xx, no crash, nothing published")
    func hostileInput() async throws {
        var options = TestStack.Options(relays: 1)
        options.extra = ["VOICE_SETUP_TIMEOUT_MS": "700"]
        try await withFaultStack(options) { stack in
            let token = stack.environment["OUTBOUND_API_TOKEN"] ?? ""
            let bodies: [(String, [UInt8])] = [
                ("empty", []), ("truncated JSON", Array(#"{"eventType":"COMMUNICATION_CR"#.utf8)), ("not an object", Array("[1,2]".utf8)),
                ("invalid UTF-8", [0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), ("malformed form", Array("From=%2B1&Body=%ZZ&&=".utf8)),
                ("nested", Array(String(repeating: "[", count: 5000).utf8)), ("huge", Array(repeating: 0x61, count: 2 << 20)),
            ]
            let types = ["application/json", "application/x-www-form-urlencoded", "text/plain"]
            let ingress = "http://127.0.0.1:\(stack.ingressPort)"
            let relay = "http://127.0.0.1:\(stack.relayPorts[0])"
            let outbound = "http://127.0.0.1:\(stack.outboundPort)"
            for (name, body) in bodies {
                for type in types {
                    for url in [
                        "\(ingress)/webhook", "\(ingress)/ci-webhook", "\(relay)/twiml", "\(relay)/conversation-relay-callback",
                        "\(relay)/twilio/call-events/status",
                    ] {
                        // Unsigned, forged, and a signature of another body (a replay with the body changed).
                        let replayed = TwilioSignature(authToken: stack.environment["TWILIO_AUTH_TOKEN"] ?? "").compute(
                            url: url, params: [("Body", "original")])
                        for signature in [nil, "Zm9yZ2Vk", replayed] {
                            var headers = [("Content-Type", type)]
                            if let signature { headers.append(("X-Twilio-Signature", signature)) }
                            let status = try await TestStack.request(.POST, url, rawBody: body, headers: headers).status
                            // A form that cannot be decoded (a bad %-escape, invalid UTF-8) cannot be verified either: 400.
                            let allowed = ["malformed form", "invalid UTF-8"].contains(name) ? [400, 403] : [403, 413]
                            #expect(allowed.contains(status), "\(url) \(name) \(type) → \(status)")
                        }
                    }
                    for path in ["/v1/conversations", "/v1/calls", "/v1/handoffs"] {
                        let unauthorized = try await TestStack.request(.POST, outbound + path, rawBody: body, headers: [("Content-Type", type)])
                            .status
                        #expect(unauthorized == 401)
                        let status = try await TestStack.request(
                            .POST, outbound + path, rawBody: body, headers: [("Content-Type", type), ("Authorization", "Bearer \(token)")]
                        ).status
                        #expect(status == 400 || status == 413, "\(path) \(name) \(type) → \(status)")
                    }
                }
            }
            #expect(try await stack.inboundLength() == 0, "nothing published")
            // Signed garbage reaches the parser: mutations of a real webhook, each correctly signed.
            let signer = TwilioSignature(authToken: stack.environment["TWILIO_AUTH_TOKEN"] ?? "")
            var random = SplitMix64(seed: 0x5EED)
            let seed = Array(
                #"{"eventType":"COMMUNICATION_CREATED","data":{"id":"comms_communication_9","conversationId":"conv_fuzz","author":{"address":"+15551239999","channel":"SMS"},"content":{"type":"TEXT","text":"hi"},"recipients":[{"address":"+15550000001","channel":"SMS"}]}}"#
                    .utf8)
            var statuses: [Int: Int] = [:]
            for _ in 0..<300 {
                let body = Mutations.mutate(seed, &random)
                let url = "\(ingress)/webhook?bodySHA256=" + TwilioSignature.bodyHash(body)
                let status = try await TestStack.request(
                    .POST, url, rawBody: body, headers: [("Content-Type", "application/json"), ("X-Twilio-Signature", signer.compute(url: url))]
                ).status
                statuses[status, default: 0] += 1
            }
            print("fault-table: 300 signed mutated webhooks answered \(statuses.sorted { $0.key < $1.key })")
            #expect(statuses.keys.allSatisfy { [200, 400].contains($0) }, "\(statuses)")
            // ConversationRelay: ten unknown frames, then a prompt that is still answered; an oversized frame closes with 1009.
            let unknown = try await stack.call(
                (0..<10).map { .raw(["type": .string("mystery\($0)"), "x": .number(Double($0))]) } + [.say("still there")])
            #expect(unknown.turns.map(\.text) == ["You said: still there"])
            let oversized = try await stack.call([
                .raw(["type": "prompt", "voicePrompt": .string(String(repeating: "x", count: 200_000)), "last": true]), .pause(.milliseconds(500)),
            ])
            #expect(oversized.closeCode == 1009)
            // A flood of 2,000 frames, then a prompt that is still answered.
            let flood = try await stack.call((0..<2000).map { .raw(["type": "info", "n": .number(Double($0))]) } + [.say("after the flood")])
            #expect(flood.turns.map(\.text) == ["You said: after the flood"])
            // A socket that never sends setup is closed (1008) once the setup timeout passes.
            let caller = stack.caller()
            let (url, _) = try await caller.fetchTwiML(callSid: "CAsilent", from: "+15550001234", to: "+15550000001")
            let silent = try await caller.call(
                publicURL: url, callSid: "CAsilent", from: "+15550001234", to: "+15550000001", script: [.pause(.seconds(2))], sendSetup: false)
            #expect(silent.closeCode == 1008)
            for name in ["messaging-ingress", "voice-relay", "outbound"] {
                #expect(stack.processes(name).allSatisfy { $0.isRunning }, "\(name) survived")
            }
        }
    }
}

/// Byte mutations for seed-corpus replays (deterministic with a seeded generator).
enum Mutations {
    static func mutate(_ bytes: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var out = bytes
        for _ in 0..<Int.random(in: 1...6, using: &random) {
            guard !out.isEmpty else { break }
            let at = Int.random(in: 0..<out.count, using: &random)
            switch Int.random(in: 0..<4, using: &random) {
            case 0: out[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &random))
            case 1: out.removeSubrange(at..<out.count)
            case 2: out.insert(UInt8.random(in: 0...255, using: &random), at: at)
            default: out.insert(contentsOf: out[at..<min(out.count, at + 12)], at: at)
            }
        }
        return out
    }
}
