import AgentConnectCore
import Foundation
import Testing

/// `make test-faults`, part two: the promise against a twilio-sim that, like Twilio, does not
/// deduplicate resent requests — through unknown send outcomes, long and hard outages of Redis and
/// PostgreSQL, and workers scaled up and down under load. Each row: sent, replies, lost, duplicated.
@Suite("Exactly once through outages and scaling", .serialized, .enabled(if: ProcessInfo.processInfo.environment["AGENTCONNECT_FAULTS"] == "1"))
struct ExactlyOnceFaultTests {
    let faults = FaultTests()

    func expectExactlyOnce(_ row: FaultTests.Row) {
        #expect(row.lost == 0, "\(row.fault): \(row.lost) lost")
        #expect(row.duplicated == 0, "\(row.fault): \(row.duplicated) duplicated")
        #expect(row.replies == row.sent, "\(row.fault): \(row.replies) replies to \(row.sent) accepted messages")
    }

    @Test("Twilio accepts 1 send in 25 but answers after the client's timeout: reconciled, never resent, none lost")
    func lateAnswers() async throws {
        var options = TestStack.Options()
        options.extra = ["TWILIO_HTTP_TIMEOUT_MS": "700", "OUTBOUND_MAX_ATTEMPTS": "10"]
        try await withStack(options) { stack in
            let outbound = try #require(stack.processes("outbound").first)
            let row = try await faults.measure(stack, fault: "Twilio answers 1 send in 25 after the timeout", count: 100) {
                _ = try await stack.sim(
                    .POST, "/sim/faults",
                    ["status": 200, "afterAccept": true, "delayMs": 1500, "every": 25, "count": 1000, "pathContains": "/Actions"])
            }
            _ = try await stack.sim(.DELETE, "/sim/faults")
            expectExactlyOnce(row)
            let found = try await stack.metric("agentconnect_delivery_ambiguous_total", port: outbound.port, matching: "found")
            let unknown = try await stack.metric("agentconnect_delivery_ambiguous_total", port: outbound.port, matching: "unknown")
            print("fault-table: unknown send outcomes \(Int(unknown)), found in Twilio (not resent) \(Int(found))")
            #expect(unknown >= 3, "the fault was applied")
            #expect(found >= 3, "unknown outcomes were reconciled, not resent")
        }
    }

    @Test("the same late answers on the classic Messages API: found in the Messages list, never resent")
    func lateAnswersClassic() async throws {
        var options = TestStack.Options()
        options.extra = ["TWILIO_HTTP_TIMEOUT_MS": "700", "OUTBOUND_MAX_ATTEMPTS": "10", "TWILIO_CONVERSATION_CONFIGURATION_ID": ""]
        try await withStack(options) { stack in
            let tag = UUID().uuidString.prefix(6)
            _ = try await stack.sim(
                .POST, "/sim/faults", ["status": 200, "afterAccept": true, "delayMs": 1500, "every": 5, "count": 100, "pathContains": "/Messages.json"])
            for index in 0..<20 {
                _ = try await stack.customerSays("c\(tag)-\(index)", from: "+1555660\(String(format: "%04d", index))", extra: ["classic": true])
            }
            func counts() async throws -> [String: Int] {
                let all = try await stack.sim(.GET, "/sim/messages?waitMs=0")["messages"]?.array ?? []
                return all.compactMap { $0["text"]?.string }.filter { $0.contains("c\(tag)-") }.reduce(into: [:]) { $0[$1, default: 0] += 1 }
            }
            _ = await eventually(timeout: .seconds(60)) { (try? await counts().count) == 20 }
            try await Task.sleep(for: .seconds(2))
            let seen = try await counts()
            let row = FaultTests.Row(
                fault: "classic: 1 send in 5 answered late", sent: 20, replies: seen.values.reduce(0, +),
                lost: (0..<20).filter { seen["You said: c\(tag)-\($0)"] == nil }.count,
                duplicated: seen.values.filter { $0 > 1 }.map { $0 - 1 }.reduce(0, +))
            print("fault-table: \(row.fault.padding(toLength: 46, withPad: " ", startingAt: 0)) sent \(row.sent)  replies \(row.replies)  lost \(row.lost)  duplicated \(row.duplicated)")
            expectExactlyOnce(row)
        }
    }

    @Test("PostgreSQL down for 75 s under load: replies wait in place (not reclaimed, not copied) and each goes out once")
    func longPostgresOutage() async throws {
        var options = TestStack.Options(workers: 2)
        // The production visibility timeouts: an outage longer than them must not produce copies.
        options.extra = ["AGENT_VISIBILITY_TIMEOUT_MS": "15000", "SIM_WEBHOOK_RETRIES": "40"]
        try await withStack(options) { stack in
            let row = try await faults.measure(
                stack, fault: "PostgreSQL down 75 s under load", count: 100, pace: .milliseconds(3200), settle: .seconds(120)
            ) {
                try await Task.sleep(for: .seconds(3))
                #expect(try await faults.stackScript(["restart-postgres", "75"]) == 0)
            }
            expectExactlyOnce(row)
        }
    }

    @Test("agent-workers scaled 1 → 3 → 1 under load: partitions change hands, no turn runs twice to the customer")
    func scaleWorkers() async throws {
        let options = TestStack.Options(workers: 1)
        try await withStack(options) { stack in
            let row = try await faults.measure(stack, fault: "agent-workers 1 → 3 → 1 under load", count: 160, pace: .milliseconds(150)) {
                try await Task.sleep(for: .seconds(1))
                let added = [
                    try await stack.startWorker(id: "scale-a-\(UUID().uuidString.prefix(4))"),
                    try await stack.startWorker(id: "scale-b-\(UUID().uuidString.prefix(4))"),
                ]
                try await Task.sleep(for: .seconds(3))
                for worker in added { _ = await worker.signal(SIGTERM, timeout: .seconds(30)) }
            }
            expectExactlyOnce(row)
        }
    }

    @Test("Redis killed with kill -9 under load (append-only file, fsync always): every accepted webhook answered once")
    func killRedis() async throws {
        var options = TestStack.Options()
        options.extra = ["SIM_WEBHOOK_RETRIES": "40"]
        try await withStack(options) { stack in
            let row = try await faults.measure(stack, fault: "kill -9 Redis (AOF, fsync always), 2 s down", count: 100, pace: .milliseconds(60)) {
                try await Task.sleep(for: .milliseconds(700))
                #expect(try await faults.stackScript(["kill-redis", "2"]) == 0)
            }
            expectExactlyOnce(row)
        }
    }

    @Test("PostgreSQL killed with kill -9 under load: crash recovery, every reply once")
    func killPostgres() async throws {
        var options = TestStack.Options()
        options.extra = ["SIM_WEBHOOK_RETRIES": "40"]
        try await withStack(options) { stack in
            let row = try await faults.measure(stack, fault: "kill -9 PostgreSQL, 2 s down", count: 100, pace: .milliseconds(60)) {
                try await Task.sleep(for: .milliseconds(700))
                #expect(try await faults.stackScript(["kill-postgres", "2"]) == 0)
            }
            expectExactlyOnce(row)
        }
    }
}
