import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing
import TwilioKit

/// The HTTP/1.1 client behind every Twilio REST call, against a real server on a real socket: what it
/// reuses, when it gives up, and which failures it marks as never sent (the reply path retries those
/// without looking for a message Twilio may have created).
@Suite("HTTP1Client: keep-alive, deadlines, limits, never-sent failures, TLS")
struct HTTP1ClientTests {
    @Test("sequential requests share one keep-alive connection; method, body and Host arrive as sent")
    func keepAlive() async throws {
        try await TestHTTPServer.with { server in
            let client = HTTP1Client()
            defer { Task { await client.shutdown() } }
            var connections = Set<String>()
            for n in 0..<3 {
                let response = try await client.execute(
                    .POST, url: "\(server.url)/echo?n=\(n)", headers: ["X-Test": "yes"], body: ByteBuffer(string: "body \(n)"), timeout: .seconds(5))
                #expect(response.status == .ok)
                let echo = String(buffer: response.body)
                #expect(echo.hasPrefix("POST /echo?n=\(n) host=127.0.0.1:\(server.port) x-test=yes body=body \(n) conn="))
                connections.insert(String(echo.split(separator: "conn=").last ?? ""))
            }
            #expect(connections.count == 1)
            #expect(server.connectionsAccepted == 1)
        }
    }

    @Test("Connection: close and a server closing an idle connection are followed by a new connection, without an error")
    func serverCloses() async throws {
        try await TestHTTPServer.with { server in
            let client = HTTP1Client()
            defer { Task { await client.shutdown() } }
            _ = try await client.execute(.GET, url: "\(server.url)/close", timeout: .seconds(5))
            _ = try await client.execute(.GET, url: "\(server.url)/ok", timeout: .seconds(5))
            #expect(server.connectionsAccepted == 2)
            // On the second connection, answered with keep-alive, then closed by the server while idle in the pool.
            _ = try await client.execute(.GET, url: "\(server.url)/close-after", timeout: .seconds(5))
            #expect(server.connectionsAccepted == 2)
            try await Task.sleep(for: .milliseconds(200))
            let response = try await client.execute(.GET, url: "\(server.url)/ok", timeout: .seconds(5))
            #expect(response.status == .ok)
            #expect(server.connectionsAccepted == 3)
        }
    }

