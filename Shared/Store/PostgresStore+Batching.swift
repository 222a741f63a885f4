import AgentConnectCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// Runs the statements of one kind that callers issue at the same time as one statement: a
/// round trip and a transaction for the batch, instead of one each.
///
/// - Each ``run(_:)`` returns once the statement holding its item was answered, with its own answer,
///   so a caller still sees its effect done before it goes on.
/// - No batching timer: an item goes out at once when fewer than `maxInFlight` statements are out (no added
///   latency when idle); items that arrive while they all are out queue, and go out together (up to
///   `maxBatch`) when one is answered. A slow or stuck statement holds only its own lane.
/// - A statement runs in a task of its own, so a caller that gives up (its task cancelled, as
///   `withTimeout` does, or its ``TaskDeadline`` passed, with `withDeadline`) fails only itself: it
///   leaves the queue at once, or stops waiting for the statement it is in, whose other items go on.
/// - A batch PostgreSQL refuses (one bad row fails a multi-row statement) is run again item by
///   item, so each caller gets its own row's answer, not its neighbour's error; a batch that failed
///   because PostgreSQL is unreachable is not (its callers retry as they would any outage).
/// - A statement holds its lane for at most `statementTimeout` (one stuck on a dead connection is
///   left behind; its callers get the ``TimeoutError``).
final class StatementBatcher<Item: Sendable, Answer: Sendable>: Expiring, Sendable {
    /// Runs one batch: exactly one answer per item, in the items' order.
    typealias Send = @Sendable (_ items: [Item]) async throws -> [Answer]

    private struct Waiter {
        var item: Item
        var continuation: CheckedContinuation<Answer, any Error>
        /// The caller's ``TaskDeadline`` and its entry in ``Deadlines``, when it has one.
        var deadline: TaskDeadline?
        var deadlineEntry: UInt64?
    }

    private struct State {
        var nextId: UInt64 = 0
        /// Waiting to go out, in arrival order.
        var queue: [UInt64] = []
        /// Every caller still waiting, queued or in a statement; whoever removes one resumes it.
        var waiters: [UInt64: Waiter] = [:]
        var inFlight = 0
    }

    private let state = NIOLockedValueBox(State())
    private let maxBatch: Int
    private let maxInFlight: Int
    /// The longest one statement holds its lane.
    private let statementTimeout: Duration
    private let send: Send

    init(maxBatch: Int, maxInFlight: Int = 2, statementTimeout: Duration = .seconds(30), send: @escaping Send) {
        self.maxBatch = max(1, maxBatch)
        self.maxInFlight = max(1, maxInFlight)
        self.statementTimeout = statementTimeout
        self.send = send
    }

    /// How many items wait for a lane (for tests).
    var queuedCount: Int { state.withLockedValue { $0.queue.count } }

