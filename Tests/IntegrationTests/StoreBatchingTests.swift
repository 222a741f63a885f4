import AgentConnectCore
import Foundation
import PostgresNIO
import Store
import Testing

/// History rows, delivery claims and deliveries marked sent at the same time go out as one statement:
/// each caller still gets its own answer, and what is stored is what one statement each would have stored.
@Suite("PostgreSQL store: batched statements against a real PostgreSQL")
struct StoreBatchingTests {
    /// Runs `body` on a store over a freshly migrated database (and its client, for direct queries).
    static func withStore(_ body: @escaping @Sendable (PostgresClient, PostgresStore) async throws -> Void) async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            try await body(client, PostgresStore(client: client, logger: TestEnvironment.logger))
        }
    }

    /// Whether, within a few seconds, some statement waits on another transaction's lock.
    static func someoneWaitsOnALock(_ client: PostgresClient) async throws -> Bool {
        try await eventually {
            let rows = try await client.query("SELECT count(*)::int FROM pg_locks WHERE NOT granted", logger: TestEnvironment.logger)
            for try await count in rows.decode(Int.self) { return count > 0 }
            return false
        }
    }

    @Test("concurrent appends each get their own answer: new rows true, a repeated id true exactly once")
    func concurrentAppends() async throws {
        try await Self.withStore { client, store in
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
        try await Self.withStore { client, store in
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

/// What one caller's refused row or one slow statement does to the others batched beside it
/// (the cancellation cases are in CoreTests' StatementBatcherTests, on a scripted statement).
extension StoreBatchingTests {
    @Test("a row PostgreSQL refuses (NUL in the body) fails only its own caller, not the others in its batch")
    func poisonRowFailsOnlyItsCaller() async throws {
        try await Self.withStore { client, store in
            let results = await withTaskGroup(of: (Int, Bool).self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let body = index == 100 ? "a\u{0}b" : "text \(index)"
                        let message = MessageRecord(
                            id: "m\(index)", conversationId: "c\(index)", channel: .sms, direction: .inbound, authorAddress: nil,
                            body: body)
                        do { return (index, try await store.appendMessage(message)) } catch { return (index, false) }
                    }
                }
                return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
            }
            let failedOthers = results.filter { $0.key != 100 && !$0.value }.count
            #expect(failedOthers == 0, "\(failedOthers) unrelated history rows were lost with the refused one")
        }
    }

    @Test("a turn's rows appended together: one PostgreSQL refuses (NUL in the body) is reported, the others are kept")
    func poisonRowInAGroup() async throws {
        try await Self.withStore { client, store in
            func row(_ id: String, _ body: String) -> MessageRecord {
                MessageRecord(id: id, conversationId: "cg", channel: .sms, direction: .inbound, authorAddress: nil, body: body)
            }
            #expect(try await store.appendMessages([row("g1", "hello"), row("g2", "reply")]) == [true, true])
            await #expect(throws: (any Error).self) {
                try await store.appendMessages([row("g3", "a\u{0}b"), row("g4", "kept"), row("g1", "again")])
            }
            let rows = try await client.query("SELECT id FROM messages WHERE conversation_id = 'cg' ORDER BY id", logger: TestEnvironment.logger)
            var ids: [String] = []
            for try await id in rows.decode(String.self) { ids.append(id) }
            #expect(ids == ["g1", "g2", "g4"])
        }
    }

    @Test("a claim PostgreSQL refuses (NUL in the reply id) fails only its own caller, not the others in its batch")
    func poisonClaimFailsOnlyItsCaller() async throws {
        try await Self.withStore { client, store in
            let results = await withTaskGroup(of: (Int, Bool).self) { group in
                for index in 0..<200 {
                    group.addTask {
                        do {
                            let claimed = try await store.claimForSending(
                                replyId: index == 100 ? "r\u{0}" : "r\(index)", conversationId: "c1", channel: .sms, textHash: "h", owner: "a",
                                leaseMilliseconds: 30_000, optOut: nil, targetKnown: true)
                            return (index, claimed.claim == .claimed(inDoubtSince: nil))
                        } catch {
                            return (index, false)
                        }
                    }
                }
                return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
            }
            #expect(results[100] == false)
            let failedOthers = results.filter { $0.key != 100 && !$0.value }.count
            #expect(failedOthers == 0, "\(failedOthers) unrelated claims failed with the refused one")
        }
    }

    @Test("one slow claim statement does not hold every other claim of the process")
    func slowClaimDoesNotHoldOthers() async throws {
        try await Self.withStore { client, store in
            @Sendable func claim(_ replyId: String) async throws -> SendingClaim {
                try await store.claimForSending(
                    replyId: replyId, conversationId: "c1", channel: .sms, textHash: "h", owner: "a", leaseMilliseconds: 30_000, optOut: nil,
                    targetKnown: true)
            }
            try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: TestEnvironment.logger)
                try await connection.query(
                    "INSERT INTO deliveries (reply_id, conversation_id, channel) VALUES ('held', 'c0', 'sms')", logger: TestEnvironment.logger)
                // A claim of the same reply waits on the open transaction's row (a slow statement).
                let held = Task { try await claim("held") }
                let waiting = try await Self.someoneWaitsOnALock(client)
                try #require(waiting, "the held claim never waited on the open transaction's row")
                let other: Result<SendingClaim, any Error>
                do {
                    other = .success(try await withTimeout(.seconds(3), "an unrelated claim") { try await claim("other") })
                } catch {
                    other = .failure(error)
                }
                try await connection.query("ROLLBACK", logger: TestEnvironment.logger)
                _ = try? await held.value
                #expect((try? other.get())?.claim == .claimed(inDoubtSince: nil), "an unrelated claim waited behind the slow one: \(other)")
            }
        }
    }

    @Test("one slow history statement does not hold every other append of the process")
    func slowStatementDoesNotHoldOthers() async throws {
        try await Self.withStore { client, store in
            try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: TestEnvironment.logger)
                try await connection.query(
                    "INSERT INTO messages (id, conversation_id, channel, direction, body) VALUES ('held', 'c0', 'sms', 'inbound', 'x')",
                    logger: TestEnvironment.logger)
                // An append of the same id waits on the open transaction's row (a slow statement).
                let held = Task {
                    try await store.appendMessage(
                        MessageRecord(id: "held", conversationId: "c0", channel: .sms, direction: .inbound, authorAddress: nil, body: "x"))
                }
                let waiting = try await Self.someoneWaitsOnALock(client)
                try #require(waiting, "the held append never waited on the open transaction's row")
                let other: Result<Bool, any Error>
                do {
                    other = .success(
                        try await withTimeout(.seconds(3), "an unrelated append") {
                            try await store.appendMessage(
                                MessageRecord(id: "other", conversationId: "c1", channel: .sms, direction: .inbound, authorAddress: nil, body: "y"))
                        })
                } catch {
                    other = .failure(error)
                }
                try await connection.query("ROLLBACK", logger: TestEnvironment.logger)
                _ = try? await held.value
                #expect((try? other.get()) == true, "an unrelated append waited behind the slow one: \(other)")
            }
        }
    }
}
