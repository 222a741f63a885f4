import AgentConnectCore
import PostgresNIO
import Testing

@testable import Store

@Suite("PostgreSQL store against a real PostgreSQL")
struct StoreTests {
    @Test("migrations run twice and concurrently leave one schema")
    func concurrentMigrations() async throws {
        let database = try await TestDatabase.make()
        try await database.withClient { client in
            let results = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 { group.addTask { try await Migrator(client: client, logger: TestEnvironment.logger).migrate() } }
                return try await group.reduce(into: [[Int]]()) { $0.append($1) }
            }
            let again = try await Migrator(client: client, logger: TestEnvironment.logger).migrate()
            var recorded = 0
            for try await count in try await client.query("SELECT count(*)::int FROM schema_migrations").decode(Int.self) { recorded = count }
            #expect(results.flatMap { $0 }.sorted() == Migrations.all.map(\.version))
            #expect(again.isEmpty)
            #expect(recorded == Migrations.all.count)
        }
    }

    @Test("a string map goes to jsonb as JSON text and comes back; text that is not an object of strings reads as empty")
    func stringMaps() {
        let map = ["campaign": "renewals", "quote": "say \"hi\"/é", "": "empty key"]
        #expect(PostgresStore.map(fromJSON: PostgresStore.json(map)) == map)
        #expect(PostgresStore.map(fromJSON: #"{"a": "b", "n": 1}"#) == [:])
        #expect(PostgresStore.map(fromJSON: "[]") == [:])
        #expect(PostgresStore.map(fromJSON: "not json") == [:])
    }

    @Test("appending the same message event twice stores it once")
    func messageOnce() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            let message = MessageRecord(id: "evt-1", conversationId: "c1", channel: .sms, direction: .inbound, authorAddress: "+1555", body: "hi")
            let first = try await store.appendMessage(message)
            let second = try await store.appendMessage(message)
            let history = try await store.history(conversationId: "c1", limit: 10)
            #expect(first && !second)
            #expect(history.map(\.body) == ["hi"])
        }
    }

    /// What a pooler in transaction mode does to a name prepared on one server connection: the next
    /// connection does not know it, or already has it from another client.
    enum RefusedName: String, CaseIterable, Sendable {
        case unknown = "unknown (26000)"
        case taken = "already taken (42P05)"
    }

    @Test(
        "a prepared statement's name the server refuses: that statement runs once, plain, and so does every later one",
        arguments: RefusedName.allCases)
    func preparedNameRefused(_ refusal: RefusedName) async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient(poolSize: 1) { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            switch refusal {
            case .unknown:
                // Prepared on the one connection, then dropped behind the client's back.
                #expect(try await store.markEnded(conversationId: "c0", channel: .sms))
                try await client.query("DEALLOCATE ALL", logger: TestEnvironment.logger)
            case .taken:
                try await client.query(PostgresQuery(unsafeSQL: "PREPARE \"\(MarkEnded.name)\" AS SELECT 1"), logger: TestEnvironment.logger)
            }
            #expect(store.statements.areNamed)
            // Refused, then run plain: once (a second run finds the conversation already ended).
            #expect(try await store.markEnded(conversationId: "c1", channel: .sms))
            #expect(!store.statements.areNamed)
            #expect(try await !store.markEnded(conversationId: "c1", channel: .sms))
            // Later statements, of other kinds, go plain too.
            try await store.upsertConversation(ConversationRecord(id: "c1", channel: .sms, customerAddress: "+1555"))
            #expect(try await store.conversation(id: "c1")?.customerAddress == "+1555")
            let message = MessageRecord(id: "m1", conversationId: "c1", channel: .sms, direction: .outbound, authorAddress: nil, body: "hi")
            #expect(try await store.appendMessage(message))
            #expect(try await store.history(conversationId: "c1", limit: 5).map(\.authorAddress) == [nil])
        }
    }

    @Test("a prepared statement whose cached plan no longer fits its table (a column's type changed) runs plain; the rest stay prepared")
    func preparedPlanStale() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient(poolSize: 1) { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            try await store.upsertConversation(ConversationRecord(id: "c1", channel: .sms, customerAddress: "+1555"))
            #expect(try await store.conversation(id: "c1")?.status == "ACTIVE")
            try await client.query("ALTER TABLE conversations ALTER COLUMN status TYPE varchar(64)", logger: TestEnvironment.logger)
            #expect(try await store.conversation(id: "c1")?.status == "ACTIVE")
            #expect(try await store.conversation(id: "c1")?.customerAddress == "+1555")
            #expect(store.statements.areNamed)
        }
    }

    @Test("a second delivery row for the same reply is refused")
    func deliveryOnce() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            try await store.insertDelivery(replyId: "r1", conversationId: "c1", channel: .sms)
            var refused = false
            do {
                try await store.insertDelivery(replyId: "r1", conversationId: "c1", channel: .sms)
            } catch let error as StoreError {
                refused = error.code == .duplicate
            }
            let pending = try await store.deliveryStatus(replyId: "r1")
            try await store.markDelivered(replyId: "r1", providerId: "SM1")
            let sent = try await store.deliveryStatus(replyId: "r1")
            #expect(refused)
            #expect(pending == .pending)
            #expect(sent == .sent)
        }
    }

    @Test("a conversation is marked ended once, whatever the number of concurrent callers")
    func endedOnce() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            try await store.upsertConversation(ConversationRecord(id: "c9", channel: .voice, customerAddress: "+1555"))
            let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<8 { group.addTask { try await store.markEnded(conversationId: "c9", channel: .voice) } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            let status = try await store.conversation(id: "c9")?.status
            #expect(winners == 1)
            #expect(status == "CLOSED")
        }
    }

    @Test("upserts keep what is known and merge metadata")
    func upsertMerges() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            try await store.upsertConversation(ConversationRecord(id: "c2", channel: .sms, customerAddress: "+1", metadata: ["a": "1"]))
            try await store.upsertConversation(ConversationRecord(id: "c2", channel: .sms, agentParticipantId: "PA", metadata: ["b": "2"]))
            let record = try await store.conversation(id: "c2")
            #expect(record?.customerAddress == "+1")
            #expect(record?.agentParticipantId == "PA")
            #expect(record?.metadata == ["a": "1", "b": "2"])
        }
    }

    @Test("old finished delivery rows are deleted a batch at a time, oldest first; pending and recent rows stay")
    func deliveryRetention() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            for reply in ["old-sent", "older-sent", "old-failed", "old-pending", "new-sent"] {
                try await store.insertDelivery(replyId: reply, conversationId: "c1", channel: .sms)
            }
            try await store.markDelivered(replyId: "old-sent", providerId: "SM1")
            try await store.markDelivered(replyId: "older-sent", providerId: "SM2")
            try await store.markDelivered(replyId: "new-sent", providerId: "SM3")
            try await store.markDeliveryFailed(replyId: "old-failed", error: "21610")
            try await client.query(
                """
                UPDATE deliveries SET created_at = now() - CASE reply_id WHEN 'older-sent' THEN interval '3 days' ELSE interval '2 days' END
                WHERE reply_id <> 'new-sent'
                """, logger: TestEnvironment.logger)
            func remaining() async throws -> [String] {
                var ids: [String] = []
                let rows = try await client.query("SELECT reply_id FROM deliveries ORDER BY reply_id", logger: TestEnvironment.logger)
                for try await id in rows.decode(String.self) { ids.append(id) }
                return ids
            }
            // At most `limit` a statement, the oldest first.
            #expect(try await store.pruneDeliveries(olderThanSeconds: 86_400, limit: 1) == 1)
            #expect(try await remaining() == ["new-sent", "old-failed", "old-pending", "old-sent"])
            #expect(try await store.pruneDeliveries(olderThanSeconds: 86_400, limit: 10) == 2)
            #expect(try await remaining() == ["new-sent", "old-pending"])
            #expect(try await store.pruneDeliveries(olderThanSeconds: 86_400, limit: 10) == 0)
            // A longer retention keeps what is younger than it.
            try await client.query("UPDATE deliveries SET status = 'sent'", logger: TestEnvironment.logger)
            #expect(try await store.pruneDeliveries(olderThanSeconds: 3 * 86_400, limit: 10) == 0)
            #expect(try await remaining() == ["new-sent", "old-pending"])
            // Only its pending status kept the old row: finished, it goes.
            #expect(try await store.pruneDeliveries(olderThanSeconds: 86_400, limit: 10) == 1)
            #expect(try await remaining() == ["new-sent"])
        }
    }
}
