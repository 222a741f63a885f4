import AgentConnectCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// Runs the statements of one kind that callers issue at the same time as one statement: a
/// round trip and a transaction for the batch, instead of one each.
///
/// Each ``run(_:)`` returns only once the statement holding its item was answered, with its own
/// answer (or that statement's error), so a caller still sees its effect done before it goes on. No
/// timer and no task of its own: the first caller with nothing in flight sends its item at once (no
/// added latency when idle); callers that arrive meanwhile queue, and when a statement is answered
/// the first of them sends what queued, up to `maxBatch` items.
final class StatementBatcher<Item: Sendable, Answer: Sendable>: Sendable {
    /// Runs one batch: exactly one answer per item, in the items' order.
    typealias Send = @Sendable (_ items: [Item]) async throws -> [Answer]

    private enum Turn {
        case answered(Answer)
        case send
    }

    private struct Waiter {
        var item: Item
        var continuation: CheckedContinuation<Turn, any Error>
    }

    private struct State {
        var queue: [Waiter] = []
        var sending = false
    }

    private let state = NIOLockedValueBox(State())
    private let maxBatch: Int
    private let send: Send

    init(maxBatch: Int, send: @escaping Send) {
        self.maxBatch = max(1, maxBatch)
        self.send = send
    }

    /// Runs `item` in the next statement of its kind, with those issued at the same time.
    func run(_ item: Item) async throws -> Answer {
        let turn: Turn = try await withCheckedThrowingContinuation { continuation in
            let sendsNow = state.withLockedValue { state -> Bool in
                if state.sending {
                    state.queue.append(Waiter(item: item, continuation: continuation))
                    return false
                }
                state.sending = true
                return true
            }
            if sendsNow { continuation.resume(returning: .send) }
        }
        if case .answered(let answer) = turn { return answer }
        // This caller's turn: its item and what queued (up to `maxBatch`) go out as one statement.
        let queued = state.withLockedValue { state -> [Waiter] in
            let count = min(state.queue.count, maxBatch - 1)
            defer { state.queue.removeFirst(count) }
            return Array(state.queue.prefix(count))
        }
        let result: Result<[Answer], any Error>
        do {
            result = .success(try await send([item] + queued.map(\.item)))
        } catch {
            result = .failure(error)
        }
        for (index, waiter) in queued.enumerated() {
            switch result {
            case .success(let answers): waiter.continuation.resume(returning: .answered(answers[index + 1]))
            case .failure(let error): waiter.continuation.resume(throwing: error)
            }
        }
        // Whoever queued while this statement was out sends the next one.
        let next = state.withLockedValue { state -> Waiter? in
            guard !state.queue.isEmpty else {
                state.sending = false
                return nil
            }
            return state.queue.removeFirst()
        }
        next?.continuation.resume(returning: .send)
        return try result.get()[0]
    }
}

/// The statements ``PostgresStore`` batches: history rows (two per messaging turn) and deliveries
/// marked sent (one per reply).
final class PostgresBatchers: Sendable {
    /// At most this many rows per statement (7 parameters each, far below PostgreSQL's 65,535).
    static let maxBatch = 256

    let appendMessage: StatementBatcher<MessageRecord, Bool>
    let markDelivered: StatementBatcher<(replyId: String, providerId: String?), Void>

    init(client: PostgresClient, logger: Logger) {
        appendMessage = StatementBatcher(maxBatch: Self.maxBatch) { messages in
            try await Self.appendMessages(messages, client: client, logger: logger)
        }
        markDelivered = StatementBatcher(maxBatch: Self.maxBatch) { deliveries in
            try await Self.markDelivered(deliveries, client: client, logger: logger)
            return Array(repeating: (), count: deliveries.count)
        }
    }

    /// Inserts history rows in one statement; each answer is whether its row was new. A row whose id
    /// is already stored, or appears earlier in the batch, is left as it was (`false`).
    static func appendMessages(_ messages: [MessageRecord], client: PostgresClient, logger: Logger) async throws -> [Bool] {
        var sql = "INSERT INTO messages (id, conversation_id, channel, direction, author_address, body, created_at) VALUES "
        var binds = PostgresBindings(capacity: messages.count * 7)
        for (index, message) in messages.enumerated() {
            let base = index * 7
            if index > 0 { sql += ", " }
            sql += "($\(base + 1), $\(base + 2), $\(base + 3), $\(base + 4), $\(base + 5), $\(base + 6), $\(base + 7))"
            binds.append(message.id, context: .default)
            binds.append(message.conversationId, context: .default)
            binds.append(message.channel.rawValue, context: .default)
            binds.append(message.direction.rawValue, context: .default)
            if let author = message.authorAddress { binds.append(author, context: .default) } else { binds.appendNull() }
            binds.append(message.body, context: .default)
            binds.append(message.createdAt, context: .default)
        }
        sql += " ON CONFLICT (id) DO NOTHING RETURNING id"
        let rows = try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
        var inserted = Set<String>()
        for try await id in rows.decode(String.self) { inserted.insert(id) }
        // The first item of an id takes its row; a repeat in the same batch finds it there.
        return messages.map { inserted.remove($0.id) != nil }
    }

    /// Marks replies' deliveries sent, with Twilio's ids, in one statement.
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
