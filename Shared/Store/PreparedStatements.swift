import Logging
import PostgresNIO
import Synchronization

/// Runs the store's frequent statements (one or more per message and per voice turn) as named
/// prepared statements: PostgreSQL parses and plans each once per connection instead of on every
/// call. Measured with `pgbench` on PostgreSQL 15: a one-row lookup costs the server 0.028 ms of CPU
/// prepared against 0.100 ms as a plain statement; the one-reply delivery claim 0.11 against 0.29.
///
/// PostgreSQL soon keeps one generic plan per prepared statement and replans it only when the
/// tables' statistics change. A statement is prepared only when that plan cannot become a scan of a
/// table that grows by a row a message (see ``PostgresBatchers/markDelivered(_:client:logger:)``).
///
/// Plain (unnamed) statements, with the same text and parameters, instead:
/// - when `DATABASE_PREPARED_STATEMENTS=off`;
/// - from the first time the server says a name prepared on this connection is unknown (SQLSTATE
///   26000) or already taken (42P05). That is a pooler handing each transaction any server
///   connection: PgBouncer in transaction mode before 1.21, or with `max_prepared_statements = 0`.
///   Neither error leaves anything done (they come at Bind and Parse, before Execute), so the
///   statement is run again at once, plain, and so is every later one in this process.
package final class PreparedStatements: Sendable {
    let client: PostgresClient
    let logger: Logger
    private let named: Atomic<Bool>

    package init(client: PostgresClient, logger: Logger, named: Bool) {
        self.client = client
        self.logger = logger
        self.named = Atomic(named)
    }

    /// Whether statements still go out named (false once off, or after a pooler refused a name).
    package var areNamed: Bool { named.load(ordering: .relaxed) }

    /// Runs `statement` and returns its rows.
    func rows<Statement: PostgresPreparedStatement>(_ statement: Statement) async throws -> [Statement.Row] {
        if named.load(ordering: .relaxed) {
            do {
                var result: [Statement.Row] = []
                for try await row in try await client.execute(statement, logger: logger) { result.append(row) }
                return result
            } catch let error where Self.isNameRefused(error) {
                if named.exchange(false, ordering: .relaxed) {
                    logger.warning(
                        "PostgreSQL refused a prepared statement's name (a pooler in transaction mode?); using plain statements from now on",
                        metadata: [
                            "error": "\((error as? PSQLError)?.serverInfo?[.message] ?? "\(error)")",
                            "hint": "set DATABASE_PREPARED_STATEMENTS=off to start this way",
                        ])
                }
            }
        }
        let rows = try await client.query(PostgresQuery(unsafeSQL: Statement.sql, binds: try statement.makeBindings()), logger: logger)
        var result: [Statement.Row] = []
        for try await row in rows { result.append(try statement.decodeRow(row)) }
        return result
    }

    /// Runs `statement`, whose rows are not read.
    func run<Statement: PostgresPreparedStatement>(_ statement: Statement) async throws {
        _ = try await rows(statement)
    }

    /// Whether the server refused a statement's name: unknown on this connection, or already taken.
    static func isNameRefused(_ error: any Error) -> Bool {
        let code = (error as? PSQLError)?.serverInfo?[.sqlState]
        return code == PostgresError.Code.invalidSqlStatementName.raw || code == PostgresError.Code.duplicatePreparedStatement.raw
    }
}
