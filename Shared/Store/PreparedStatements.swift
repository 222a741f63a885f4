import Logging
import PostgresNIO
import Synchronization

/// Runs the store's frequent statements (one or more per message and per voice turn) as named
/// prepared statements: PostgreSQL parses and plans each once per connection instead of on every
/// call. Measured with `pgbench` on PostgreSQL 15: a one-row lookup costs the server 0.028 ms of CPU
/// prepared against 0.100 ms as a plain statement; the one-reply delivery claim 0.11 against 0.29.
///
/// - **Names** carry a hash of the statement's text (``name(_:)``): behind a pooler that shares
///   server connections, a release whose text changed never runs another release's statement.
/// - **Plans:** PostgreSQL soon keeps one generic plan per prepared statement, replanned when the
///   tables' statistics change (autovacuum's analyze). A plan made after an analyze found a table of
///   a few hundred rows or fewer scans it whole, until the next analyze. No statement is prepared
///   whose plan could scan a table that grows by a row a message (see
///   ``PostgresBatchers/markDelivered(_:client:logger:)``). The claim and the conversation lookup
///   read `conversations` and `opt_outs` by key; they grow by a conversation and an opt-out, so a
///   young database whose conversations jump by thousands within one autovacuum round (a minute by
///   default), such as a first outbound campaign, is read by scans until the next analyze.
///   Measured: 20,000 new conversations on a fresh database (the benchmark with `--conversations
///   20000`), 2 sequential scans of `conversations` prepared and 2 plain.
/// - **Plain (unnamed) statements**, with the same text and parameters, instead:
///   - when `DATABASE_PREPARED_STATEMENTS=off`;
///   - from the first time the server says a name prepared on this connection is unknown (SQLSTATE
///     26000) or already taken (42P05): a pooler handing each transaction any server connection
///     (PgBouncer in transaction mode before 1.21, or with `max_prepared_statements = 0`). Both come
///     at Bind or Parse, before anything executed, so the statement is run again at once, plain,
///     and so is every later one in this process.
/// - **One call plain** when a named statement fails in a way a plain one may not: its cached plan
///   no longer fits the table (0A000, after a migration changed a column's type), the table or a
///   column it names was missing when it was prepared (42P01, 42703), or its preparation waited
///   too long for a lock (55P03, 57014: a migration holding the table). PostgresNIO keeps a failed
///   preparation's error for the connection's life, so such a statement goes plain on that
///   connection from then on. A failed statement left nothing done (each runs alone, in its own
///   transaction), so running it again is as safe as a caller's retry.
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
                            "error": "\(Self.serverMessage(error))", "hint": "set DATABASE_PREPARED_STATEMENTS=off to start this way",
                        ])
                }
            } catch let error where Self.mayPassPlain(error) {
                logger.debug(
                    "prepared statement failed; running it plain",
                    metadata: ["statement": "\(Statement.name)", "error": "\(Self.serverMessage(error))"])
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

    /// A statement's name: its type and a hash of its text (FNV-1a, 64 bits), well within
    /// PostgreSQL's 63 bytes.
    static func name<Statement: PostgresPreparedStatement>(_: Statement.Type) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Statement.sql.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "ac.\(Statement.self).\(String(repeating: "0", count: 16 - hex.count))\(hex)"
    }

    /// Whether the server refused a statement's name: unknown on this connection, or already taken.
    static func isNameRefused(_ error: any Error) -> Bool {
        let code = sqlState(error)
        return code == PostgresError.Code.invalidSqlStatementName.raw || code == PostgresError.Code.duplicatePreparedStatement.raw
    }

    /// Whether a named statement failed in a way the same statement, plain, may not (see above).
    static func mayPassPlain(_ error: any Error) -> Bool {
        let codes: [PostgresError.Code] = [.featureNotSupported, .undefinedTable, .undefinedColumn, .lockNotAvailable, .queryCanceled]
        return sqlState(error).map { state in codes.contains { $0.raw == state } } ?? false
    }

    private static func sqlState(_ error: any Error) -> String? { (error as? PSQLError)?.serverInfo?[.sqlState] }

    private static func serverMessage(_ error: any Error) -> String { (error as? PSQLError)?.serverInfo?[.message] ?? "\(error)" }
}
