import AgentConnectCore
import Foundation
import PostgresNIO
import Store
import Testing

/// The delivery rows' rules outbound relies on, as a contract: the same assertions against
/// ``PostgresStore`` (its SQL on a migrated database, as prepared statements and as plain ones) and
/// against ``InMemoryStore``, the twin the in-process outbound tests run on.
@Suite("Delivery claim for a send: PostgreSQL and its in-memory twin")
struct DeliveryClaimTests {
    enum Kind: String, CaseIterable, Sendable {
        case postgres
        case postgresPlain = "postgres, plain statements"
        case memory
    }

    /// What the contract reads of a delivery row.
    struct Row: Equatable {
        var status: String
        var attempts: Int
        var inDoubt: Bool
        var owner: String?
        var providerId: String?
    }

    /// A store of `kind` and a way to read its rows.
    func withStore(
        _ kind: Kind, _ body: @escaping @Sendable (any OutboundStore, @escaping @Sendable (String) async throws -> Row?) async throws -> Void
    ) async throws {
        switch kind {
        case .memory:
            let store = InMemoryStore()
            try await body(store) { replyId in
                store.delivery(replyId: replyId).map {
                    Row(
                        status: $0.status.rawValue, attempts: $0.attempts, inDoubt: $0.inDoubtSince != nil, owner: $0.owner, providerId: $0.providerId
                    )
                }
            }
        case .postgres, .postgresPlain:
            let database = try await TestDatabase.migrated()
            try await database.withClient { client in
                let store = PostgresStore(client: client, logger: TestEnvironment.logger, preparedStatements: kind == .postgres)
                try await body(store) { replyId in
                    let rows = try await client.query(
                        "SELECT status, attempts, in_doubt_since IS NOT NULL, owner, provider_id FROM deliveries WHERE reply_id = \(replyId)",
                        logger: TestEnvironment.logger)
                    for try await found in rows.decode((String, Int, Bool, String?, String?).self) {
                        return Row(status: found.0, attempts: found.1, inDoubt: found.2, owner: found.3, providerId: found.4)
                    }
                    return nil
                }
            }
        }
    }

    func claim(
        _ store: any OutboundStore, _ replyId: String, owner: String = "a", lease: Int = 30_000, optOut: (agent: String, customer: String)? = nil,
        targetKnown: Bool = true, textHash: String = "h"
    ) async throws -> SendingClaim {
        try await store.claimForSending(
            replyId: replyId, conversationId: "conv-1", channel: .sms, textHash: textHash, owner: owner, leaseMilliseconds: lease, optOut: optOut,
            targetKnown: targetKnown)
    }

    @Test("a new reply's row is created with its send recorded; a second owner waits; a sent one is finished", arguments: Kind.allCases)
    func newRow(kind: Kind) async throws {
        try await withStore(kind) { store, row in
            let first = try await claim(store, "r1")
            #expect(first == SendingClaim(claim: .claimed(inDoubtSince: nil), sendRecorded: true, optedOut: false))
            #expect(try await row("r1") == Row(status: "pending", attempts: 1, inDoubt: true, owner: "a"))
            // Another owner while the lease is live: held elsewhere, nothing changed.
            #expect(try await claim(store, "r1", owner: "b").claim == .heldElsewhere)
            #expect(try await !store.markSending(replyId: "r1", owner: "b", leaseMilliseconds: 30_000))
            // The same owner again (a redelivery in this process): taken over, the send in doubt reported.
            let again = try await claim(store, "r1")
            guard case .claimed(let since) = again.claim else {
                Issue.record("expected a claim, got \(again.claim)")
                return
            }
            #expect(since != nil && !again.sendRecorded)
            try await store.markDelivered(replyId: "r1", providerId: "SM1")
            #expect(try await row("r1") == Row(status: "sent", attempts: 1, inDoubt: false, owner: nil, providerId: "SM1"))
            #expect(try await claim(store, "r1", owner: "b").claim == .finished(.sent))
            #expect(try await store.isProviderIdRecorded("SM1"))
            #expect(try await !store.isProviderIdRecorded("SM2"))
        }
    }

