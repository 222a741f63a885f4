import AgentConnectCore
import Foundation
import NIOConcurrencyHelpers
import Testing

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
    func measure(_ stack: TestStack, fault: String, count: Int, senders: Int = 4, faults: @escaping @Sendable () async throws -> Void) async throws -> Row {
        let tag = UUID().uuidString.prefix(6)
        let accepted = NIOLockedValueBox(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<senders {
                group.addTask {
                    for index in stride(from: sender, to: count, by: senders) {
                        let answer = try await stack.customerSays("m\(tag)-\(index)", from: "+1555880\(String(format: "%04d", index % 40))")
                        if answer["webhookStatus"]?.double == 200 { accepted.withLockedValue { $0 += 1 } }
                        try await Task.sleep(for: .milliseconds(40))
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
        _ = await eventually(timeout: .seconds(60)) { (try? await counts().count) == count }
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
        try await withStack(options) { stack in
            var rows: [Row] = []
            rows.append(try await measure(stack, fault: "none (baseline)", count: 60) {})
            rows.append(try await measure(stack, fault: "kill -9 messaging-ingress, restart", count: 80) {
                try await Task.sleep(for: .milliseconds(400))
                let ingress = try #require(stack.processes("messaging-ingress").first { $0.isRunning })
                _ = await ingress.signal(SIGKILL, timeout: .seconds(5))
                try await Task.sleep(for: .milliseconds(500))
                try await stack.launch("messaging-ingress", port: stack.ingressPort)
            })
            rows.append(try await measure(stack, fault: "kill -9 one of two agent-workers, start one", count: 80) {
                try await Task.sleep(for: .milliseconds(400))
                let worker = try #require(stack.processes("agent-worker").first { $0.isRunning })
                _ = await worker.signal(SIGKILL, timeout: .seconds(5))
                try await stack.startWorker(id: "worker-\(UUID().uuidString.prefix(4))")
            })
            rows.append(try await measure(stack, fault: "kill -9 outbound, restart", count: 80) {
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
}
