import AgentConnectCore
import ArgumentParser
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import TwilioKit

/// Webhook→action latency at a fixed rate, and the maximum sustained rate, through the real
/// messaging-ingress, agent-worker and outbound, with this process playing Conversation Orchestrator.
struct MessagingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "messaging")

    @Option var ingress = "http://127.0.0.1:18082"
    @Option var twilioPort = 19190
    @Option var authToken = "dev-auth-token-not-a-secret"
    @Option var agent = "+15550000001"
    @Option var rate = 500
    @Option var seconds = 10
    @Option var concurrency = 64
    @Option var conversations = 200

    func run() async throws {
        let logger = Logger(label: "bench")
        let clock = ContinuousClock()
        let sent = NIOLockedValueBox<[Int: ContinuousClock.Instant]>([:])
        let arrived = NIOLockedValueBox<[Int: ContinuousClock.Instant]>([:])
        let agent = agent
        let router = Router()
        router.get("/v2/Conversations/:id/Participants") { _, context in
            let id = context.parameters.get("id") ?? ""
            let body = #"{"participants":[{"id":"PC\#(id)","type":"CUSTOMER","addresses":[{"channel":"SMS","address":"+1666\#(id.suffix(7))"}]},{"id":"PA\#(id)","type":"AI_AGENT","addresses":[{"channel":"SMS","address":"\#(agent)"}]}]}"#
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.post("/v2/Conversations/:id/Actions") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            let now = clock.now
            if let json = try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: body)),
                let text = json["payload"]?["content"]?["text"]?.string, let n = Int(text.split(separator: "m").last ?? "")
            {
                arrived.withLockedValue { $0[n] = now }
            }
            return Response(status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"id":"act","status":"PENDING"}"#)))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: twilioPort)), logger: logger)
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency + 8)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        let signer = TwilioSignature(authToken: authToken)
        let ingress = ingress
        let conversations = conversations

        @Sendable func webhook(_ n: Int) async throws {
            let conversation = "benchconv\(String(format: "%07d", n % conversations))"
            let body = #"{"eventType":"COMMUNICATION_CREATED","data":{"id":"comm\#(n)-\#(UUID().uuidString.prefix(8))","conversationId":"\#(conversation)","accountId":"ACbench","author":{"address":"+1666\#(conversation.suffix(7))","channel":"SMS","participantId":"PC\#(conversation)"},"content":{"type":"TEXT","text":"m\#(n)"},"recipients":[{"address":"\#(agent)","channel":"SMS","participantId":"PA\#(conversation)"}]}}"#
            let bytes = Array(body.utf8)
            let url = "\(ingress)/webhook?bodySHA256=\(TwilioSignature.bodyHash(bytes))"
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "X-Twilio-Signature", value: signer.compute(url: url))
            request.body = .bytes(ByteBuffer(bytes: bytes))
            sent.withLockedValue { $0[n] = clock.now }
            let response = try await http.execute(request, timeout: .seconds(30))
            _ = try await response.body.collect(upTo: 4096)
            guard response.status == .ok else { throw CleanExit.message("webhook answered \(response.status.code)") }
        }

        @Sendable func waitForReply(_ n: Int, timeout: Duration) async {
            let deadline = clock.now + timeout
            while arrived.withLockedValue({ $0[n] == nil }), clock.now < deadline {
                try? await Task.sleep(for: .milliseconds(1))
            }
        }

        try await withThrowingTaskGroup(of: Void.self) { server in
            server.addTask { try await app.runService() }
            try await Task.sleep(for: .milliseconds(300))
            // Warm-up: reconcile every conversation once (remembered in PostgreSQL afterwards).
            var base = 1_000_000
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in base..<(base + conversations) { group.addTask { try await webhook(n) } }
                try await group.waitForAll()
            }
            for n in base..<(base + conversations) { await waitForReply(n, timeout: .seconds(10)) }

            // 1. Fixed rate.
            base = 2_000_000
            let total = rate * seconds
            let interval = Duration.seconds(1) / rate
            var next = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in base..<(base + total) {
                    try await clock.sleep(until: next)
                    next += interval
                    group.addTask { try await webhook(n) }
                }
                try await group.waitForAll()
            }
            for n in base..<(base + total) { await waitForReply(n, timeout: .seconds(10)) }
            var latencies = Samples()
            var lost = 0
            for n in base..<(base + total) {
                guard let start = sent.withLockedValue({ $0[n] }), let end = arrived.withLockedValue({ $0[n] }) else {
                    lost += 1
                    continue
                }
                latencies.add(end - start)
            }
            row("messaging webhook→SEND_MESSAGE p50 at \(rate)/s (ms)", format(latencies.percentile(50)))
            row("messaging webhook→SEND_MESSAGE p99 at \(rate)/s (ms)", format(latencies.percentile(99)))
            row("messaging replies missing at \(rate)/s", String(lost))

            // 2. Maximum sustained rate: closed loop, `concurrency` customers writing back to back.
            base = 3_000_000
            let counter = NIOLockedValueBox(base)
            let deadline = clock.now + .seconds(seconds)
            let started = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<concurrency {
                    group.addTask {
                        while clock.now < deadline {
                            let n = counter.withLockedValue { value -> Int in
                                value += 1
                                return value
                            }
                            try await webhook(n)
                            await waitForReply(n, timeout: .seconds(10))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = clock.now - started
            let replied = arrived.withLockedValue { $0.keys.filter { $0 > base }.count }
            row("messaging max sustained rate, webhook→reply (messages/s)", String(Int(Double(replied) / elapsed.inSeconds)))
            server.cancelAll()
        }
        try await http.shutdown()
    }
}