    @Test("an expired lease is taken over without a send recorded; the new owner records it; the old one may not", arguments: Kind.allCases)
    func expiredLease(kind: Kind) async throws {
        try await withStore(kind) { store, row in
            _ = try await claim(store, "r7", lease: 0)
            let taken = try await claim(store, "r7", owner: "b")
            guard case .claimed(let since) = taken.claim else {
                Issue.record("expected a takeover, got \(taken.claim)")
                return
            }
            #expect(since != nil && !taken.sendRecorded)
            #expect(try await !store.markSending(replyId: "r7", owner: "a", leaseMilliseconds: 30_000))
            // The new owner asks Twilio, finds nothing, clears the doubt and records its own send.
            try await store.clearDoubt(replyId: "r7", owner: "b")
            #expect(try await row("r7") == Row(status: "pending", attempts: 1, inDoubt: false, owner: "b"))
            #expect(try await store.markSending(replyId: "r7", owner: "b", leaseMilliseconds: 30_000))
            #expect(try await row("r7") == Row(status: "pending", attempts: 2, inDoubt: true, owner: "b"))
            // A failure is final: the row is finished for every owner.
            try await store.markDeliveryFailed(replyId: "r7", error: "refused")
            #expect(try await row("r7") == Row(status: "failed", attempts: 3, inDoubt: true, owner: nil))
            #expect(try await claim(store, "r7", owner: "c").claim == .finished(.failed))
            #expect(try await !store.markSending(replyId: "r7", owner: "b", leaseMilliseconds: 30_000))
        }
    }

    @Test("an opted-out customer's reply is claimed without a send recorded; opting back in clears it", arguments: Kind.allCases)
    func optedOut(kind: Kind) async throws {
        try await withStore(kind) { store, row in
            try await store.setOptedOut(true, agent: "+1555", customer: "+1666")
            #expect(try await store.isOptedOut(agent: "+1555", customer: "+1666"))
            let claimed = try await claim(store, "r2", optOut: (agent: "+1555", customer: "+1666"))
            #expect(claimed.optedOut && !claimed.sendRecorded)
            #expect(try await row("r2") == Row(status: "pending", attempts: 0, inDoubt: false, owner: "a"))
            // Another sender of the same customer is not opted out; no pair is never opted out.
            #expect(try await claim(store, "r3", optOut: (agent: "+1777", customer: "+1666")).optedOut == false)
            #expect(try await claim(store, "r3b", optOut: nil).optedOut == false)
            try await store.setOptedOut(false, agent: "+1555", customer: "+1666")
            #expect(try await !store.isOptedOut(agent: "+1555", customer: "+1666"))
        }
    }

    @Test("the conversation's participants come with the claim once reconciled", arguments: Kind.allCases)
    func participants(kind: Kind) async throws {
        try await withStore(kind) { store, row in
            // Participants still to reconcile (calls to Twilio before the send, which may outlast the
            // lease): the send is not recorded with the claim, the caller records it after.
            let unknown = try await claim(store, "r4", targetKnown: false)
            #expect(unknown.participants == nil && !unknown.sendRecorded)
            #expect(try await row("r4") == Row(status: "pending", attempts: 0, inDoubt: false, owner: "a"))
            try await store.upsertConversation(
                ConversationRecord(id: "conv-1", channel: .sms, customerParticipantId: "PC1", agentParticipantId: "PA1"))
            #expect(try await claim(store, "r5", targetKnown: false).participants == nil)
            try await store.upsertConversation(ConversationRecord(id: "conv-1", channel: .sms, metadata: ["participants_reconciled": "1"]))
            let claimed = try await claim(store, "r6", targetKnown: false)
            #expect(claimed.participants?.agentId == "PA1" && claimed.participants?.customerId == "PC1")
            #expect(claimed.sendRecorded)
        }
    }

