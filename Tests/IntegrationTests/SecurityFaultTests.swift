import AgentConnectCore
import Foundation
import NIOConcurrencyHelpers
import RelayCaller
import Testing

/// The attacker rows of the fault table (`make test-faults`, `AGENTCONNECT_FAULTS=1`): captured
/// Twilio requests replayed under load must neither make the agent speak again nor take over a call.
@Suite("Security faults under load", .serialized, .enabled(if: ProcessInfo.processInfo.environment["AGENTCONNECT_FAULTS"] == "1"))
struct SecurityFaultTests {
    func printRow(_ fault: String, sent: Int, replies: Int, lost: Int, duplicated: Int) {
        print(
            "fault-table: \(fault.padding(toLength: 46, withPad: " ", startingAt: 0)) sent \(sent)  replies \(replies)  lost \(lost)  duplicated \(duplicated)"
        )
    }

    @Test("signed webhooks, each replayed three times with a fresh idempotency header under load: every message answered exactly once")
    func replayedWebhooks() async throws {
        try await withFaultStack { stack async throws in
            let count = 60
            let tag = UUID().uuidString.prefix(6).lowercased()
            let accepted = NIOLockedValueBox(0)
            let duplicatesRefused = NIOLockedValueBox(0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<count {
                    group.addTask {
                        let sid = "SM" + String(repeating: "0", count: 20) + String(format: "%06d", index) + tag
                        let fields = SecurityTests.classicFields(
                            stack, sid: sid, customer: "+1555990\(String(format: "%04d", index))", text: "r\(tag)-\(index)")
                        for attempt in 0..<4 {
                            let answer = try await SecurityTests.signedClassicWebhook(
                                port: stack.ingressPort, fields: fields, token: UUID().uuidString)
                            guard answer.status == 200 else { continue }
                            if attempt == 0 { accepted.withLockedValue { $0 += 1 } }
                            if answer.json["status"]?.string == "duplicate" { duplicatesRefused.withLockedValue { $0 += 1 } }
                        }
                    }
                }
                try await group.waitForAll()
            }
            func counts() async throws -> [String: Int] {
                let all = try await stack.sim(.GET, "/sim/messages?waitMs=0")["messages"]?.array ?? []
                return all.compactMap { $0["text"]?.string }.filter { $0.contains("r\(tag)-") }.reduce(into: [:]) { $0[$1, default: 0] += 1 }
            }
            _ = await eventually(timeout: .seconds(60)) { (try? await counts().count) == count }
            // Replies to the replays, were there any, would come within the same turns' time.
            try await Task.sleep(for: .seconds(2))
            let seen = try await counts()
            let lost = (0..<count).filter { seen["You said: r\(tag)-\($0)"] == nil }.count
            let duplicated = seen.values.filter { $0 > 1 }.map { $0 - 1 }.reduce(0, +)
            printRow(
                "signed webhook replayed, fresh idempotency hdr", sent: accepted.withLockedValue { $0 }, replies: seen.values.reduce(0, +),
                lost: lost, duplicated: duplicated)
            #expect(duplicatesRefused.withLockedValue { $0 } == 3 * count)
            #expect(lost == 0)
            #expect(duplicated == 0)
        }
    }

    @Test(
        "captured WebSocket upgrades reused for another call and twice for their own during live calls: none opens, every genuine call answered once")
    func capturedUpgrades() async throws {
        try await withFaultStack(VoiceAcceptanceTests.relayOnly(extra: ["ECHO_TOKEN_DELAY_MS": "20"])) { stack in
            let calls = 12
            let caller = stack.caller()
            struct Outcome: Sendable {
                var genuine: [String]
                var otherCall: [String]
                var sameCall: [[String]]
            }
            let outcomes = try await withThrowingTaskGroup(of: Outcome.self) { group in
                for index in 0..<calls {
                    group.addTask {
                        let sid = SecurityTests.callSid()
                        let from = "+1555991\(String(format: "%04d", index))"
                        let (url, _) = try await caller.fetchTwiML(callSid: sid, from: from, to: "+15550000001")
                        let script: [RelayCaller.Step] = [.say("call \(index) one"), .pause(.milliseconds(200)), .say("call \(index) two")]
                        // The attacker replays the captured URL and signature while the genuine call is live, and after it.
                        async let genuine = caller.call(publicURL: url, callSid: sid, from: from, to: "+15550000001", script: script)
                        try await Task.sleep(for: .milliseconds(100))
                        async let other = caller.call(
                            publicURL: url, callSid: SecurityTests.callSid(), from: "+15550000666", to: "+15550000001",
                            script: [.pause(.milliseconds(200)), .say("inject \(index)")])
                        async let again = caller.call(
                            publicURL: url, callSid: sid, from: from, to: "+15550000001",
                            script: [.pause(.milliseconds(200)), .say("again \(index)")])
                        let (g, o, a) = try await (genuine, other, again)
                        let afterwards = try await caller.call(
                            publicURL: url, callSid: sid, from: from, to: "+15550000001",
                            script: [.pause(.milliseconds(200)), .say("after \(index)")])
                        return Outcome(
                            genuine: g.turns.map(\.text), otherCall: o.turns.map(\.text).filter { !$0.isEmpty },
                            sameCall: [a.turns.map(\.text).filter { !$0.isEmpty }, afterwards.turns.map(\.text).filter { !$0.isEmpty }])
                    }
                }
                return try await group.reduce(into: [Outcome]()) { $0.append($1) }
            }
            let expectedGenuine = outcomes.filter { outcome in
                outcome.genuine.count == 2 && outcome.genuine.allSatisfy { $0.hasPrefix("You said: call ") }
            }.count
            let lost = calls - expectedGenuine
            let otherAnswered = outcomes.filter { !$0.otherCall.isEmpty }.count
            let sameAnswered = outcomes.map { $0.sameCall.filter { !$0.isEmpty }.count }.reduce(0, +)
            printRow("captured WS upgrade reused for another call", sent: calls, replies: otherAnswered, lost: lost, duplicated: otherAnswered)
            printRow("captured WS upgrade reused twice (same call)", sent: 2 * calls, replies: sameAnswered, lost: lost, duplicated: sameAnswered)
            #expect(lost == 0)
            #expect(otherAnswered == 0)
            #expect(sameAnswered == 0)
            let rejected = try await stack.metric("agentconnect_voice_frames_total", port: stack.relayPorts[0], matching: "rejected_token")
            #expect(rejected == Double(3 * calls))
        }
    }
}
