import AgentConnectCore
import AsyncHTTPClient
import EventBus
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import PostgresNIO
import Store

#if canImport(Glibc)
import Glibc
#endif

/// Runs an agent — the built-in `agent-worker` or your own agent executable — against twilio-sim,
/// with the real services around it, so a Swift Testing test can script conversations:
///
/// ```swift
/// @Test func hours() async throws {
///     try await AgentHarness.run(agent: "example-sms-bot") { harness in
///         let call = try await harness.call(from: "+15551230000")
///         try await call.say("What are your hours?")
///         #expect(try await call.reply().contains("9am"))
///         let sms = try await harness.conversation(from: "+15551230000")
///         try await sms.send("thanks")
///         try await sms.expectReply(contains: "Thanks")
///     }
/// }
/// ```
///
/// It needs Redis and PostgreSQL (`AC_REDIS_PORT`, `AC_PG_PORT`, default 16379 and 15432, as
/// `make test` runs them; `AC_PG_USER`, default `agentconnect`) and the built executables
/// (`AGENTCONNECT_BIN_DIR`, default `.build/debug`). Each harness gets a Redis database and a
/// PostgreSQL database of its own, and free ports, so harnesses run in parallel.
public final class AgentHarness: Sendable {
    /// Which agent and what else to start.
    public struct Options: Sendable {
        /// The agent executable (`agent-worker`, or an example / your own TAC program).
        public var agent: String
        /// Extra environment for every process (e.g. `TAC_AGENT`, `OPENAI_BASE_URL`).
        public var environment: [String: String]
        /// Copies of the agent (they share the conversations, as in production).
        public var agents: Int
        /// How long a reply may take.
        public var replyTimeout: Duration

        public init(agent: String = "agent-worker", environment: [String: String] = [:], agents: Int = 1, replyTimeout: Duration = .seconds(15)) {
            self.agent = agent
            self.environment = environment
            self.agents = agents
            self.replyTimeout = replyTimeout
        }
    }

    /// The options it started with.
    public let options: Options
    /// The environment every process got.
    public let environment: [String: String]
    /// twilio-sim's base URL.
    public let simURL: String
    /// The PostgreSQL database's URL (inspect history, tool calls, memory).
    public let databaseURL: String
    let logDirectory: String
    private let processes = NIOLockedValueBox<[HarnessProcess]>([])
    let postgres: PostgresClient
    private let postgresTask: Task<Void, Never>

