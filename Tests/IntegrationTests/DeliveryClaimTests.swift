import AgentConnectCore
import Foundation
import PostgresNIO
import Store
import Testing

@Suite("Delivery claim for a send, in one statement")
struct DeliveryClaimTests {
    func row(_ client: PostgresClient, _ replyId: String) async throws -> (attempts: Int, inDoubt: Bool, owner: String?) {
        let rows = try await client.query(
            "SELECT attempts, in_doubt_since IS NOT NULL, owner FROM deliveries WHERE reply_id = \(replyId)", logger: TestEnvironment.logger)
        for try await found in rows.decode((Int, Bool, String?).self) { return (found.0, found.1, found.2) }
        return (-1, false, nil)
    }

    func claim(
        _ store: PostgresStore, _ replyId: String, owner: String = "a", optOut: (agent: String, customer: String)? = nil, targetKnown: Bool = true
    ) async throws -> SendingClaim {
        try await store.claimForSending(
            replyId: replyId, conversationId: "conv-1", channel: .sms, textHash: "h", owner: owner, leaseMilliseconds: 30_000, optOut: optOut,
            targetKnown: targetKnown)
    }

    @Test("a new reply's row is created with its send recorded; a second owner waits; a sent one is finished")
    func newRow() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            let first = try await claim(store, "r1")
            #expect(first == SendingClaim(claim: .claimed(inDoubtSince: nil), sendRecorded: true, optedOut: false))
            let recorded = try await row(client, "r1")
            #expect(recorded.attempts == 1 && recorded.inDoubt && recorded.owner == "a")
            // Another owner while the lease is live: held elsewhere, nothing changed.
            #expect(try await claim(store, "r1", owner: "b").claim == .heldElsewhere)
            // The same owner again (a redelivery in this process): taken over, the send in doubt reported.
            let again = try await claim(store, "r1")
            guard case .claimed(let since) = again.claim else {
                Issue.record("expected a claim, got \(again.claim)")
                return
            }
            #expect(since != nil && !again.sendRecorded)
            try await store.markDelivered(replyId: "r1", providerId: "SM1")
            #expect(try await claim(store, "r1", owner: "b").claim == .finished(.sent))
        }
    }

    @Test("an opted-out customer's reply is claimed without a send recorded")
    func optedOut() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            try await store.setOptedOut(true, agent: "+1555", customer: "+1666")
            let claimed = try await claim(store, "r2", optOut: (agent: "+1555", customer: "+1666"))
            #expect(claimed.optedOut && !claimed.sendRecorded)
            let recorded = try await row(client, "r2")
            #expect(recorded.attempts == 0 && !recorded.inDoubt)
            // Another sender of the same customer is not opted out.
            #expect(try await claim(store, "r3", optOut: (agent: "+1777", customer: "+1666")).optedOut == false)
        }
    }

    @Test("the conversation's participants come with the claim once reconciled")
    func participants() async throws {
        let database = try await TestDatabase.migrated()
        try await database.withClient { client in
            let store = PostgresStore(client: client, logger: TestEnvironment.logger)
            // Participants still to reconcile (calls to Twilio before the send, which may outlast the
            // lease): the send is not recorded with the claim, the caller records it after.
            let unknown = try await claim(store, "r4", targetKnown: false)
            #expect(unknown.participants == nil && !unknown.sendRecorded)
            let notRecorded = try await row(client, "r4")
            #expect(notRecorded.attempts == 0 && !notRecorded.inDoubt && notRecorded.owner == "a")
            try await store.upsertConversation(
                ConversationRecord(id: "conv-1", channel: .sms, customerParticipantId: "PC1", agentParticipantId: "PA1"))
            #expect(try await claim(store, "r5", targetKnown: false).participants == nil)
            try await store.upsertConversation(ConversationRecord(id: "conv-1", channel: .sms, metadata: ["participants_reconciled": "1"]))
            let claimed = try await claim(store, "r6", targetKnown: false)
            #expect(claimed.participants?.agentId == "PA1" && claimed.participants?.customerId == "PC1")
            #expect(claimed.sendRecorded)
        }
    }
}
