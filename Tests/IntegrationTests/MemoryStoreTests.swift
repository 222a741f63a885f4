import AgentConnectCore
import Foundation
import PostgresNIO
import Store
import Testing

@Suite("Customer memory in PostgreSQL")
struct MemoryStoreTests {
    @Test("recall ranks the coffee observation above unrelated ones; scores in 0…1; the threshold filters")
    func ranking() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            let profile = try #require(try await store.profileId(for: .phone("+15550101010"), create: true))
            for content in ["Has a dog called Rex", "Drinks a flat white coffee every morning", "Lives in Lyon", "Prefers email over calls"] {
                try await store.addObservation(profileId: profile, content: content, source: "test", conversationId: nil, id: nil)
                try await Task.sleep(for: .milliseconds(5))
            }
            try await store.addSummary(
                profileId: profile, content: "Asked about coffee beans", source: "test", conversationId: "c1", occurredAt: nil, id: nil)
            try await store.addSummary(profileId: profile, content: "Changed address", source: "test", conversationId: "c2", occurredAt: nil, id: nil)

            let ranked = try await store.recall(profileId: profile, RecallRequest(query: "what coffee do I like?"))
            #expect(ranked.observations.first?.content == "Drinks a flat white coffee every morning")
            #expect(ranked.observations.count == 4)
            #expect(ranked.observations.allSatisfy { (0...1).contains($0.score) })
            #expect(ranked.observations[0].score > ranked.observations[1].score)
            #expect(ranked.summaries.first?.content == "Asked about coffee beans")

            let filtered = try await store.recall(profileId: profile, RecallRequest(query: "coffee", relevanceThreshold: 0.01))
            #expect(filtered.observations.map(\.content) == ["Drinks a flat white coffee every morning"])

            let recent = try await store.recall(profileId: profile, RecallRequest(query: nil, observationsLimit: 2, summariesLimit: 0))
            #expect(recent.observations.map(\.content) == ["Prefers email over calls", "Lives in Lyon"])
            #expect(recent.observations.allSatisfy { $0.score == 1 })
            #expect(recent.summaries.isEmpty)
        }
    }

    @Test("one profile per phone even when created concurrently; traits in groups; communications across conversations")
    func profilesAndTraits() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            let ids = try await withThrowingTaskGroup(of: String?.self) { group in
                for _ in 0..<6 { group.addTask { try await store.profileId(for: .phone("+15550202020"), create: true) } }
                return try await group.reduce(into: Set<String?>()) { $0.insert($1) }
            }
            #expect(ids.count == 1)
            let profile = try #require(ids.first ?? nil)
            #expect(try await store.profileId(for: .phone("+15550303030"), create: false) == nil)
            var profiles = 0
            for try await count in try await client.query("SELECT count(*)::int FROM profiles").decode(Int.self) { profiles = count }
            #expect(profiles == 1)

            try await store.setTraits(profileId: profile, group: "Preferences", values: ["drink": "flat white", "size": "large"])
            try await store.setTraits(profileId: profile, group: "Preferences", values: ["drink": "espresso"])
            let traits = try await store.traits(profileId: profile, groups: nil)
            #expect(traits["Preferences"] == ["drink": "espresso", "size": "large"])
            #expect(traits["Contact"] == ["phone": "+15550202020"])
            #expect(try await store.traits(profileId: profile, groups: ["Contact"]).keys.sorted() == ["Contact"])

            for (index, conversation) in ["c1", "c2"].enumerated() {
                try await store.upsertConversation(
                    ConversationRecord(id: conversation, channel: .sms, customerAddress: "+15550202020", profileId: profile))
                try await store.appendMessage(
                    MessageRecord(
                        id: "m\(index)", conversationId: conversation, channel: .sms, direction: .inbound, authorAddress: "+15550202020",
                        body: "message \(index)", createdAt: Date(timeIntervalSinceNow: Double(index))))
            }
            let recalled = try await store.recall(profileId: profile, RecallRequest(query: nil, communicationsLimit: 5))
            #expect(recalled.communications.map(\.body) == ["message 0", "message 1"])
        }
    }
}