    private init(options: Options, environment: [String: String], simURL: String, databaseURL: String, logDirectory: String) throws {
        let configuration = try DatabaseConfiguration(url: databaseURL)
        let client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: Logger(label: "harness"))
        postgres = client
        postgresTask = Task { await client.run() }
        self.options = options
        self.environment = environment
        self.simURL = simURL
        self.databaseURL = databaseURL
        self.logDirectory = logDirectory
    }

    /// Starts a harness, runs `body`, and always stops it. A failure carries the processes' logs.
    public static func run<T: Sendable>(agent: String = "agent-worker", environment: [String: String] = [:], _ body: (AgentHarness) async throws -> T)
        async throws -> T
    {
        try await run(Options(agent: agent, environment: environment), body)
    }

    /// ``run(agent:environment:_:)`` with all the options.
    public static func run<T: Sendable>(_ options: Options, _ body: (AgentHarness) async throws -> T) async throws -> T {
        let harness = try await start(options)
        do {
            let result = try await body(harness)
            await harness.stop()
            return result
        } catch {
            let logs = harness.logs
            await harness.stop()
            throw HarnessError("\(error)\n\(logs)")
        }
    }

    /// Starts the sim, the services and the agent, and waits until every one is ready.
    public static func start(_ options: Options) async throws -> AgentHarness {
        let env = ProcessInfo.processInfo.environment
        let redisPort = Int(env["AC_REDIS_PORT"] ?? "") ?? 16379
        let postgresPort = Int(env["AC_PG_PORT"] ?? "") ?? 15432
        let postgresUser = env["AC_PG_USER"] ?? "agentconnect"
        let redisDatabase = try await freshRedisDatabase(port: redisPort)
        let databaseName = try await freshPostgresDatabase(port: postgresPort, user: postgresUser)
        let databaseURL = "postgres://\(postgresUser)@127.0.0.1:\(postgresPort)/\(databaseName)"

        let ports = (sim: freePort(), ingress: freePort(), outbound: freePort(), relay: freePort())
        let logDirectory = NSTemporaryDirectory() + "agentconnect-harness-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        var environment = developmentEnvironment
        environment.merge([
            "REDIS_URL": "redis://127.0.0.1:\(redisPort)/\(redisDatabase)", "DATABASE_URL": databaseURL,
            "TWILIO_API_BASE_URL": "http://127.0.0.1:\(ports.sim)", "TWILIO_CONVERSATIONS_BASE_URL": "http://127.0.0.1:\(ports.sim)",
            "TWILIO_STUDIO_BASE_URL": "http://127.0.0.1:\(ports.sim)",
            "SIM_MESSAGING_URL": "http://127.0.0.1:\(ports.ingress)", "SIM_VOICE_URL": "http://127.0.0.1:\(ports.relay)",
            "TWILIO_VOICE_PUBLIC_DOMAIN": "127.0.0.1:\(ports.relay)", "OUTBOUND_URL": "http://127.0.0.1:\(ports.outbound)",
            "AGENT_LEASE_TTL_MS": "1500", "AGENT_VISIBILITY_TIMEOUT_MS": "1000", "OUTBOUND_RETRY_BASE_MS": "20", "OUTBOUND_RETRY_MAX_MS": "200",
            "LOG_LEVEL": "info",
        ]) { $1 }
        environment.merge(options.environment) { $1 }
        let harness = try AgentHarness(
            options: options, environment: environment, simURL: "http://127.0.0.1:\(ports.sim)", databaseURL: databaseURL, logDirectory: logDirectory)
        do {
            try await harness.launch("migrate", port: nil)
            try await harness.launch("twilio-sim", port: ports.sim)
            try await harness.launch("messaging-ingress", port: ports.ingress)
            try await harness.launch("outbound", port: ports.outbound)
            try await harness.launch("voice-relay", port: ports.relay)
            for index in 0..<options.agents {
                try await harness.launch(options.agent, port: freePort(), extra: ["INSTANCE_ID": "agent-\(index)"])
            }
        } catch {
            let logs = harness.logs
            await harness.stop()
            throw HarnessError("the harness did not start: \(error)\n\(logs)")
        }
        return harness
    }

    /// Stops every process (SIGTERM, then SIGKILL after 5 s) and drops the harness's database (each
    /// harness makes its own; left behind, hundreds of runs fill the disk).
    public func stop() async {
        for process in processes.withLockedValue({ $0 }) { await process.stop() }
        postgresTask.cancel()
        guard let configuration = try? DatabaseConfiguration(url: databaseURL) else { return }
        try? await withTimeout(.seconds(30), "dropping the harness database") {
            let logger = Logger(label: "harness")
            let connection = try await PostgresConnection.connect(
                configuration: .init(
                    host: configuration.host, port: configuration.port, username: configuration.username, password: nil, database: "postgres",
                    tls: .disable),
                id: 1, logger: logger)
            // The name is the harness's own (`harness_` and hex), never outside input.
            let drop = PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(configuration.database) WITH (FORCE)")
            do {
                try await connection.query(drop, logger: logger)
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
        }
    }

    /// The last part of every process's log.
    public var logs: String {
        processes.withLockedValue { $0 }.map { "--- \($0.name)\n\($0.log.suffix(3000))" }.joined(separator: "\n")
    }

    /// The agent processes' logs.
    public var agentLog: String {
        processes.withLockedValue { $0 }.filter { $0.name == options.agent }.map(\.log).joined(separator: "\n")
    }

    // MARK: conversations

    /// A phone call from `from` to the agent's number, through the sim's phone (a real
    /// ConversationRelay socket to voice-relay).
    public func call(from: String = "+15551230000") async throws -> HarnessCall {
        let events = try await SimEvents.open(simURL: simURL)
        let answer = try await post("/sim/phone/calls", ["from": .string(from)])
        guard let sid = answer["callSid"]?.string else {
            events.close()
            throw HarnessError("the sim did not place the call: \(answer.compactJSON)")
        }
        return HarnessCall(harness: self, callSid: sid, events: events)
    }

    /// A messaging conversation with the customer `from` on `channel` (`sms`, `whatsapp`, `rcs`,
    /// `chat`); it starts with the first ``HarnessConversation/send(_:)``.
    public func conversation(from: String = "+15551230000", channel: String = "sms") -> HarnessConversation {
        HarnessConversation(harness: self, customer: from, channel: channel)
    }

    /// The tool calls the agent's loop made in a conversation, oldest first.
    public func toolCalls(conversationId: String) async throws -> [ToolCallRecord] {
        try await withStore { try await $0.toolCalls(conversationId: conversationId, limit: 1000) }
    }

    /// Messages the agent sent to `to` outside a given conversation (e.g. an SMS during a call).
    public func messages(to: String, atLeast count: Int = 1, timeout: Duration = .seconds(10)) async throws -> [String] {
        let query = "to=\(Self.escape(to))&count=\(count)&waitMs=\(timeout.milliseconds)"
        return (try await get("/sim/messages?\(query)")["messages"]?.array ?? []).compactMap { $0["text"]?.string }
    }

    /// The REST requests twilio-sim received whose path contains `path` (method, path, body, form).
    public func simRequests(path: String) async throws -> [JSONValue] {
        try await get("/sim/requests?path=\(Self.escape(path))")["requests"]?.array ?? []
    }

    /// Studio executions the agent started (handoffs of messaging conversations).
    public func handoffs() async throws -> [JSONValue] {
        (try await get("/sim/requests?path=/Executions")["requests"]?.array ?? []).filter { $0["method"]?.string == "POST" }
    }

    /// Runs `body` with the harness's PostgreSQL.
    package func withStore<T: Sendable>(_ body: @Sendable (PostgresStore) async throws -> T) async throws -> T {
        try await body(PostgresStore(client: postgres, logger: Logger(label: "harness")))
    }

    // MARK: plumbing

    func post(_ path: String, _ body: JSONValue) async throws -> JSONValue {
        try await request(.POST, path, body: body)
    }

    func get(_ path: String) async throws -> JSONValue {
        try await request(.GET, path, body: nil)
    }

    private func request(_ method: HTTPMethod, _ path: String, body: JSONValue?) async throws -> JSONValue {
        var request = HTTPClientRequest(url: simURL + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body.compactJSON))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        guard (200..<300).contains(response.status.code) else {
            throw HarnessError("twilio-sim answered \(response.status.code) to \(method.rawValue) \(path): \(String(buffer: bytes).prefix(300))")
        }
        return (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: bytes))) ?? .null
    }

    static func escape(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? value
    }

    private func launch(_ executable: String, port: Int?, extra: [String: String] = [:]) async throws {
        let process = try HarnessProcess(
            executable, port: port, environment: environment.merging(extra) { $1 }, logDirectory: logDirectory)
        processes.withLockedValue { $0.append(process) }
        if let port {
            try await process.waitReady(port: port)
        } else {
            guard try await process.waitExit(timeout: .seconds(60)) == 0 else { throw HarnessError("\(executable) failed:\n\(process.log)") }
        }
    }

    /// `deploy/local.env`: the development values the stack runs with against the sim.
    static let developmentEnvironment: [String: String] = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        guard let text = try? String(contentsOfFile: url.path + "/deploy/local.env", encoding: .utf8) else { return [:] }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        return values
    }()

    private static func freshRedisDatabase(port: Int) async throws -> Int {
        let admin = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: port), logger: Logger(label: "harness"))
        defer { admin.shutdown() }
        let counter = try await admin.command("INCR", "agentconnect:test:database").integer ?? 1
        let database = 1 + Int(counter % 1000)
        let client = RedisClient(
            configuration: RedisConfiguration(host: "127.0.0.1", port: port, database: database), logger: Logger(label: "harness"))
        defer { client.shutdown() }
        try await client.command("FLUSHDB")
        return database
    }

    private static func freshPostgresDatabase(port: Int, user: String) async throws -> String {
        let name = "harness_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        let logger = Logger(label: "harness")
        let connection = try await PostgresConnection.connect(
            configuration: .init(host: "127.0.0.1", port: port, username: user, password: nil, database: "postgres", tls: .disable), id: 1,
            logger: logger)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
        return String(name)
    }

    /// Ports already handed out in this process: tests run in parallel, and a port just closed may be
    /// picked again before the first caller's service has bound it.
    private static let handedOut = NIOLockedValueBox<Set<Int>>([])

    /// A TCP port nothing listens on right now, never the same twice in one process. It lies outside
    /// the kernel's ephemeral range when it can: a port the kernel picks for a listener comes from the
    /// range it also gives outgoing connections, so a client's PostgreSQL or Redis socket could take
    /// it before the service binds it ("Address already in use").
    package static func freePort() -> Int {
        let range = portRange
        for _ in 0..<10_000 {
            let port = Int.random(in: range)
            guard probe(port) != nil, handedOut.withLockedValue({ $0.insert(port).inserted }) else { continue }
            return port
        }
        // A crowded range: let the kernel pick (still never handed out twice).
        while true {
            if let port = probe(0), handedOut.withLockedValue({ $0.insert(port).inserted }) { return port }
        }
    }

    /// 20000 up to the ephemeral range; when that range starts lower (a host tuned to "1024 65535"),
    /// the ports above it; when there are none, any unprivileged port.
    private static let portRange: ClosedRange<Int> = {
        let bounds = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        let low = bounds?.first ?? 32_768
        let high = bounds?.dropFirst().first ?? 60_999
        if low > 21_000 { return 20_000...(low - 1) }
        if high < 64_000 { return (high + 1)...65_535 }
        return 1_024...65_535
    }()

    /// Binds a socket to 127.0.0.1:`port` (0: the kernel picks) and closes it: the port it got, or
    /// nil when the bind failed.
    private static func probe(_ port: Int) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { return nil }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// What went wrong in the harness, with the details.
public struct HarnessError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

extension Duration {
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
