import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import Store

/// The PostgreSQL client's own cost per statement: `SELECT 1` through the pool, a few at a time, with
/// the pool as shipped (``DatabaseConfiguration/clientConfiguration``, the services' default kept
/// connections), with every connection opened on demand (each return to the pool arms an idle
/// timer), and with PostgresNIO's default keep-alive (a timer on every return as well).
struct PoolBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pool")

    @Option var databaseURL = "postgres://agentconnect@127.0.0.1:15432/postgres"
    @Option var queries = 20000
    @Option var concurrency = 4

    func run() async throws {
        var database = try DatabaseConfiguration(url: databaseURL)
        database.minimumConnections = DatabaseConfiguration.defaultMinimumConnections
        var shipped = database.clientConfiguration
        shipped.options.maximumConnections = concurrency
        var keepAlive = shipped
        keepAlive.options.keepAliveBehavior = .init()
        var kept = shipped
        kept.options.minimumConnections = concurrency
        for (name, configuration) in [
            ("as shipped (every connection on demand)", shipped), ("with \(concurrency) kept open (DATABASE_POOL_MIN)", kept),
            ("with PostgresNIO's keep-alive", keepAlive),
        ] {
            let (cpu, switches) = try await measure(configuration)
            row("PostgreSQL client CPU per statement, SELECT 1 \(concurrency) at a time, pool \(name) (µs)", format(cpu, digits: 1))
            row("PostgreSQL client context switches per statement, pool \(name)", format(switches, digits: 2))
        }
    }

    /// The process's CPU time (µs) and context switches per statement.
    private func measure(_ configuration: PostgresClient.Configuration) async throws -> (Double, Double) {
        let client = PostgresClient(configuration: configuration, backgroundLogger: Logger(label: "bench"))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            for _ in 0..<200 { _ = try await client.query("SELECT 1") }
            let before = Usage.now()
            try await withThrowingTaskGroup(of: Void.self) { workers in
                for _ in 0..<concurrency {
                    workers.addTask {
                        for _ in 0..<(queries / concurrency) { _ = try await client.query("SELECT 1") }
                    }
                }
                try await workers.waitForAll()
            }
            let after = Usage.now()
            let count = Double(queries / concurrency * concurrency)
            return ((after.cpu - before.cpu) / count * 1e6, (after.switches - before.switches) / count)
        }
    }

    private struct Usage {
        var cpu: Double
        var switches: Double

        static func now() -> Usage {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            let seconds = { (time: timeval) in Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
            return Usage(cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime), switches: Double(usage.ru_nvcsw + usage.ru_nivcsw))
        }
    }
}
