import AgentConnectCore
import Foundation
import Logging
import PostgresNIO

/// The repositories on PostgreSQL through one `PostgresClient` (run it in the service group).
package struct PostgresStore: Sendable {
    /// The pooled client.
    package let client: PostgresClient
    let logger: Logger
    /// The frequent statements, prepared once per connection (``PreparedStatements``).
    package let statements: PreparedStatements
    /// History rows and deliveries marked sent, written together when issued together.
    let batchers: PostgresBatchers

    /// - Parameter preparedStatements: whether frequent statements go as named prepared statements
    ///   (`DATABASE_PREPARED_STATEMENTS`); off, or after a pooler refuses a name, they go plain.
    package init(client: PostgresClient, logger: Logger, preparedStatements: Bool = true) {
        self.client = client
        self.logger = logger
        statements = PreparedStatements(client: client, logger: logger, named: preparedStatements)
        batchers = PostgresBatchers(statements: statements)
    }

    /// Whether the error is a unique-constraint violation.
    static func isUniqueViolation(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }

    /// Encodes a string map as JSON text for a `jsonb` parameter.
    static func json(_ map: [String: String]) -> String {
        (try? String(decoding: CompactJSON.encode(.object(map.mapValues { .string($0) })), as: UTF8.self)) ?? "{}"
    }

    /// A string map from JSON text; empty when the text is not an object of strings.
    static func map(fromJSON text: String) -> [String: String] {
        guard case .object(let members)? = try? CompactJSON.decode(text.utf8) else { return [:] }
        var map: [String: String] = [:]
        for (key, value) in members {
            guard case .string(let string) = value else { return [:] }
            map[key] = string
        }
        return map
    }
}

extension PostgresStore: ConversationStore {
    package func upsertConversation(_ record: ConversationRecord) async throws {
        try await statements.run(UpsertConversation(record: record))
    }

    package func conversation(id: String) async throws -> ConversationRecord? {
        try await statements.rows(ConversationById(id: id)).first.map { row in
            ConversationRecord(
                id: row.0, channel: ChannelKind(rawValue: row.1) ?? .sms, status: row.2, direction: row.3, customerAddress: row.4,
                agentAddress: row.5, customerParticipantId: row.6, agentParticipantId: row.7, profileId: row.8,
                metadata: Self.map(fromJSON: row.9))
        }
    }

    package func setStatus(conversationId: String, status: String) async throws {
        try await client.query(
            "UPDATE conversations SET status = \(status), updated_at = now() WHERE id = \(conversationId)", logger: logger)
    }

    package func markEnded(conversationId: String, channel: ChannelKind) async throws -> Bool {
        try await !statements.rows(MarkEnded(conversationId: conversationId, channel: channel)).isEmpty
    }
}

/// A conversation's row created, or its known fields filled in and its metadata merged (once per
/// conversation and voice call: prepared).
struct UpsertConversation: PostgresPreparedStatement {
    static let name = PreparedStatements.name(Self.self)
    static let sql = """
        INSERT INTO conversations (id, channel, status, direction, customer_address, agent_address,
            customer_participant_id, agent_participant_id, profile_id, metadata)
        VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text, $10::text::jsonb)
        ON CONFLICT (id) DO UPDATE SET
            customer_address = COALESCE(EXCLUDED.customer_address, conversations.customer_address),
            agent_address = COALESCE(EXCLUDED.agent_address, conversations.agent_address),
            customer_participant_id = COALESCE(EXCLUDED.customer_participant_id, conversations.customer_participant_id),
            agent_participant_id = COALESCE(EXCLUDED.agent_participant_id, conversations.agent_participant_id),
            profile_id = COALESCE(EXCLUDED.profile_id, conversations.profile_id),
            metadata = conversations.metadata || EXCLUDED.metadata,
            updated_at = now()
        """
    typealias Row = Void

    var record: ConversationRecord

    func makeBindings() -> PostgresBindings {
        var binds = PostgresBindings(capacity: 10)
        binds.append(record.id)
        binds.append(record.channel.rawValue)
        binds.append(record.status)
        binds.append(record.direction)
        binds.append(record.customerAddress)
        binds.append(record.agentAddress)
        binds.append(record.customerParticipantId)
        binds.append(record.agentParticipantId)
        binds.append(record.profileId)
        binds.append(PostgresStore.json(record.metadata))
        return binds
    }

