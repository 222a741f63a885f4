import AgentConnectCore
import Foundation
import Logging
import PostgresNIO
import Store

/// `migrate`: applies the PostgreSQL schema from `MIGRATE_DATABASE_URL` (a direct connection, when
/// `DATABASE_URL` goes through a pooler) or else `DATABASE_URL`, then exits 0.
///
/// Safe to run concurrently and repeatedly (one transaction under a transaction-level advisory lock,
/// versioned migrations). Waits up to `MIGRATE_WAIT_SECONDS` (default 30) for PostgreSQL to accept
/// connections; a TLS failure (wrong CA, host name mismatch) or a bad URL exits at once, naming the variable.
@main
struct MigrateMain {
    static func main() async {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "migrate")
        let environment = Environment.process()
        var configuration: DatabaseConfiguration
        let variable: String
        let waitSeconds: Int
        do {
            variable = environment.string("MIGRATE_DATABASE_URL") == nil ? "DATABASE_URL" : "MIGRATE_DATABASE_URL"
            configuration = try DatabaseConfiguration(
                url: environment.string(variable) ?? "postgres://agentconnect:agentconnect@127.0.0.1:5432/agentconnect", variable: variable)
            configuration.poolSize = 2
            waitSeconds = try environment.int("MIGRATE_WAIT_SECONDS", default: 30, range: 0...3600)
        } catch {
            FileHandle.standardError.write(Data("migrate: \(error)\n".utf8))
            exit(2)
        }
        logger.info("migrating", metadata: ["database": "\(configuration)", "from": "\(variable)"])
        // One direct connection first: a TLS mistake is reported at once (the pool would retry it quietly).
        let probeDeadline = ContinuousClock.now + .seconds(waitSeconds)
        while true {
            do {
                try await configuration.checkConnection(variable: variable, logger: logger)
                break
            } catch let error as ConfigurationError {
                FileHandle.standardError.write(Data("migrate: \(error)\n".utf8))
                exit(2)
            } catch {
                if ContinuousClock.now >= probeDeadline {
                    logger.critical("migration failed", metadata: ["error": "\(String(reflecting: error))"])
                    exit(1)
                }
                logger.info("waiting for PostgreSQL", metadata: ["error": "\(String(reflecting: error))"])
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        let client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
        let outcome: Result<[Int], any Error> = await withTaskGroup(of: Result<[Int], any Error>?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            group.addTask {
                let deadline = ContinuousClock.now + .seconds(waitSeconds)
                while true {
                    do {
                        return .success(try await Migrator(client: client, logger: logger).migrate())
                    } catch let error as StoreError {
                        return .failure(error)
                    } catch {
                        if ContinuousClock.now >= deadline { return .failure(error) }
                        logger.info("waiting for PostgreSQL", metadata: ["error": "\(String(reflecting: error))"])
                        try? await Task.sleep(for: .milliseconds(500))
                    }
                }
            }
            var outcome: Result<[Int], any Error> = .failure(StoreError(.unavailable, "migration did not run"))
            for await result in group {
                if let result {
                    outcome = result
                    break
                }
            }
            group.cancelAll()
            return outcome
        }
        switch outcome {
        case .success(let applied):
            logger.info("schema up to date", metadata: ["applied": "\(applied)"])
            exit(0)
        case .failure(let error):
            logger.critical("migration failed", metadata: ["error": "\(String(reflecting: error))"])
            exit(1)
        }
    }
}