    @Test(
        "claims issued at the same time each get their own answer; of two owners claiming one reply at once exactly one wins",
        arguments: Kind.allCases)
    func concurrentClaims(kind: Kind) async throws {
        try await withStore(kind) { store, row in
            try await store.setOptedOut(true, agent: "+1555", customer: "+1666")
            _ = try await claim(store, "stored", owner: "c")
            // 200 replies, each claimed at once by owners "a" and "b" (far more callers than one
            // statement's lanes: most share a statement), every fifth to an opted-out customer, and
            // the reply stored before, claimed by "a" while "c" holds it.
            let answers = try await withThrowingTaskGroup(of: (String, String, SendingClaim).self) { group in
                for index in 0..<200 {
                    for owner in ["a", "b"] {
                        group.addTask {
                            let optOut = index.isMultiple(of: 5) ? (agent: "+1555", customer: "+1666") : (agent: "+1555", customer: "+1777")
                            return ("r\(index)", owner, try await claim(store, "r\(index)", owner: owner, optOut: optOut))
                        }
                    }
                }
                group.addTask { ("stored", "a", try await claim(store, "stored")) }
                return try await group.reduce(into: [(String, String, SendingClaim)]()) { $0.append($1) }
            }
            for index in 0..<200 {
                let copies = answers.filter { $0.0 == "r\(index)" }
                let winners = copies.filter { $0.2.claim == .claimed(inDoubtSince: nil) }
                try #require(winners.count == 1, "reply r\(index): \(copies.map { ($0.1, $0.2.claim) })")
                #expect(copies.filter { $0.2.claim == .heldElsewhere }.count == 1)
                let optedOut = index.isMultiple(of: 5)
                #expect(copies.allSatisfy { $0.2.optedOut == optedOut })
                #expect(winners[0].2.sendRecorded == !optedOut)
                #expect(
                    try await row("r\(index)") == Row(status: "pending", attempts: optedOut ? 0 : 1, inDoubt: !optedOut, owner: winners[0].1))
            }
            #expect(answers.filter { $0.0 == "stored" }.map(\.2.claim) == [.heldElsewhere])
            #expect(try await row("stored")?.owner == "c")
        }
    }

    @Test("claims in one statement: each request read and inserted as alone; a reply requested twice is inserted for its first copy only")
    func claimsInOneStatement() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            try await store.setOptedOut(true, agent: "+1555", customer: "+1666")
            try await store.upsertConversation(
                ConversationRecord(
                    id: "reconciled", channel: .sms, customerParticipantId: "PC1", agentParticipantId: "PA1",
                    metadata: ["participants_reconciled": "1"]))
            _ = try await store.claimForSending(
                replyId: "stored", conversationId: "conv-1", channel: .sms, textHash: "h", owner: "c", leaseMilliseconds: 30_000, optOut: nil,
                targetKnown: true)
            func request(_ replyId: String, owner: String = "a", conversation: String = "conv-1", optOut: (String, String)? = nil, targetKnown: Bool)
                -> ClaimRequest
            {
                ClaimRequest(
                    replyId: replyId, conversationId: conversation, channel: .whatsapp, textHash: "h-\(replyId)", owner: owner,
                    leaseMilliseconds: 30_000, optOut: optOut.map { (agent: $0.0, customer: $0.1) }, targetKnown: targetKnown)
            }
            let answers = try await PostgresStore.claimRows(
                [
                    request("known", targetKnown: true),
                    request("opted", optOut: ("+1555", "+1666"), targetKnown: true),
                    request("unknown", targetKnown: false),
                    request("parts", conversation: "reconciled", optOut: ("+1555", "+1777"), targetKnown: false),
                    request("stored", targetKnown: true),
                    request("twice", owner: "b", targetKnown: true),
                    request("twice", owner: "a", targetKnown: true),
                ], statements: store.statements)
            #expect(
                answers == [
                    ClaimedRow(inserted: true, optedOut: false, sendRecorded: true),
                    ClaimedRow(inserted: true, optedOut: true, sendRecorded: false),
                    ClaimedRow(inserted: true, optedOut: false, sendRecorded: false),
                    ClaimedRow(inserted: true, optedOut: false, sendRecorded: true, participants: ParticipantIds(agentId: "PA1", customerId: "PC1")),
                    ClaimedRow(inserted: false, optedOut: false, sendRecorded: true),
                    ClaimedRow(inserted: true, optedOut: false, sendRecorded: true),
                    ClaimedRow(inserted: false, optedOut: false, sendRecorded: true),
                ])
            var rows: [String: (String, String, String, Int, Bool, Bool)] = [:]
            let stored = try await client.query(
                """
                SELECT reply_id, channel, text_hash, owner, attempts, in_doubt_since IS NOT NULL,
                    lease_until BETWEEN now() + interval '29 seconds' AND now() + interval '31 seconds'
                FROM deliveries
                """, logger: TestEnvironment.logger)
            for try await found in stored.decode((String, String, String, String, Int, Bool, Bool).self) {
                rows[found.0] = (found.1, found.2, found.3, found.4, found.5, found.6)
            }
            #expect(rows.count == 6)
            for (replyId, recorded) in [("known", true), ("opted", false), ("unknown", false), ("parts", true), ("twice", true)] {
                let found = try #require(rows[replyId])
                #expect(found.0 == "whatsapp" && found.1 == "h-\(replyId)" && found.5, "\(replyId): \(found)")
                #expect(found.2 == (replyId == "twice" ? "b" : "a") && found.3 == (recorded ? 1 : 0) && found.4 == recorded, "\(replyId): \(found)")
            }
            #expect(rows["stored"]?.2 == "c")
            // The later copy of a reply goes on as a reply whose row exists: held by the first copy's owner.
            let later = try await store.claimForSending(
                replyId: "twice", conversationId: "conv-1", channel: .whatsapp, textHash: "h-twice", owner: "a", leaseMilliseconds: 30_000,
                optOut: nil, targetKnown: true)
            #expect(later.claim == .heldElsewhere)
        }
    }

    @Test("other sent replies with the same text are counted since a time, this reply excluded", arguments: Kind.allCases)
    func countSentLike(kind: Kind) async throws {
        try await withStore(kind) { store, _ in
            let before = Date().addingTimeInterval(-60)
            for id in ["s1", "s2", "s3"] {
                _ = try await claim(store, id, textHash: id == "s3" ? "other" : "same")
            }
            try await store.markDelivered(replyId: "s1", providerId: "SMa")
            try await store.markDelivered(replyId: "s3", providerId: "SMc")
            // s2 is not sent, s3 has another text, s1 is counted unless it is the one asking.
            #expect(try await store.countSentLike(conversationId: "conv-1", textHash: "same", since: before, excluding: "s2") == 1)
            #expect(try await store.countSentLike(conversationId: "conv-1", textHash: "same", since: before, excluding: "s1") == 0)
            #expect(try await store.countSentLike(conversationId: "conv-2", textHash: "same", since: before, excluding: "s2") == 0)
            #expect(
                try await store.countSentLike(conversationId: "conv-1", textHash: "same", since: Date().addingTimeInterval(60), excluding: "s2") == 0)
        }
    }

    @Test("when a customer last wrote on a channel, from the history (inbound only)", arguments: Kind.allCases)
    func lastInbound(kind: Kind) async throws {
        try await withStore(kind) { store, _ in
            #expect(try await store.lastInboundMessageAt(customerAddress: "whatsapp:+1666", channel: .whatsapp) == nil)
            let written = Date(timeIntervalSince1970: 1_800_000_000)
            for (id, direction, author, offset) in [
                ("m1", MessageRecord.Direction.inbound, "whatsapp:+1666", 0.0), ("m2", .inbound, "whatsapp:+1666", 60),
                ("m3", .outbound, "whatsapp:+1666", 120), ("m4", .inbound, "whatsapp:+1777", 180),
            ] {
                _ = try await store.appendMessage(
                    MessageRecord(
                        id: id, conversationId: "wa", channel: .whatsapp, direction: direction, authorAddress: author, body: "hi",
                        createdAt: written.addingTimeInterval(offset)))
            }
            #expect(try await store.lastInboundMessageAt(customerAddress: "whatsapp:+1666", channel: .whatsapp) == written.addingTimeInterval(60))
            #expect(try await store.lastInboundMessageAt(customerAddress: "whatsapp:+1666", channel: .sms) == nil)
        }
    }
}
