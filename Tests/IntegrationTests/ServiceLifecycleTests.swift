import AgentConnectCore
import Foundation
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
        for path in ["/health/live", "/health/ready", "/metrics"] {
            let response = try await TestStack.request(.GET, "http://127.0.0.1:\(process.port)\(path)")
            #expect(response.status == 200, "\(service) \(path)")
        }
        let status = await process.terminate()
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

    @Test("migrate applies the schema and exits 0, twice")
    func migrate() async throws {
        let database = try await TestDatabase.make()
        for _ in 0..<2 {
            let process = try ServiceProcess("migrate", port: 0, environment: ["DATABASE_URL": database.url], logDirectory: NSTemporaryDirectory())
            #expect(await process.waitForExit(timeout: .seconds(30)) == 0)
        }
    }
}