    @Test("a request past its deadline fails as a timeout that may have been sent; the next request gets a fresh connection")
    func deadline() async throws {
        try await TestHTTPServer.with { server in
            let client = HTTP1Client()
            defer { Task { await client.shutdown() } }
            let started = ContinuousClock.now
            await #expect {
                _ = try await client.execute(.POST, url: "\(server.url)/never", body: ByteBuffer(string: "x"), timeout: .milliseconds(300))
            } throws: { error in
                guard let error = error as? HTTP1ClientError else { return false }
                return error.kind == .timeout && !error.neverSent
            }
            #expect(ContinuousClock.now - started < .seconds(3))
            let response = try await client.execute(.GET, url: "\(server.url)/ok", timeout: .seconds(5))
            #expect(response.status == .ok)
            #expect(server.connectionsAccepted == 2)
        }
    }

    @Test("no server: the failure says the request never left; a bad URL too")
    func neverSent() async throws {
        let client = HTTP1Client()
        defer { Task { await client.shutdown() } }
        let port = TestEnvironment.freePort()
        await #expect {
            _ = try await client.execute(.POST, url: "http://127.0.0.1:\(port)/x", body: ByteBuffer(string: "x"), timeout: .seconds(5))
        } throws: { error in
            guard let error = error as? HTTP1ClientError else { return false }
            return error.kind == .connect && error.neverSent
        }
        for url in [
            "ftp://example.com/x", "http://user@host/x", "http:///x", "http://host:99999/x", "http://host:+80/x", "http://host/a b",
            "http://host/a\r\nX: y",
        ] {
            await #expect {
                _ = try await client.execute(.GET, url: url, timeout: .seconds(1))
            } throws: { error in
                (error as? HTTP1ClientError)?.kind == .invalidURL
            }
        }
    }

    @Test("a connection dropped before the answer and a response over the limit fail, and may have been sent")
    func droppedAndTooLarge() async throws {
        try await TestHTTPServer.with { server in
            var configuration = HTTP1Client.Configuration()
            configuration.maxResponseBytes = 1024
            let client = HTTP1Client(configuration: configuration)
            defer { Task { await client.shutdown() } }
            await #expect {
                _ = try await client.execute(.POST, url: "\(server.url)/drop", body: ByteBuffer(string: "x"), timeout: .seconds(5))
            } throws: { error in
                guard let error = error as? HTTP1ClientError else { return false }
                return error.kind == .closed && !error.neverSent
            }
            await #expect {
                _ = try await client.execute(.GET, url: "\(server.url)/big", timeout: .seconds(5))
            } throws: { error in
                (error as? HTTP1ClientError)?.kind == .responseTooLarge
            }
            let after = try await client.execute(.GET, url: "\(server.url)/ok", timeout: .seconds(5))
            #expect(after.status == .ok)
        }
    }

    @Test("cancelling the caller ends the request at once")
    func cancellation() async throws {
        try await TestHTTPServer.with { server in
            let client = HTTP1Client()
            defer { Task { await client.shutdown() } }
            let task = Task { try await client.execute(.GET, url: "\(server.url)/never", timeout: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(200))
            let started = ContinuousClock.now
            task.cancel()
            await #expect(throws: CancellationError.self) { _ = try await task.value }
            #expect(ContinuousClock.now - started < .seconds(2))
        }
    }

    @Test("at most maxConnectionsPerHost connections: more requests at once wait their turn and all succeed")
    func connectionLimit() async throws {
        try await TestHTTPServer.with { server in
            var configuration = HTTP1Client.Configuration()
            configuration.maxConnectionsPerHost = 2
            let client = HTTP1Client(configuration: configuration)
            defer { Task { await client.shutdown() } }
            try await withThrowingTaskGroup(of: HTTPResponseStatus.self) { group in
                for _ in 0..<6 { group.addTask { try await client.execute(.GET, url: "\(server.url)/slow", timeout: .seconds(10)).status } }
                for try await status in group { #expect(status == .ok) }
            }
            #expect(server.connectionsAccepted == 2)
            #expect(server.mostAtOnce == 2)
        }
    }

    @Test("a request that runs out of time or is cancelled while waiting for a connection is never written")
    func waitingNeverWrites() async throws {
        try await TestHTTPServer.with { server in
            var configuration = HTTP1Client.Configuration()
            configuration.maxConnectionsPerHost = 1
            let client = HTTP1Client(configuration: configuration)
            defer { Task { await client.shutdown() } }
            let holder = Task { try await client.execute(.GET, url: "\(server.url)/never", timeout: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(200))
            await #expect {
                _ = try await client.execute(.POST, url: "\(server.url)/echo", body: ByteBuffer(string: "x"), timeout: .milliseconds(300))
            } throws: { error in
                guard let error = error as? HTTP1ClientError else { return false }
                return error.kind == .timeout && error.neverSent
            }
            let waiting = Task { try await client.execute(.POST, url: "\(server.url)/echo", body: ByteBuffer(string: "x"), timeout: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(200))
            waiting.cancel()
            await #expect(throws: CancellationError.self) { _ = try await waiting.value }
            #expect(server.requestsSeen == 1)
            holder.cancel()
            _ = try? await holder.value
            // The place the cancelled holder's connection held is free again.
            let response = try await client.execute(.GET, url: "\(server.url)/ok", timeout: .seconds(5))
            #expect(response.status == .ok)
            #expect(server.requestsSeen == 2)
        }
    }

    @Test("https: verified against the configured CA (host name and IP); another CA's certificate is refused before anything is sent")
    func tls() async throws {
        let directory = NSTemporaryDirectory() + "agentconnect-http1-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pki = try await TestPKI.make(in: directory)
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(pki.certFile).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: pki.keyFile, format: .pem)))
        try await TestHTTPServer.with(tls: tls) { server in
            var trusting = HTTP1Client.Configuration()
            trusting.tls.trustRoots = .file(pki.caFile)
            let client = HTTP1Client(configuration: trusting)
            defer { Task { await client.shutdown() } }
            for host in ["localhost", "127.0.0.1"] {
                let response = try await client.execute(
                    .POST, url: "https://\(host):\(server.port)/echo", body: ByteBuffer(string: "s"), timeout: .seconds(5))
                #expect(String(buffer: response.body).hasPrefix("POST /echo host=\(host):\(server.port)"))
            }
            var wrong = HTTP1Client.Configuration()
            wrong.tls.trustRoots = .file(pki.wrongCAFile)
            let refusing = HTTP1Client(configuration: wrong)
            defer { Task { await refusing.shutdown() } }
            await #expect {
                _ = try await refusing.execute(
                    .POST, url: "https://localhost:\(server.port)/echo", body: ByteBuffer(string: "s"), timeout: .seconds(5))
            } throws: { error in
                guard let error = error as? HTTP1ClientError else { return false }
                return error.kind == .connect && error.neverSent
            }
            #expect(server.requestsSeen == 2)
        }
    }
}

