import AgentConnectCore
import EventBus
import Foundation
import Store
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `agentconnect doctor` and `agentconnect dead-letters`, run as the built executable.
@Suite("agentconnect doctor and dead-letters")
struct CLIOperatorTests {
    /// Only twilio-sim: doctor needs Redis, PostgreSQL and a Twilio to ask, not the services.
    static let simOnly = TestStack.Options(workers: 0, relays: 0, outbound: false, ingress: false)

    // MARK: doctor

    @Test("doctor passes against a migrated database, a noeviction Redis and twilio-sim, one verdict per line")
    func doctorPasses() async throws {
        try await withStack(Self.simOnly) { stack in
            let result = try await CLIRun.agentconnect(["doctor"], environment: stack.environment)
            let lines = result.lines
            #expect(result.status == 0, "\(result.out)\(result.err)")
            #expect(!lines.isEmpty && lines.allSatisfy { $0.hasPrefix("ok ") || $0.hasPrefix("warn ") || $0.hasPrefix("fail ") }, "\(result.out)")
            #expect(!lines.contains { $0.hasPrefix("fail") }, "\(result.out)")
            #expect(lines.contains { $0.hasPrefix("ok") && $0.contains("migrations: all \(Migrations.all.count) applied") }, "\(result.out)")
            #expect(lines.contains { $0.hasPrefix("ok") && $0.contains("redis eviction: maxmemory_policy noeviction") }, "\(result.out)")
            #expect(
                lines.contains { $0.hasPrefix("ok") && $0.contains("twilio credentials: accepted by http://127.0.0.1:\(stack.simPort)") },
                "\(result.out)")
            for service in ["messaging-ingress", "voice-relay", "outbound", "agent-worker"] {
                #expect(lines.contains { $0.contains("config \(service):") && !$0.hasPrefix("fail") }, "\(result.out)")
            }
            // The test stack's public domain is a loopback address: fine with the sim, a warning for production.
            #expect(lines.contains { $0.hasPrefix("warn") && $0.contains("public domain") && $0.contains("loopback") && $0.contains("fix:") })
            // No service has created its consumer groups yet.
            #expect(lines.contains { $0.hasPrefix("warn") && $0.contains("stream groups: not created yet") })
        }
    }

    @Test("doctor exits 1 when Twilio refuses the auth token, naming what to fix and never printing the token")
    func doctorWrongToken() async throws {
        try await withStack(Self.simOnly) { stack in
            let token = "wrong-token-\(UUID().uuidString.prefix(8))"
            let env = stack.environment.merging(["TWILIO_AUTH_TOKEN": token]) { $1 }
            let result = try await CLIRun.agentconnect(["doctor"], environment: env)
            #expect(result.status == 1, "\(result.out)\(result.err)")
            let failures = result.lines.filter { $0.hasPrefix("fail") }
            #expect(failures.count == 1, "\(result.out)")
            #expect(failures.first?.contains("twilio credentials") == true && failures.first?.contains("401") == true, "\(result.out)")
            #expect(failures.first?.contains("fix: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN") == true, "\(result.out)")
            #expect(!result.out.contains(token) && !result.err.contains(token))
        }
    }

    @Test("doctor exits 1 on an unmigrated or half-migrated database, naming the missing migrations and the fix")
    func doctorUnmigrated() async throws {
        try await withStack(Self.simOnly) { stack in
            let empty = try await TestDatabase.make()
            let result = try await CLIRun.agentconnect(["doctor"], environment: stack.environment.merging(["DATABASE_URL": empty.url]) { $1 })
            #expect(result.status == 1, "\(result.out)\(result.err)")
            let failures = result.lines.filter { $0.hasPrefix("fail") }
            #expect(failures.count == 1, "\(result.out)")
            #expect(
                failures.first?.contains("migrations: none applied") == true && failures.first?.contains("fix: run migrate") == true, "\(result.out)")

            let half = try await TestDatabase.make()
            try await half.withClient { client in
                try await Migrator(client: client, logger: TestEnvironment.logger).migrate(Array(Migrations.all.prefix(1)))
            }
            let partial = try await CLIRun.agentconnect(["doctor"], environment: stack.environment.merging(["DATABASE_URL": half.url]) { $1 })
            #expect(partial.status == 1, "\(partial.out)\(partial.err)")
            let missing = Migrations.all.dropFirst().map { "\($0.version) \($0.name)" }.joined(separator: ", ")
            #expect(
                partial.lines.contains {
                    $0.hasPrefix("fail") && $0.contains("\(Migrations.all.count - 1) of \(Migrations.all.count) not applied: \(missing)")
                },
                "\(partial.out)")
        }
    }

    @Test("doctor checks the consumer groups: ok once every partition has one, fail when services disagree on the partitions")
    func doctorGroups() async throws {
        try await withStack(Self.simOnly) { stack in
            let client = stack.redis.client()
            defer { client.shutdown() }
            let bus = RedisStreamsEventBus(client: client)
            let env = stack.environment.merging(["TAC_INBOUND_PARTITIONS": "4"]) { $1 }
            for index in 0..<2 { try await bus.ensureGroup("agents", on: Streams.inboundPartition(index)) }
            try await bus.ensureGroup("outbound", on: Streams.outbound)
            let partial = try await CLIRun.agentconnect(["doctor"], environment: env)
            #expect(partial.status == 1)
            #expect(
                partial.lines.contains { $0.hasPrefix("fail") && $0.contains("stream groups: group agents is missing on 2 of 4") }, "\(partial.out)")

            for index in 2..<4 { try await bus.ensureGroup("agents", on: Streams.inboundPartition(index)) }
            _ = try await Self.deadLetter(bus, stream: Streams.outbound, group: "outbound", text: "x", from: "+15550004444", error: "boom")
            let complete = try await CLIRun.agentconnect(["doctor"], environment: env)
            #expect(complete.status == 0, "\(complete.out)")
            #expect(complete.lines.contains { $0.hasPrefix("ok") && $0.contains("stream groups: agents on 4 inbound partitions") }, "\(complete.out)")
            #expect(complete.lines.contains { $0.hasPrefix("warn") && $0.contains("dead letters: 1 entries") && $0.contains("dead-letters list") })

            // A service started with more partitions than the others read.
            _ = try await bus.publish(
                BusEvent(type: EventType.messageReceived, conversationId: "c", channel: .sms, payload: [:]), to: Streams.inboundPartition(7))
            let stray = try await CLIRun.agentconnect(["doctor"], environment: env)
            #expect(stray.status == 1)
            #expect(
                stray.lines.contains {
                    $0.hasPrefix("fail") && $0.contains("beyond TAC_INBOUND_PARTITIONS=4") && $0.contains(Streams.inboundPartition(7))
                },
                "\(stray.out)")
        }
    }

    @Test("doctor bounds every check: a Redis and a PostgreSQL that accept but never answer fail within the timeout, passwords hidden")
    func doctorTimeouts() async throws {
        let silent = try SilentListener()
        defer { silent.close() }
        let env = TestEnvironment.localEnv.merging([
            "REDIS_URL": "redis://:redis-secret@127.0.0.1:\(silent.port)/0",
            "DATABASE_URL": "postgres://agentconnect:pg-secret@127.0.0.1:\(silent.port)/agentconnect",
            "TWILIO_API_BASE_URL": "http://127.0.0.1:\(silent.port)",
        ]) { $1 }
        let started = ContinuousClock.now
        let result = try await CLIRun.agentconnect(["doctor", "--timeout", "1"], environment: env)
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(result.status == 1, "\(result.out)\(result.err)")
        for check in ["redis:", "postgres:", "twilio credentials:"] {
            #expect(result.lines.contains { $0.hasPrefix("fail") && $0.contains(check) && $0.contains("fix:") }, "\(result.out)")
        }
        #expect(!result.out.contains("redis-secret") && !result.out.contains("pg-secret"), "\(result.out)")
    }

    // MARK: dead-letters

    /// A customer message dead-lettered the way consumers do it (`EventBus.deadLetter` on an entry read
    /// through the group); returns the event and its entry.
    static func deadLetter(
        _ bus: RedisStreamsEventBus, stream: String, group: String, text: String, from customer: String, error: String
    ) async throws -> (event: BusEvent, entry: BusEntry) {
        try await bus.ensureGroup(group, on: stream)
        let event = BusEvent(
            type: EventType.replyReady, conversationId: "conv-\(UUID().uuidString.prefix(8))", channel: .sms,
            payload: ["to": .string(customer), "text": .string(text)])
        _ = try await bus.publish(event, to: stream)
        let entries = try await bus.readGroup(group, consumer: "dying", streams: [stream], count: 10, blockMilliseconds: 1000)
        let entry = try #require(entries.first { $0.event?.id == event.id })
        try await bus.deadLetter(entry, group: group, error: error)
        return (event, entry)
    }

    @Test("dead-letters list shows where each entry came from and why, never its body or the customer's number")
    func listDeadLetters() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        let bus = RedisStreamsEventBus(client: client)
        let (event, entry) = try await Self.deadLetter(
            bus, stream: Streams.outbound, group: "outbound", text: "my secret order details", from: "+15557654321",
            error: "delivery failed after 5 attempt(s): The 'To' number +15557654321 is not valid")
        let env = TestEnvironment.localEnv.merging(["REDIS_URL": redis.url]) { $1 }

        let listed = try await CLIRun.agentconnect(["dead-letters", "list", "--json"], environment: env)
        #expect(listed.status == 0, "\(listed.err)")
        let json = try JSONDecoder().decode(JSONValue.self, from: Data(listed.out.utf8))
        #expect(json["total"]?.double == 1)
        let first = try #require(json["entries"]?.array?.first)
        #expect(first["stream"]?.string == Streams.outbound)
        #expect(first["group"]?.string == "outbound")
        #expect(first["entry"]?.string == entry.id)
        #expect(first["deliveries"]?.double == 1)
        #expect(first["type"]?.string == EventType.replyReady)
        #expect(first["eventId"]?.string == event.id)
        #expect(first["error"]?.string?.contains("delivery failed after 5 attempt(s)") == true)

        let table = try await CLIRun.agentconnect(["dead-letters", "list"], environment: env)
        #expect(table.status == 0)
        #expect(table.out.contains(Streams.outbound) && table.out.contains(entry.id) && table.out.contains("1 of 1 dead letter(s)"))
        for output in [listed.out, table.out] {
            #expect(!output.contains("secret order") && !output.contains("5557654321"), "\(output)")
        }
    }

    @Test("dead-letters replay puts entries back on their own streams, fields intact, where the group consumes them; tac:dead empties")
    func replayDeadLetters() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        let bus = RedisStreamsEventBus(client: client)
        let outbound = try await Self.deadLetter(bus, stream: Streams.outbound, group: "outbound", text: "a", from: "+15550001111", error: "boom")
        let inbound = try await Self.deadLetter(
            bus, stream: Streams.inboundPartition(3), group: "agents", text: "b", from: "+15550002222", error: "boom")
        let env = TestEnvironment.localEnv.merging(["REDIS_URL": redis.url]) { $1 }
        let deadIds = try await DeadLetterIds.read(client)
        #expect(deadIds.count == 2)

        let one = try await CLIRun.agentconnect(["dead-letters", "replay", deadIds[0]], environment: env)
        #expect(one.status == 0, "\(one.err)")
        #expect(one.out.contains("replayed \(deadIds[0]) → \(Streams.outbound) "))
        #expect(try await bus.length(of: Streams.dead) == 1)
        // A consumer of the original group gets the entry again, byte for byte.
        let again = try await bus.readGroup("outbound", consumer: "healthy", streams: [Streams.outbound], count: 10, blockMilliseconds: 2000)
        #expect(again.count == 1)
        #expect(again.first?.raw == outbound.entry.raw)
        #expect(again.first?.event == outbound.event)
        #expect(again.first?.id != outbound.entry.id)

        let twice = try await CLIRun.agentconnect(["dead-letters", "replay", deadIds[0]], environment: env)
        #expect(twice.status == 1)
        #expect(twice.err.contains("not found: \(deadIds[0])"))

        let rest = try await CLIRun.agentconnect(["dead-letters", "replay", "--all"], environment: env)
        #expect(rest.status == 0, "\(rest.err)")
        #expect(rest.out.contains("replayed \(deadIds[1]) → \(Streams.inboundPartition(3)) "))
        #expect(try await bus.length(of: Streams.dead) == 0)
        let agents = try await bus.readGroup(
            "agents", consumer: "healthy", streams: [Streams.inboundPartition(3)], count: 10, blockMilliseconds: 2000)
        #expect(agents.map(\.event) == [inbound.event])
    }

    @Test("dead-letters replay refuses an entry whose content is gone, and leaves it in tac:dead")
    func replayWithoutContent() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        // What a consumer writes for an entry trimmed from its stream while pending: ids, no content.
        let id = try #require(
            try await client.command(
                "XADD", .string(Streams.dead), "*", "e", "", "stream", .string(Streams.outbound), "group", "outbound", "entry", "1-0",
                "deliveries", "0", "error", "trimmed"
            ).string)
        let env = TestEnvironment.localEnv.merging(["REDIS_URL": redis.url]) { $1 }
        let result = try await CLIRun.agentconnect(["dead-letters", "replay", id], environment: env)
        #expect(result.status == 1)
        #expect(result.err.contains("drop it"), "\(result.err)")
        #expect(try await client.command("XLEN", .string(Streams.dead)).integer == 1)
        #expect(try await client.command("XLEN", .string(Streams.outbound)).integer == 0)
    }

    @Test("dead-letters replay refuses an entry dead longer than delivery rows outlive the streams (a second send), unless rows stay")
    func replayPastTheWindow() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        // Dead-lettered in 2001: far past any window.
        let id = "1000000000000-0"
        try await client.command(
            "XADD", .string(Streams.dead), .string(id), "e", "{}", "stream", .string(Streams.outbound), "group", "outbound", "entry", "1-0",
            "deliveries", "10", "error", "boom")
        let env = TestEnvironment.localEnv.merging(["REDIS_URL": redis.url]) { $1 }
        let refused = try await CLIRun.agentconnect(["dead-letters", "replay", id], environment: env)
        #expect(refused.status == 1)
        #expect(refused.err.contains("past the replay window of 552 h"), "\(refused.err)")
        #expect(try await client.command("XLEN", .string(Streams.dead)).integer == 1)
        #expect(try await client.command("XLEN", .string(Streams.outbound)).integer == 0)
        // Rows kept forever: nothing to fear.
        let kept = try await CLIRun.agentconnect(
            ["dead-letters", "replay", id], environment: env.merging(["DELIVERY_RETENTION_SECONDS": "0"]) { $1 })
        #expect(kept.status == 0, "\(kept.err)")
        #expect(try await client.command("XLEN", .string(Streams.dead)).integer == 0)
        #expect(try await client.command("XLEN", .string(Streams.outbound)).integer == 1)
    }

    @Test("dead-letters drop deletes the given entries, --all the rest, and says which ids were not there")
    func dropDeadLetters() async throws {
        let redis = try await TestRedis.make()
        let client = redis.client()
        defer { client.shutdown() }
        let bus = RedisStreamsEventBus(client: client)
        for index in 0..<3 {
            _ = try await Self.deadLetter(bus, stream: Streams.outbound, group: "outbound", text: "t\(index)", from: "+15550003333", error: "boom")
        }
        let env = TestEnvironment.localEnv.merging(["REDIS_URL": redis.url]) { $1 }
        let ids = try await DeadLetterIds.read(client)
        #expect(ids.count == 3)

        let one = try await CLIRun.agentconnect(["dead-letters", "drop", ids[1]], environment: env)
        #expect(one.status == 0, "\(one.err)")
        #expect(one.out == "dropped \(ids[1])\n")
        #expect(try await DeadLetterIds.read(client) == [ids[0], ids[2]])

        let rest = try await CLIRun.agentconnect(["dead-letters", "drop", "--all"], environment: env)
        #expect(rest.status == 0)
        #expect(rest.lines == ["dropped \(ids[0])", "dropped \(ids[2])"])
        #expect(try await bus.length(of: Streams.dead) == 0)
        #expect(try await bus.length(of: Streams.outbound) == 3)  // dropping never touches the original stream

        let gone = try await CLIRun.agentconnect(["dead-letters", "drop", ids[0]], environment: env)
        #expect(gone.status == 1)
        #expect(gone.err.contains("not found: \(ids[0])"))
        let empty = try await CLIRun.agentconnect(["dead-letters", "list"], environment: env)
        #expect(empty.out == "no dead letters\n")
        let invalid = try await CLIRun.agentconnect(["dead-letters", "drop", "not-an-id"], environment: env)
        #expect(invalid.status != 0 && invalid.err.contains("not a stream entry id"))
    }
}

