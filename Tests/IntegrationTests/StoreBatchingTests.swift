import AgentConnectCore
import Foundation
import PostgresNIO
import Store
import Testing

/// History rows and deliveries marked sent at the same time go out as one statement: each caller
/// still gets its own answer, and what is stored is what one statement each would have stored.
@Suite("PostgreSQL store: batched statements against a real PostgreSQL")
struct StoreBatchingTests {
    @Test("concurrent appends each get their own answer: new rows true, a repeated id true exactly once")
    func concurrentAppends() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            let stored = MessageRecord(id: "old", conversationId: "c1", channel: .sms, direction: .inbound, authorAddress: "+1555", body: "before")
            #expect(try await store.appendMessage(stored))
            // 600 callers (more than one statement holds): 300 distinct ids, 299 repeats of "twice",
            // and the id stored before.
            let answers = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
                for index in 0..<300 {
                    group.addTask {
                        let message = MessageRecord(
                            id: "m\(index)", conversationId: "c1", channel: .sms, direction: index.isMultiple(of: 2) ? .inbound : .outbound,
                            authorAddress: index.isMultiple(of: 3) ? nil : "+1555", body: "text \(index)",
                            createdAt: Date(timeIntervalSince1970: 1_800_000_000 + Double(index)))
                        return (message.id, try await store.appendMessage(message))
                    }
                    group.addTask {
                        let message = MessageRecord(
                            id: "twice", conversationId: "c2", channel: .sms, direction: .inbound, authorAddress: nil, body: "dup")
                        return ("twice", try await store.appendMessage(message))
                    }
                }
                group.addTask { ("old", try await store.appendMessage(stored)) }
                return try await group.reduce(into: [(String, Bool)]()) { $0.append($1) }
            }
            #expect(answers.filter { $0.0.hasPrefix("m") }.allSatisfy { $0.1 })
            #expect(answers.filter { $0.0 == "twice" && $0.1 }.count == 1)
            #expect(answers.filter { $0.0 == "old" }.map(\.1) == [false])
            let history = try await store.history(conversationId: "c1", limit: 1000)
            #expect(history.count == 301)
            let m3 = history.first { $0.id == "m3" }
            #expect(m3?.authorAddress == nil && m3?.direction == .outbound && m3?.body == "text 3")
            #expect(m3?.createdAt == Date(timeIntervalSince1970: 1_800_000_003))
            #expect(history.first { $0.id == "m4" }?.authorAddress == "+1555")
            #expect(try await store.history(conversationId: "c2", limit: 10).map(\.body) == ["dup"])
        }
    }

    @Test("concurrent deliveries marked sent each record their own provider id")
    func concurrentMarkDelivered() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            for index in 0..<300 { try await store.insertDelivery(replyId: "r\(index)", conversationId: "c1", channel: .sms) }
            try await store.insertDelivery(replyId: "untouched", conversationId: "c1", channel: .sms)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<300 {
                    group.addTask { try await store.markDelivered(replyId: "r\(index)", providerId: index == 7 ? nil : "SM\(index)") }
                }
                try await group.waitForAll()
            }
            var rows: [String: (String, String?)] = [:]
            for try await row in try await client.query("SELECT reply_id, status, provider_id FROM deliveries").decode((String, String, String?).self)
            {
                rows[row.0] = (row.1, row.2)
            }
            #expect((0..<300).allSatisfy { rows["r\($0)"]?.0 == "sent" })
            #expect((0..<300).filter { $0 != 7 }.allSatisfy { rows["r\($0)"]?.1 == "SM\($0)" })
            #expect(rows["r7"]?.1 == nil)
            #expect(rows["untouched"]?.0 == "pending")
        }
    }
}
