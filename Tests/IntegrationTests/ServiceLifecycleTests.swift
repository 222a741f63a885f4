import AgentConnectCore
import Foundation
import NIOCore
import Testing

@Suite("Every service boots, reports health and metrics, and drains on SIGTERM", .serialized)
struct ServiceLifecycleTests {
    static let services = ["messaging-ingress", "outbound", "agent-worker", "twilio-sim", "voice-relay"]

    @Test("health and metrics answer; SIGTERM exits 0", arguments: services)
    func lifecycle(service: String) async throws {
        let redis = try await TestRedis.make()
        let database = try await TestDatabase.migrated()
        let directory = NSTemporaryDirectory()
        var environment = TestEnvironment.localEnv
        environment["REDIS_URL"] = redis.url
        environment["DATABASE_URL"] = database.url
        let process = try ServiceProcess(service, port: TestEnvironment.freePort(), environment: environment, logDirectory: directory)
        try await process.waitReady()
        #if os(Linux)
        // The services allocate through tcmalloc (Package.swift's serviceLinkerSettings, ahead of
        // glibc in the link order, so every library's malloc binds to it); twilio-sim keeps glibc's.
        let maps = (try? String(contentsOfFile: "/proc/\(process.pid)/maps", encoding: .utf8)) ?? ""
        #expect(maps.contains("libtcmalloc_minimal") == (service != "twilio-sim"), "\(service)'s allocator")
        #endif
        for path in ["/health/live", "/health/ready", "/metrics"] {
            let response = try await TestStack.request(.GET, "http://127.0.0.1:\(process.port)\(path)")
            #expect(response.status == 200, "\(service) \(path)")
        }
        // A connection opened ahead of time that never sends a request (load balancers and HTTP
        // clients' pools do this) must not hold the drain open until the idle timeout (30 s).
        let idle = try #require(TestEnvironment.connectTCP(port: process.port), "connect to \(service)")
        defer { close(idle) }
        let status = await process.signal(SIGTERM, timeout: .seconds(15))
        #expect(status == 0, "\(service) exited \(String(describing: status)):\n\(process.log)")
    }

    @Test("a malformed setting stops the service at once with a message naming it")
    func badConfiguration() async throws {
        var missing = TestEnvironment.localEnv
        missing["TWILIO_AUTH_TOKEN"] = nil
        let second = try ServiceProcess(
            "messaging-ingress", port: TestEnvironment.freePort(), environment: missing, logDirectory: NSTemporaryDirectory())
        #expect(await second.waitForExit(timeout: .seconds(10)) == 2)
        #expect(second.log.contains("TWILIO_AUTH_TOKEN"))
        var malformed = TestEnvironment.localEnv
        malformed["REDIS_URL"] = "http://not-redis"
        let third = try ServiceProcess("agent-worker", port: TestEnvironment.freePort(), environment: malformed, logDirectory: NSTemporaryDirectory())
        #expect(await third.waitForExit(timeout: .seconds(10)) == 2)
        #expect(third.log.contains("REDIS_URL"))
    }

    @Test(
        "SERVICE_THREADS sets a service's threads (one by default, voice-relay one per core), whose event loops run its tasks as the generic executor; a bad value stops it naming the variable"
    )
    func threads() async throws {
        let redis = try await TestRedis.make()
        let database = try await TestDatabase.migrated()
        var environment = TestEnvironment.localEnv
        environment["REDIS_URL"] = redis.url
        environment["DATABASE_URL"] = database.url
        environment["LOG_LEVEL"] = "debug"
        // voice-relay keeps one event loop per core unless told (the memory of idle calls).
        let cases: [(service: String, setting: String?, threads: Int)] = [
            ("outbound", nil, 1), ("outbound", "3", 3), ("voice-relay", nil, System.coreCount), ("voice-relay", "1", 1),
        ]
        for (service, setting, expected) in cases {
            environment["SERVICE_THREADS"] = setting
            let process = try ServiceProcess(
                service, port: TestEnvironment.freePort(), environment: environment, logDirectory: NSTemporaryDirectory())
            try await process.waitReady()
            let names = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.pid)/task").map { task in
                (try? String(contentsOfFile: "/proc/\(process.pid)/task/\(task)/comm", encoding: .utf8)) ?? ""
            }
            #expect(names.filter { $0.hasPrefix("NIO-SGLTN") }.count == expected, "\(service) SERVICE_THREADS=\(setting ?? "unset"): \(names)")
            // Its tasks run on those event loops (except voice-relay's, unless told) as the generic
            // executor, so a hop to a nonisolated function does not queue the task a second time.
            let onLoops = service != "voice-relay" || setting != nil
            #expect(process.log.contains("tasks.on.event.loops=\(onLoops)"), "\(process.log)")
            // (On Swift's own pool every job runs as the generic executor anyway: checked where it can fail.)
            if onLoops { #expect(process.log.contains("tasks.executor=generic"), "\(process.log)") }
            #expect(await process.terminate() == 0, "\(process.log)")
        }
        environment["SERVICE_THREADS"] = "0"
        let refused = try ServiceProcess("outbound", port: TestEnvironment.freePort(), environment: environment, logDirectory: NSTemporaryDirectory())
        #expect(await refused.waitForExit(timeout: .seconds(10)) == 2)
        #expect(refused.log.contains("SERVICE_THREADS"))
    }

    @Test("migrate applies the schema and exits 0, twice")
    func migrate() async throws {
        let database = try await TestDatabase.make()
        for _ in 0..<2 {
            let process = try ServiceProcess("migrate", port: 0, environment: ["DATABASE_URL": database.url], logDirectory: NSTemporaryDirectory())
            #expect(await process.waitForExit(timeout: .seconds(30)) == 0)
        }
    }
}