    /// Runs `item` in the next statement of its kind, with those issued at the same time, within the
    /// caller's ``TaskDeadline`` when it has one.
    func run(_ item: Item) async throws -> Answer {
        let deadline = TaskDeadline.current
        if let deadline, deadline.remainingNanoseconds == 0 { throw deadline.error }
        let id = state.withLockedValue { state -> UInt64 in
            state.nextId += 1
            return state.nextId
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Answer, any Error>) in
                // Checked under the lock the cancellation handler takes: a cancellation either finds
                // the waiter registered, or is seen here (the flag is set before the handler runs).
                let batch = state.withLockedValue { state -> [UInt64]?? in
                    if Task.isCancelled { return .none }
                    state.waiters[id] = Waiter(item: item, continuation: continuation, deadline: deadline)
                    state.queue.append(id)
                    return .some(takeBatch(&state))
                }
                switch batch {
                case .none: continuation.resume(throwing: CancellationError())
                case .some(let batch?): start(batch)
                case .some(nil): break
                }
                if let deadline, batch != nil { watch(id, until: deadline) }
            }
        } onCancel: {
            giveUp(id, CancellationError())
        }
    }

    /// Gives the waiter `id` its deadline's entry (dropped again when it was answered meanwhile).
    private func watch(_ id: UInt64, until deadline: TaskDeadline) {
        let entry = Deadlines.shared.add(at: deadline.uptimeNanoseconds, self, token: id)
        let answered = state.withLockedValue { state -> Bool in
            guard state.waiters[id] != nil else { return true }
            state.waiters[id]?.deadlineEntry = entry
            return false
        }
        if answered { Deadlines.shared.remove(entry) }
    }

    /// The deadline of waiter `token` passed.
    func expire(token: UInt64) {
        let deadline = state.withLockedValue { $0.waiters[token]?.deadline }
        if let deadline { giveUp(token, deadline.error) }
    }

    /// The caller `id` gives up: gone from the queue (never sent) or from its statement (its answer
    /// will be dropped).
    private func giveUp(_ id: UInt64, _ error: any Error) {
        let waiter = state.withLockedValue { state -> Waiter? in
            state.queue.removeAll { $0 == id }
            return state.waiters.removeValue(forKey: id)
        }
        guard let waiter else { return }
        if let entry = waiter.deadlineEntry { Deadlines.shared.remove(entry) }
        waiter.continuation.resume(throwing: error)
    }

    /// The next batch to send, if a lane is free and anything waits (called under the lock).
    private func takeBatch(_ state: inout State) -> [UInt64]? {
        guard state.inFlight < maxInFlight, !state.queue.isEmpty else { return nil }
        let count = min(state.queue.count, maxBatch)
        defer { state.queue.removeFirst(count) }
        state.inFlight += 1
        return Array(state.queue.prefix(count))
    }

    /// Sends `ids` in a task of its own (no caller's cancellation, priority or trace reaches a
    /// statement that carries other callers' items), answers each caller still waiting, then sends
    /// what queued meanwhile. The task is owned by its waiters: each awaits the answer it resumes.
    private func start(_ ids: [UInt64]) {
        Task.detached {
            var batch: [UInt64]? = ids
            while let ids = batch {
                await self.answer(ids)
                batch = self.state.withLockedValue { state -> [UInt64]? in
                    state.inFlight -= 1
                    return self.takeBatch(&state)
                }
            }
        }
    }

    private func answer(_ ids: [UInt64]) async {
        // Callers that gave up before their statement went out are not in it.
        let items = stillWaiting(ids)
        guard !items.isEmpty else { return }
        var results: [(id: UInt64, result: Result<Answer, any Error>)]
        do {
            let answers = try await bounded(items.map(\.1))
            results = zip(items, answers).map { ($0.0, .success($1)) }
        } catch {
            results = items.map { ($0.0, .failure(error)) }
            if items.count > 1, !(error is BatchMismatch), !PostgresStore.isUnavailable(error) {
                // One refused row fails the whole statement: each item alone gets its own answer.
                results = []
                for (id, item) in stillWaiting(items.map(\.0)) {
                    do {
                        let answers = try await bounded([item])
                        results.append((id, .success(answers[0])))
                    } catch {
                        results.append((id, .failure(error)))
                    }
                }
            }
        }
        let waiting = state.withLockedValue { state in results.map { (state.waiters.removeValue(forKey: $0.id), $0.result) } }
        for (waiter, result) in waiting {
            guard let waiter else { continue }
            if let entry = waiter.deadlineEntry { Deadlines.shared.remove(entry) }
            switch result {
            case .success(let answer): waiter.continuation.resume(returning: answer)
            case .failure(let error): waiter.continuation.resume(throwing: error)
            }
        }
    }

    /// The items of `ids` whose callers still wait.
    private func stillWaiting(_ ids: [UInt64]) -> [(UInt64, Item)] {
        state.withLockedValue { state in ids.compactMap { id in state.waiters[id].map { (id, $0.item) } } }
    }

    /// One statement, within `statementTimeout` (a statement stuck on a dead connection gives its
    /// lane back; its callers get the ``TimeoutError``), with exactly one answer per item.
    private func bounded(_ items: [Item]) async throws -> [Answer] {
        let answers = try await withTimeout(statementTimeout, "a batched statement of \(items.count)") { try await self.send(items) }
        guard answers.count == items.count else { throw BatchMismatch(items: items.count, answers: answers.count) }
        return answers
    }
}

/// A batch's statement answered for a different number of items than it was given.
private struct BatchMismatch: Error, CustomStringConvertible {
    var items: Int
    var answers: Int
    var description: String { "a statement for \(items) items gave \(answers) answers" }
}

/// The statements ``PostgresStore`` batches: history rows (a messaging turn's two in one group), delivery rows
/// claimed for a send and deliveries marked sent (one each per reply).
///
/// Each kind on two lanes: a statement costs PostgreSQL several times what a row of it costs (its
/// commit, and parsing and planning when it goes plain), and items arrive one by one, so they queue
/// (and share a statement) only while every lane is out; two lanes still leave one free beside a
/// stuck statement. (Four lanes for history rows and mark-sent before: at 1,000 messages a second,
/// PostgreSQL's CPU per message was 0.40 ms with four, 0.35–0.37 with two, in quick sweeps.)
final class PostgresBatchers: Sendable {
    /// At most this many rows per statement (each column goes as one array parameter).
    static let maxBatch = 256