    func decodeRow(_ row: PostgresRow) throws {}
}

/// One conversation's row.
struct ConversationById: PostgresPreparedStatement {
    static let name = PreparedStatements.name(Self.self)
    static let sql = """
        SELECT id, channel, status, direction, customer_address, agent_address, customer_participant_id,
            agent_participant_id, profile_id, metadata::text
        FROM conversations WHERE id = $1::text
        """
    typealias Row = (String, String, String, String, String?, String?, String?, String?, String?, String)

    var id: String

    func makeBindings() -> PostgresBindings {
        var binds = PostgresBindings(capacity: 1)
        binds.append(id)
        return binds
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// A conversation closed, once: a row only when this call ended it (created closed, or open until now).
struct MarkEnded: PostgresPreparedStatement {
    static let name = PreparedStatements.name(Self.self)
    static let sql = """
        INSERT INTO conversations (id, channel, status, ended_at) VALUES ($1::text, $2::text, 'CLOSED', now())
        ON CONFLICT (id) DO UPDATE SET ended_at = now(), status = 'CLOSED', updated_at = now()
            WHERE conversations.ended_at IS NULL
        RETURNING id
        """
    typealias Row = String

    var conversationId: String
    var channel: ChannelKind

    func makeBindings() -> PostgresBindings {
        var binds = PostgresBindings(capacity: 2)
        binds.append(conversationId)
        binds.append(channel.rawValue)
        return binds
    }

    func decodeRow(_ row: PostgresRow) throws -> String { try row.decode(String.self) }
}

extension PostgresStore: MessageStore {
    /// Appends a history row, in one statement with the rows appended at the same time.
    package func appendMessage(_ message: MessageRecord) async throws -> Bool {
        try await appendMessages([message])[0]
    }

    /// Appends history rows in one statement (with the rows appended at the same time): a messaging
    /// turn writes the customer's message and its replies together.
    /// A row PostgreSQL refuses (a NUL in a body) fails the group's statement: the rows then go one
    /// by one, so the others are kept, and the refusal is thrown after them.
    package func appendMessages(_ messages: [MessageRecord]) async throws -> [Bool] {
        guard !messages.isEmpty else { return [] }
        do {
            return try await batchers.appendMessages.run(messages)
        } catch let error where messages.count > 1 && !Self.isUnavailable(error) && !(error is CancellationError) && !(error is TimeoutError) {
            var appended: [Bool] = []
            var refusal: (any Error)?
            for message in messages {
                do {
                    appended.append(try await batchers.appendMessages.run([message])[0])
                } catch {
                    refusal = refusal ?? error
                    appended.append(false)
                }
            }
            if let refusal { throw refusal }
            return appended
        }
    }

    package func replaceMessageBody(id: String, body: String) async throws -> Bool {
        let rows = try await client.query("UPDATE messages SET body = \(body) WHERE id = \(id) RETURNING id", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    package func history(conversationId: String, limit: Int) async throws -> [MessageRecord] {
        let rows = try await client.query(
            """
            SELECT id, channel, direction, author_address, body, created_at FROM (
                SELECT * FROM messages WHERE conversation_id = \(conversationId) ORDER BY created_at DESC, id DESC LIMIT \(limit)
            ) latest ORDER BY created_at, id
            """, logger: logger)
        var result: [MessageRecord] = []
        for try await row in rows.decode((String, String, String, String?, String, Date).self) {
            result.append(
                MessageRecord(
                    id: row.0, conversationId: conversationId, channel: ChannelKind(rawValue: row.1) ?? .sms,
                    direction: MessageRecord.Direction(rawValue: row.2) ?? .inbound, authorAddress: row.3, body: row.4,
                    createdAt: row.5))
        }
        return result
    }
}

extension PostgresStore: DeliveryStore {
    package func insertDelivery(replyId: String, conversationId: String, channel: ChannelKind) async throws {
        do {
            try await client.query(
                """
                INSERT INTO deliveries (reply_id, conversation_id, channel) VALUES (\(replyId), \(conversationId), \(channel.rawValue))
                """, logger: logger)
        } catch let error where Self.isUniqueViolation(error) {
            throw StoreError(.duplicate, "a delivery row for reply \(replyId) already exists")
        }
    }

    package func deliveryStatus(replyId: String) async throws -> DeliveryStatus? {
        let rows = try await client.query("SELECT status FROM deliveries WHERE reply_id = \(replyId)", logger: logger)
        for try await status in rows.decode(String.self) { return DeliveryStatus(rawValue: status) }
        return nil
    }

    /// Marks a reply's delivery sent, in one statement with the replies marked at the same time.
    package func markDelivered(replyId: String, providerId: String?) async throws {
        try await batchers.markDelivered.run((replyId: replyId, providerId: providerId))
    }

    package func markDeliveryFailed(replyId: String, error: String) async throws {
        try await client.query(
            "UPDATE deliveries SET status = 'failed', error = \(error), attempts = attempts + 1, owner = NULL WHERE reply_id = \(replyId)",
            logger: logger)
    }

    package func countSentLike(conversationId: String, textHash: String, since: Date, excluding replyId: String) async throws -> Int {
        let rows = try await client.query(
            """
            SELECT count(*)::int8 FROM deliveries WHERE conversation_id = \(conversationId) AND text_hash = \(textHash)
              AND status = 'sent' AND sent_at >= \(since) AND reply_id <> \(replyId)
            """, logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    package func claimDelivery(
        replyId: String, conversationId: String, channel: ChannelKind, textHash: String, owner: String, leaseMilliseconds: Int
    ) async throws -> DeliveryClaim {
        let inserted = try await client.query(
            """
            INSERT INTO deliveries (reply_id, conversation_id, channel, text_hash, owner, lease_until)
            VALUES (\(replyId), \(conversationId), \(channel.rawValue), \(textHash), \(owner), now() + \(leaseMilliseconds) * interval '1 millisecond')
            ON CONFLICT (reply_id) DO NOTHING RETURNING reply_id
            """, logger: logger)
        for try await _ in inserted { return .claimed(inDoubtSince: nil) }
        let taken = try await client.query(
            """
            UPDATE deliveries SET owner = \(owner), lease_until = now() + \(leaseMilliseconds) * interval '1 millisecond'
            WHERE reply_id = \(replyId) AND status = 'pending' AND (owner IS NULL OR owner = \(owner) OR lease_until < now())
            RETURNING in_doubt_since
            """, logger: logger)
        for try await inDoubtSince in taken.decode(Date?.self) { return .claimed(inDoubtSince: inDoubtSince) }
        let rows = try await client.query("SELECT status FROM deliveries WHERE reply_id = \(replyId)", logger: logger)
        for try await status in rows.decode(String.self) {
            if let status = DeliveryStatus(rawValue: status), status != .pending { return .finished(status) }
        }
        return .heldElsewhere
    }

    package func markSending(replyId: String, owner: String, leaseMilliseconds: Int) async throws -> Bool {
        let rows = try await client.query(
            """
            UPDATE deliveries SET in_doubt_since = coalesce(in_doubt_since, now()), attempts = attempts + 1,
                lease_until = now() + \(leaseMilliseconds) * interval '1 millisecond'
            WHERE reply_id = \(replyId) AND owner = \(owner) AND status = 'pending' RETURNING reply_id
            """, logger: logger)
        for try await _ in rows { return true }
        return false
    }

    package func clearDoubt(replyId: String, owner: String) async throws {
        try await client.query(
            "UPDATE deliveries SET in_doubt_since = NULL WHERE reply_id = \(replyId) AND owner = \(owner) AND status = 'pending'",
            logger: logger)
    }

    package func isProviderIdRecorded(_ providerId: String) async throws -> Bool {
        let rows = try await client.query("SELECT 1 FROM deliveries WHERE provider_id = \(providerId) LIMIT 1", logger: logger)
        for try await _ in rows { return true }
        return false
    }
}

extension PostgresStore: ProcessedEventStore {
    package func markProcessed(consumer: String, eventId: String) async throws -> Bool {
        let rows = try await client.query(
            """
            INSERT INTO processed_events (consumer, event_id) VALUES (\(consumer), \(eventId))
            ON CONFLICT DO NOTHING RETURNING event_id
            """, logger: logger)
        for try await _ in rows { return true }
        return false
    }
}
