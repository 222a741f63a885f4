import AgentConnectCore
import Foundation
import PostgresNIO

extension PostgresStore: CustomerMemoryStore {
    package func profileId(for identifier: ProfileIdentifier, create: Bool) async throws -> String? {
        if let existing = try await lookupProfile(identifier) { return existing }
        guard create else { return nil }
        let id = "mem_profile_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        // Two workers may create the same customer's profile at once: the identifier's primary key
        // picks one, and the loser's empty profile is removed in the same transaction.
        let winner = try await client.withTransaction(logger: logger) { connection -> String? in
            try await connection.query("INSERT INTO profiles (id) VALUES (\(id))", logger: logger)
            let rows = try await connection.query(
                """
                INSERT INTO profile_identifiers (kind, value, profile_id) VALUES (\(identifier.kind), \(identifier.value), \(id))
                ON CONFLICT DO NOTHING RETURNING profile_id
                """, logger: logger)
            for try await created in rows.decode(String.self) { return created }
            try await connection.query("DELETE FROM profiles WHERE id = \(id)", logger: logger)
            return nil
        }
        if let winner {
            try await setTraits(profileId: winner, group: "Contact", values: [identifier.kind: identifier.value])
            return winner
        }
        return try await lookupProfile(identifier)
    }

    private func lookupProfile(_ identifier: ProfileIdentifier) async throws -> String? {
        let rows = try await client.query(
            "SELECT profile_id FROM profile_identifiers WHERE kind = \(identifier.kind) AND value = \(identifier.value)", logger: logger)
        for try await id in rows.decode(String.self) { return id }
        return nil
    }

    package func ensureProfile(id: String) async throws {
        try await client.query("INSERT INTO profiles (id) VALUES (\(id)) ON CONFLICT DO NOTHING", logger: logger)
    }

    package func addObservation(profileId: String, content: String, source: String, conversationId: String?, id: String?) async throws -> String {
        let id = id ?? UUID().uuidString.lowercased()
        try await client.query(
            """
            INSERT INTO observations (id, profile_id, content, source, conversation_id)
            VALUES (\(id), \(profileId), \(content), \(source), \(conversationId)) ON CONFLICT (id) DO NOTHING
            """, logger: logger)
        return id
    }

    package func addSummary(
        profileId: String, content: String, source: String, conversationId: String?, occurredAt: Date?, id: String?
    ) async throws -> String {
        let id = id ?? UUID().uuidString.lowercased()
        try await client.query(
            """
            INSERT INTO conversation_summaries (id, profile_id, content, source, conversation_id, occurred_at)
            VALUES (\(id), \(profileId), \(content), \(source), \(conversationId), \(occurredAt)) ON CONFLICT (id) DO NOTHING
            """, logger: logger)
        return id
    }

    package func setTraits(profileId: String, group: String, values: [String: String]) async throws {
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            try await client.query(
                """
                INSERT INTO traits (profile_id, trait_group, name, value) VALUES (\(profileId), \(group), \(name), to_jsonb(\(value)::text))
                ON CONFLICT (profile_id, trait_group, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
                """, logger: logger)
        }
    }

    package func traits(profileId: String, groups: [String]?) async throws -> [String: [String: String]] {
        let rows = try await client.query(
            "SELECT trait_group, name, value #>> '{}' FROM traits WHERE profile_id = \(profileId) ORDER BY trait_group, name",
            logger: logger)
        var result: [String: [String: String]] = [:]
        for try await (group, name, value) in rows.decode((String, String, String?).self) {
            if let groups, !groups.contains(group) { continue }
            result[group, default: [:]][name] = value ?? ""
        }
        return result
    }

    package func recall(profileId: String, _ request: RecallRequest) async throws -> RecallResult {
        let query = request.tsQuery
        let threshold = query.isEmpty ? 0 : request.relevanceThreshold
        async let observations = rankedItems(
            table: "observations", sourceColumn: "source", profileId: profileId, query: query, threshold: threshold,
            limit: request.observationsLimit)
        async let summaries = rankedItems(
            table: "conversation_summaries", sourceColumn: "source", profileId: profileId, query: query, threshold: threshold,
            limit: request.summariesLimit)
        async let communications = recentCommunications(profileId: profileId, limit: request.communicationsLimit)
        return RecallResult(observations: try await observations, summaries: try await summaries, communications: try await communications)
    }

    /// Items ranked by `ts_rank_cd` normalised into 0…1 (`rank / (rank + 1)`, scaled so one
    /// matching word in a short item scores about 0.5), newest first among equals.
    private func rankedItems(
        table: String, sourceColumn: String, profileId: String, query: String, threshold: Double, limit: Int
    ) async throws -> [MemoryItemRecord] {
        guard limit > 0 else { return [] }
        let sql: PostgresQuery
        if query.isEmpty {
            sql = PostgresQuery(
                unsafeSQL: """
                    SELECT id, content, \(sourceColumn), conversation_id, created_at, 1.0::float8 AS score FROM \(table)
                    WHERE profile_id = $1 ORDER BY created_at DESC LIMIT $2
                    """, binds: try Self.binds(profileId, limit))
        } else {
            sql = PostgresQuery(
                unsafeSQL: """
                    SELECT * FROM (
                        SELECT id, content, \(sourceColumn), conversation_id, created_at,
                            (ts_rank_cd(search, to_tsquery('english', $3), 32) * 10
                                / (ts_rank_cd(search, to_tsquery('english', $3), 32) * 10 + 1))::float8 AS score
                        FROM \(table) WHERE profile_id = $1
                    ) ranked WHERE score >= $4 ORDER BY score DESC, created_at DESC LIMIT $2
                    """, binds: try Self.binds(profileId, limit, query, threshold))
        }
        var items: [MemoryItemRecord] = []
        for try await row in try await client.query(sql, logger: logger).decode((String, String, String, String?, Date, Double).self) {
            items.append(
                MemoryItemRecord(id: row.0, content: row.1, source: row.2, conversationId: row.3, createdAt: row.4, score: min(1, max(0, row.5))))
        }
        return items
    }

    private func recentCommunications(profileId: String, limit: Int) async throws -> [MessageRecord] {
        guard limit > 0 else { return [] }
        let rows = try await client.query(
            """
            SELECT m.id, m.conversation_id, m.channel, m.direction, m.author_address, m.body, m.created_at
            FROM messages m JOIN conversations c ON c.id = m.conversation_id
            WHERE c.profile_id = \(profileId) ORDER BY m.created_at DESC, m.id DESC LIMIT \(limit)
            """, logger: logger)
        var result: [MessageRecord] = []
        for try await row in rows.decode((String, String, String, String, String?, String, Date).self) {
            result.append(
                MessageRecord(
                    id: row.0, conversationId: row.1, channel: ChannelKind(rawValue: row.2) ?? .sms,
                    direction: MessageRecord.Direction(rawValue: row.3) ?? .inbound, authorAddress: row.4, body: row.5, createdAt: row.6))
        }
        return result.reversed()
    }

    private static func binds(_ values: any PostgresEncodable...) throws -> PostgresBindings {
        var bindings = PostgresBindings()
        for value in values { try bindings.append(value) }
        return bindings
    }
}