/// Ids on `tac:dead`, oldest first.
enum DeadLetterIds {
    static func read(_ client: RedisClient) async throws -> [String] {
        try await client.command("XRANGE", .string(Streams.dead), "-", "+").array?.compactMap { $0.array?.first?.string } ?? []
    }
}

/// The built `agentconnect`, run as a process.
enum CLIRun {
    struct Outcome: Sendable {
        var status: Int32
        var out: String
        var err: String
        var lines: [String] { out.split(separator: "\n").map(String.init) }
    }

    /// Runs `agentconnect arguments` with exactly `environment` (plus PATH) off the test's threads;
    /// killed after `timeout`.
    static func agentconnect(_ arguments: [String], environment: [String: String], timeout: Duration = .seconds(60)) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try run(arguments, environment: environment, timeout: timeout) })
            }
        }
    }

    private static func run(_ arguments: [String], environment: [String: String], timeout: Duration) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.binDirectory + "/agentconnect")
        process.arguments = arguments
        process.environment = environment.merging(["PATH": "/usr/bin:/bin"]) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(timeout.milliseconds)), execute: watchdog)
        defer { watchdog.cancel() }
        let errData = ErrorCollector(err.fileHandleForReading)
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = errData.wait()
        // Reaped here: Foundation's own wait does not always see the child exit (see ServiceProcess).
        var raw: Int32 = 0
        while true {
            let reaped = waitpid(pid, &raw, 0)
            if reaped == pid { return Outcome(status: (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f), out: stdout, err: stderr) }
            if reaped == -1, errno != EINTR {
                // Foundation reaped it first: wait for it to record the status.
                let deadline = ContinuousClock.now + .seconds(10)
                while process.isRunning, ContinuousClock.now < deadline { usleep(10_000) }
                return Outcome(status: process.isRunning ? -1 : process.terminationStatus, out: stdout, err: stderr)
            }
        }
    }

    /// Reads a pipe to its end on another thread, so neither pipe can fill while the other is read.
    private final class ErrorCollector: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var text = ""

        init(_ handle: FileHandle) {
            DispatchQueue.global().async {
                self.text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
                self.done.signal()
            }
        }

        func wait() -> String {
            done.wait()
            return text
        }
    }
}

/// A TCP port that accepts connections (the kernel completes the handshake) and never answers: a
/// server that hangs.
final class SilentListener: Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 16) == 0 else {
            _ = Glibc.close(fd)
            throw TestFailure("cannot listen: errno \(errno)")
        }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() {
        _ = Glibc.close(fd)
    }
}
