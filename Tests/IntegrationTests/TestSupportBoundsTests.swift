import AgentConnectCore
import Foundation
import PostgresNIO
import Testing

@Suite("Test support: waits are bounded")
struct TestSupportBoundsTests {
    @Test("a query on a database it cannot connect to fails within the client's bound instead of hanging the run")
    func unreachableDatabase() async throws {
        // The pool retries a failing connect forever and a lease has no deadline of its own: without
        // the bound this waits forever (as a query does when PostgreSQL goes away mid-run).
        let missing = TestDatabase(name: "test_missing_\(UUID().uuidString.prefix(8).lowercased())")
        let started = ContinuousClock.now
        await #expect(throws: TimeoutError.self) {
            try await missing.withClient(timeout: .seconds(3)) { client in
                _ = try await client.query("SELECT 1")
            }
        }
        #expect(ContinuousClock.now - started < .seconds(15))
    }
}
