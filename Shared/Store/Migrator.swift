import Logging
import PostgresNIO

/// Applies ``Migrations/all`` in order, each once, in one transaction that holds a
/// transaction-level advisory lock (`pg_advisory_xact_lock`), so that processes starting at the same
/// moment apply the schema exactly once between them. The lock ends with the transaction, so it is
/// safe behind a transaction-mode pooler such as PgBouncer (a session lock is not).
package struct Migrator: Sendable {
    /// Arbitrary constant naming the lock ("AgentCon").
    static let lockKey: Int64 = 0x4167_656e_7443_6f6e
    private let client: PostgresClient
    private let logger: Logger

    package init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Applies what is missing and returns the versions applied by this call. All of them commit
    /// together or not at all.
    @discardableResult
    package func migrate(_ migrations: [Migration] = Migrations.all) async throws -> [Int] {
        let logger = logger
        do {
            return try await client.withTransaction(logger: logger) { transaction in
                try await transaction.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                return try await Self.apply(migrations, on: transaction, logger: logger)
            }
        } catch let error as PostgresTransactionError {
            // What went wrong inside (a failed migration, a lost connection), not the wrapper.
            throw error.closureError ?? error.beginError ?? error.commitError ?? error
        }
    }

    private static func apply(_ migrations: [Migration], on connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        var done = Set<Int>()
        for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
            done.insert(version)
        }
        var applied: [Int] = []
        for migration in migrations.sorted(by: { $0.version < $1.version }) where !done.contains(migration.version) {
            do {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))", logger: logger)
            } catch {
                throw StoreError(.migration, "migration \(migration.version) \(migration.name) failed: \(String(reflecting: error))")
            }
            logger.info("applied migration", metadata: ["migration.version": "\(migration.version)", "migration.name": "\(migration.name)"])
            applied.append(migration.version)
        }
        return applied
    }
}
