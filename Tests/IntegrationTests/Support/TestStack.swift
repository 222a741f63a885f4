import AgentConnectCore
import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The services as real processes on free ports, with a Redis database and a PostgreSQL database of
/// their own, and twilio-sim playing Twilio.
final class TestStack: Sendable {
    let redis: TestRedis
    let database: TestDatabase
    let logDirectory: String
    let simPort: Int
    let ingressPort: Int
    let outboundPort: Int
    let relayPorts: [Int]
    let environment: [String: String]
    private let processes = NIOLockedValueBox<[ServiceProcess]>([])

    /// Which services to start.
    struct Options {
        var workers = 1
        var relays = 0
        var outbound = true
        var ingress = true
        var extra: [String: String] = [:]
    }

    private init(redis: TestRedis, database: TestDatabase, options: Options) throws {
        self.redis = redis
        self.database = database
        logDirectory = NSTemporaryDirectory() + "agentconnect-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        simPort = TestEnvironment.freePort()
        ingressPort = TestEnvironment.freePort()
        outboundPort = TestEnvironment.freePort()
        relayPorts = (0..<options.relays).map { _ in TestEnvironment.freePort() }
        var env = TestEnvironment.localEnv
        let sim = "http://127.0.0.1:\(simPort)"
        env.merge([
            "REDIS_URL": redis.url, "DATABASE_URL": database.url,
            "TWILIO_API_BASE_URL": sim, "TWILIO_CONVERSATIONS_BASE_URL": sim, "TWILIO_STUDIO_BASE_URL": sim,
            "SIM_MESSAGING_URL": "http://127.0.0.1:\(ingressPort)",
            "SIM_VOICE_URL": "http://127.0.0.1:\(relayPorts.first ?? 1)",
            "TWILIO_VOICE_PUBLIC_DOMAIN": "127.0.0.1:\(relayPorts.first ?? 1)",
            "OUTBOUND_URL": "http://127.0.0.1:\(outboundPort)",
            "AGENT_LEASE_TTL_MS": "1500", "AGENT_VISIBILITY_TIMEOUT_MS": "1000", "VOICE_GENERATION_TAKEOVER_MS": "500",
            "OUTBOUND_RETRY_BASE_MS": "20", "OUTBOUND_RETRY_MAX_MS": "200", "SIM_WEBHOOK_RETRIES": "20",
            "LOG_LEVEL": "info",
        ]) { _, new in new }
        env.merge(options.extra) { _, new in new }
        environment = env
    }

    /// Starts the stack and waits until every service is ready.
    static func start(_ options: Options = Options()) async throws -> TestStack {
        let stack = try TestStack(redis: try await TestRedis.make(), database: try await TestDatabase.migrated(), options: options)
        try await stack.launch("twilio-sim", port: stack.simPort)
        if options.ingress { try await stack.launch("messaging-ingress", port: stack.ingressPort) }
        if options.outbound { try await stack.launch("outbound", port: stack.outboundPort) }
        for (index, port) in stack.relayPorts.enumerated() {
            // Each relay is its own public host (signatures are checked against the configured domain only).
            try await stack.launch(
                "voice-relay", port: port, extra: ["INSTANCE_ID": "relay-\(index)", "TWILIO_VOICE_PUBLIC_DOMAIN": "127.0.0.1:\(port)"])
        }
        for index in 0..<options.workers { try await stack.startWorker(id: "worker-\(index)") }
        return stack
    }

    /// Starts one more agent-worker.
    @discardableResult
    func startWorker(id: String, extra: [String: String] = [:]) async throws -> ServiceProcess {
        try await launch("agent-worker", port: TestEnvironment.freePort(), extra: ["INSTANCE_ID": id].merging(extra) { _, new in new })
    }

    @discardableResult
    func launch(_ executable: String, port: Int, extra: [String: String] = [:]) async throws -> ServiceProcess {
        let process = try ServiceProcess(
            executable, port: port, environment: environment.merging(extra) { _, new in new }, logDirectory: logDirectory)
        processes.withLockedValue { $0.append(process) }
        try await process.waitReady()
        return process
    }

    /// The running processes of one executable.
    func processes(_ executable: String) -> [ServiceProcess] {
        processes.withLockedValue { $0.filter { $0.name == executable && $0.isRunning } }
    }

    /// Stops everything (SIGTERM, then SIGKILL after a few seconds).
    func stop(timeout: Duration = .seconds(5)) async {
        for process in processes.withLockedValue({ $0 }) where process.isRunning {
            _ = await process.signal(SIGTERM, timeout: timeout)
        }
    }

    /// Every process's log, for failure messages.
    var logs: String {
        processes.withLockedValue { $0 }.map { "--- \($0.name):\($0.port)\n\($0.log.suffix(4000))" }.joined(separator: "\n")
    }

    // MARK: talking to the sim

    /// A JSON request to the sim's control API.
    func sim(_ method: HTTPMethod, _ path: String, _ body: JSONValue? = nil) async throws -> JSONValue {
        try await Self.request(method, "http://127.0.0.1:\(simPort)\(path)", body: body).json
    }

    /// A customer message through the sim; returns the conversation id (or message SID for classic).
    @discardableResult
    func customerSays(_ text: String, channel: String = "sms", from: String = "+15551230000", extra: [String: JSONValue] = [:]) async throws
        -> JSONValue
    {
        var body: [String: JSONValue] = ["channel": .string(channel), "from": .string(from), "text": .string(text)]
        body.merge(extra) { _, new in new }
        return try await sim(.POST, "/sim/messages", .object(body))
    }

    /// Messages the agent sent, waiting until `count` match.
    func agentMessages(conversationId: String? = nil, to: String? = nil, count: Int = 1, waitMs: Int = 10_000) async throws -> [JSONValue] {
        var query: [String] = ["count=\(count)", "waitMs=\(waitMs)"]
        if let conversationId { query.append("conversationId=\(conversationId)") }
        if let to { query.append("to=\(to.replacingOccurrences(of: "+", with: "%2B").replacingOccurrences(of: ":", with: "%3A"))") }
        return try await sim(.GET, "/sim/messages?" + query.joined(separator: "&"))["messages"]?.array ?? []
    }

    /// REST requests the sim received whose path contains `path`.
    func simRequests(path: String) async throws -> [JSONValue] {
        try await sim(.GET, "/sim/requests?path=\(path)")["requests"]?.array ?? []
    }

    struct HTTPResult {
        var status: Int
        var body: String
        var json: JSONValue { (try? JSONDecoder().decode(JSONValue.self, from: Data(body.utf8))) ?? .null }
    }

    /// Any HTTP request, returning status and body.
    static func request(
        _ method: HTTPMethod, _ url: String, body: JSONValue? = nil, rawBody: [UInt8]? = nil, headers: [(String, String)] = []
    ) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        }
        if let rawBody { request.body = .bytes(ByteBuffer(bytes: rawBody)) }
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        let prepared = request
        // The client's timeout covers the request; the outer bound also covers reading the body.
        return try await withTimeout(.seconds(40), "\(method) \(url)") {
            let response = try await HTTPClient.shared.execute(prepared, timeout: .seconds(30))
            let buffer = try await response.body.collect(upTo: 16 << 20)
            return HTTPResult(status: Int(response.status.code), body: String(buffer: buffer))
        }
    }
}