    /// History rows, a group at a time (a turn's message and its replies go in one statement).
    let appendMessages: StatementBatcher<[MessageRecord], [Bool]>
    /// The new-row step of ``PostgresStore/claimForSending(replyId:conversationId:channel:textHash:owner:leaseMilliseconds:optOut:targetKnown:)``.
    let claimRows: StatementBatcher<ClaimRequest, ClaimedRow>
    let markDelivered: StatementBatcher<(replyId: String, providerId: String?), Void>

    init(statements: PreparedStatements) {
        claimRows = StatementBatcher(maxBatch: Self.maxBatch) { requests in
            try await PostgresStore.claimRows(requests, statements: statements)
        }
        appendMessages = StatementBatcher(maxBatch: Self.maxBatch) { groups in
            var inserted = Set(try await statements.rows(AppendMessages(groups.flatMap { $0 })))
            // The first item of an id takes its row; a repeat in the same batch finds it there.
            return groups.map { group in group.map { inserted.remove($0.id) != nil } }
        }
        markDelivered = StatementBatcher(maxBatch: Self.maxBatch) { deliveries in
            try await Self.markDelivered(deliveries, client: statements.client, logger: statements.logger)
            return Array(repeating: (), count: deliveries.count)
        }
    }

    /// Marks replies' deliveries sent, with Twilio's ids, in one statement.
    ///
    /// A plain statement, planned on every call, never a prepared one: a plan PostgreSQL caches for
    /// it while `deliveries` is small (a fresh database, analyzed early) reads the whole table
    /// (sequential scan and hash join), and `deliveries` grows by one row a reply, far faster than
    /// autovacuum analyzes it and so replaces the plan. Measured on the benchmark's fresh database: 8,826
    /// sequential scans of `deliveries` (78 M rows read) in one run prepared, 29 plain. The
    /// statements that are prepared find their rows through a unique index's conflict check, or read
    /// by key tables that grow by a conversation or an opt-out (``PreparedStatements``).
    static func markDelivered(_ deliveries: [(replyId: String, providerId: String?)], client: PostgresClient, logger: Logger) async throws {
        var sql = "UPDATE deliveries SET status = 'sent', provider_id = sent.provider_id, sent_at = now(), owner = NULL, in_doubt_since = NULL "
        sql += "FROM (VALUES "
        var binds = PostgresBindings(capacity: deliveries.count * 2)
        for (index, delivery) in deliveries.enumerated() {
            if index > 0 { sql += ", " }
            sql += "($\(index * 2 + 1)::text, $\(index * 2 + 2)::text)"
            binds.append(delivery.replyId, context: .default)
            if let providerId = delivery.providerId { binds.append(providerId, context: .default) } else { binds.appendNull() }
        }
        sql += ") AS sent (reply_id, provider_id) WHERE deliveries.reply_id = sent.reply_id"
        try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
    }
}

/// History rows inserted in one statement, each answering its id when it was new. A row whose id is
/// already stored, or appears earlier in the batch, is left as it was (no answer). One statement text
/// for any number of rows (arrays, not a `VALUES` list per size), so it is prepared once.
struct AppendMessages: PostgresPreparedStatement {
    static let name = PreparedStatements.name(Self.self)
    static let sql = """
        INSERT INTO messages (id, conversation_id, channel, direction, author_address, body, created_at)
        SELECT id, conversation_id, channel, direction, CASE WHEN has_author THEN author END, body, created_at
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::text[], $8::timestamptz[])
            AS m (id, conversation_id, channel, direction, has_author, author, body, created_at)
        ON CONFLICT (id) DO NOTHING RETURNING id
        """
    typealias Row = String

    var messages: [MessageRecord]

    init(_ messages: [MessageRecord]) { self.messages = messages }

    func makeBindings() -> PostgresBindings {
        var binds = PostgresBindings(capacity: 8)
        binds.append(messages.map(\.id), context: .default)
        binds.append(messages.map(\.conversationId), context: .default)
        binds.append(messages.map(\.channel.rawValue), context: .default)
        binds.append(messages.map(\.direction.rawValue), context: .default)
        binds.append(messages.map { $0.authorAddress != nil }, context: .default)
        binds.append(messages.map { $0.authorAddress ?? "" }, context: .default)
        binds.append(messages.map(\.body), context: .default)
        binds.append(messages.map(\.createdAt), context: .default)
        return binds
    }

    func decodeRow(_ row: PostgresRow) throws -> String { try row.decode(String.self) }
}
