import AgentConnectCore
import ArgumentParser
import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdWSClient
import HummingbirdWebSocket
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// This machine's ceilings, measured in the same run: a bare Hummingbird route's request rate and
/// loopback WebSocket echo latency (client and server in one process, sharing the cores).
struct CeilingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ceiling")

    @Option var port = 19191
    @Option var seconds = 5
    @Option var concurrency = 64

    func run() async throws {
        let logger = Logger(label: "bench")
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.post("/echo") { request, _ in
            Response(status: .ok, body: .init(byteBuffer: try await request.body.collect(upTo: 1 << 16)))
        }
        router.ws("/ws") { inbound, outbound, _ in
            for try await message in inbound.messages(maxSize: 1 << 16) {
                if case .text(let text) = message { try await outbound.write(.text(text)) }
            }
        }
        let app = Application(
            router: router, server: .http1WebSocketUpgrade(webSocketRouter: router),
            configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let port = port
        let seconds = seconds
        try await withThrowingTaskGroup(of: Void.self) { server in
            server.addTask { try await app.runInLoadGenerator() }
            try await Task.sleep(for: .milliseconds(300))
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(seconds)
            let done = NIOLockedValueBox(0)
            let started = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<concurrency {
                    group.addTask {
                        while clock.now < deadline {
                            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/echo")
                            request.method = .POST
                            request.body = .bytes(ByteBuffer(string: #"{"eventType":"COMMUNICATION_CREATED"}"#))
                            let response = try await http.execute(request, timeout: .seconds(10))
                            _ = try await response.body.collect(upTo: 1 << 16)
                            done.withLockedValue { $0 += 1 }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = clock.now - started
            let rate = Double(done.withLockedValue { $0 }) / elapsed.inSeconds
            row("ceiling: bare Hummingbird POST route, \(concurrency) keep-alive clients (req/s)", String(Int(rate)))

            let echo = try await withThrowingTaskGroup(of: Samples.self) { group in
                group.addTask {
                    let samples = NIOLockedValueBox(Samples())
                    _ = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/ws", logger: logger) { inbound, outbound, _ in
                        var iterator = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                        for _ in 0..<2000 {
                            let start = clock.now
                            try await outbound.write(.text(#"{"type":"text","token":"hello ","last":false}"#))
                            _ = try await iterator.next()
                            samples.withLockedValue { $0.add(clock.now - start) }
                        }
                    }
                    return samples.withLockedValue { $0 }
                }
                return try await group.next() ?? Samples()
            }
            row(
                "ceiling: loopback WebSocket echo p50 / p99 (ms)",
                "\(format(echo.percentile(50), digits: 3)) / \(format(echo.percentile(99), digits: 3))")
            server.cancelAll()
        }
        try await http.shutdown()
    }
}

extension ApplicationProtocol {
    /// Runs a server inside the load generator. No signal handling of its own: SIGTERM or Ctrl-C
    /// ends the whole load generator, not only its server.
    func runInLoadGenerator() async throws {
        try await runService(gracefulShutdownSignals: [])
    }
}
