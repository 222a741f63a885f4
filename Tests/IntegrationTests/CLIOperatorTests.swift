import AgentConnectCore
import EventBus
import Foundation
import Store
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `agentconnect doctor`, run as the built executable (dead-letters: ``CLIDeadLetterTests``).
@Suite("agentconnect doctor")
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
            #expect(!lines.contains { $0.contains("voice redis") }, "\(result.out)")

            // Calls on a Redis of their own: checked too, its verdicts named so; no outbound group expected there.
            let voice = try await TestRedis.make()
            let client = voice.client()
            defer { client.shutdown() }
            // A dead letter of the calls' own: doctor points at `--calls` to reach it.
            try await client.command("XADD", .string(Streams.dead), "*", "stream", "tac:inbound:0", "error", "turn failed")
            let apart = try await CLIRun.agentconnect(
                ["doctor"], environment: stack.environment.merging(["VOICE_REDIS_URL": voice.url]) { _, new in new })
            let voiceLines = apart.lines.filter { $0.contains(" voice ") }
            #expect(
                voiceLines.contains {
                    $0.hasPrefix("warn") && $0.contains("voice dead letters: 1 entries") && $0.contains("dead-letters list --calls")
                },
                "\(apart.out)")
            #expect(!apart.lines.contains { $0.contains(" dead letters:") && !$0.contains("voice") && $0.contains("--calls") }, "\(apart.out)")
            #expect(apart.status == 0, "\(apart.out)\(apart.err)")
            #expect(voiceLines.contains { $0.hasPrefix("ok") && $0.contains("voice redis eviction: maxmemory_policy noeviction") }, "\(apart.out)")
            // The verdict follows the server's fsync policy: everysec or always pass, anything else is a warning.
            let fsync = try await client.command("CONFIG", "GET", "appendfsync").array?.last?.string
            let verdict = ["everysec", "always"].contains(fsync ?? "") ? "ok" : "warn"
            #expect(
                voiceLines.contains { $0.hasPrefix(verdict) && $0.contains("voice redis durability:") && $0.contains("appendfsync \(fsync ?? "-")") },
                "\(apart.out)")
            #expect(
                voiceLines.contains {
                    $0.hasPrefix("warn") && $0.contains("voice stream groups: not created yet: agents on tac:inbound:*") && !$0.contains("outbound")
                },
                "\(apart.out)")
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
            _ = try await CLIDeadLetterTests.deadLetter(
                bus, stream: Streams.outbound, group: "outbound", text: "x", from: "+15550004444", error: "boom")
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