/// An HTTP/1.1 server on 127.0.0.1 whose paths misbehave on purpose: `/echo` answers the request
/// back (and its connection's number), `/ok`, `/close` (with `Connection: close`), `/close-after`
/// (keep-alive, then closes 50 ms later), `/never` (no answer), `/drop` (closes without answering),
/// `/big` (a 4 KiB body), `/slow` (answers after 150 ms).
final class TestHTTPServer: Sendable {
    struct Counters {
        var accepted = 0
        var requests = 0
        var inFlight = 0
        var mostAtOnce = 0
    }

    let port: Int
    private let counters: NIOLockedValueBox<Counters>

    var url: String { "http://127.0.0.1:\(port)" }
    var connectionsAccepted: Int { counters.withLockedValue { $0.accepted } }
    var requestsSeen: Int { counters.withLockedValue { $0.requests } }
    var mostAtOnce: Int { counters.withLockedValue { $0.mostAtOnce } }

    private init(port: Int, counters: NIOLockedValueBox<Counters>) {
        self.port = port
        self.counters = counters
    }

    static func with(tls: TLSConfiguration? = nil, _ body: (TestHTTPServer) async throws -> Void) async throws {
        let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        let counters = NIOLockedValueBox(Counters())
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let number = counters.withLockedValue { state -> Int in
                        state.accepted += 1
                        return state.accepted
                    }
                    if let sslContext { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Responder(connection: number, counters: counters))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { channel.close(promise: nil) }
        try await body(TestHTTPServer(port: channel.localAddress?.port ?? 0, counters: counters))
    }

    private final class Responder: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let connection: Int
        let counters: NIOLockedValueBox<Counters>
        var head: HTTPRequestHead?
        var body = ""

        init(connection: Int, counters: NIOLockedValueBox<Counters>) {
            self.connection = connection
            self.counters = counters
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = ""
            case .body(let part):
                body += String(buffer: part)
            case .end:
                guard let head else { return }
                counters.withLockedValue { $0.requests += 1 }
                let path = String(head.uri.prefix { $0 != "?" })
                switch path {
                case "/echo":
                    let host = head.headers.first(name: "Host") ?? "-"
                    let test = head.headers.first(name: "X-Test").map { " x-test=\($0)" } ?? ""
                    respond(context, "\(head.method.rawValue) \(head.uri) host=\(host)\(test) body=\(body) conn=\(connection)")
                case "/close": respond(context, "closed", close: true)
                case "/close-after":
                    respond(context, "ok")
                    let channel = context.channel
                    context.eventLoop.scheduleTask(in: .milliseconds(50)) { channel.close(promise: nil) }
                case "/never": break
                case "/drop": context.close(promise: nil)
                case "/big": respond(context, String(repeating: "x", count: 4096))
                case "/slow":
                    counters.withLockedValue { state in
                        state.inFlight += 1
                        state.mostAtOnce = max(state.mostAtOnce, state.inFlight)
                    }
                    let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                    context.eventLoop.scheduleTask(in: .milliseconds(150)) {
                        let (responder, context) = bound.value
                        responder.counters.withLockedValue { $0.inFlight -= 1 }
                        responder.respond(context, "slow")
                    }
                default: respond(context, "ok")
                }
            }
        }

        func respond(_ context: ChannelHandlerContext, _ text: String, close: Bool = false) {
            var headers: HTTPHeaders = ["Content-Length": String(text.utf8.count)]
            if close { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if close { channel.close(promise: nil) }
            }
        }
    }
}
