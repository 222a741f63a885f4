import AgentConnectCore
import Foundation
import PostgresNIO

/// What recording a Twilio delivery status found.
package enum DeliveryStatusRecording: Sendable, Equatable {
    /// Recorded on the delivery row of this reply.
    case recorded(replyId: String)
    /// The row already holds a later status (callbacks can arrive out of order); nothing changed.
    case stale(replyId: String)
    /// No delivery row records this message SID (yet).
    case unknown
}

extension PostgresStore {
    /// How far along a message is, as Twilio's statuses go (`failed`/`undelivered` are final).
    static func statusRank(_ status: String) -> Int {
        switch status {
        case "queued", "accepted", "scheduled": 0
        case "sending": 1
        case "sent": 2
        case "delivered": 3
        case "read": 4
        default: 5
        }
    }

    /// Records a status callback on the delivery row whose provider id is `providerId` (the message
    /// SID), unless the row already holds a later status.
    package func recordDeliveryStatus(providerId: String, status: String, errorCode: String?) async throws -> DeliveryStatusRecording {
        let rank = Self.statusRank(status)
        let rows = try await client.query(
            """
            UPDATE deliveries SET delivery_status = \(status), delivery_error_code = \(errorCode), delivery_status_at = now()
            WHERE provider_id = \(providerId) AND (delivery_status IS NULL OR \(rank) >= CASE delivery_status
                WHEN 'queued' THEN 0 WHEN 'accepted' THEN 0 WHEN 'scheduled' THEN 0 WHEN 'sending' THEN 1 WHEN 'sent' THEN 2
                WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 5 END)
            RETURNING reply_id
            """, logger: logger)
        for try await replyId in rows.decode(String.self) { return .recorded(replyId: replyId) }
        let existing = try await client.query("SELECT reply_id FROM deliveries WHERE provider_id = \(providerId) LIMIT 1", logger: logger)
        for try await replyId in existing.decode(String.self) { return .stale(replyId: replyId) }
        return .unknown
    }

    /// The delivery status Twilio last reported for a reply, with its error code.
    package func deliveryStatusReported(replyId: String) async throws -> (status: String?, errorCode: String?) {
        let rows = try await client.query(
            "SELECT delivery_status, delivery_error_code FROM deliveries WHERE reply_id = \(replyId)", logger: logger)
        for try await row in rows.decode((String?, String?).self) { return (row.0, row.1) }
        return (nil, nil)
    }

    /// Whether `customer` opted out (STOP) of messages from `agent`.
    package func isOptedOut(agent: String, customer: String) async throws -> Bool {
        let rows = try await client.query(
            "SELECT 1 FROM opt_outs WHERE agent_address = \(agent) AND customer_address = \(customer)", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Records that `customer` opted out of (`true`, STOP) or back in to (`false`, START) messages from `agent`.
    package func setOptedOut(_ optedOut: Bool, agent: String, customer: String) async throws {
        if optedOut {
            try await client.query(
                """
                INSERT INTO opt_outs (agent_address, customer_address) VALUES (\(agent), \(customer))
                ON CONFLICT (agent_address, customer_address) DO NOTHING
                """, logger: logger)
        } else {
            try await client.query(
                "DELETE FROM opt_outs WHERE agent_address = \(agent) AND customer_address = \(customer)", logger: logger)
        }
    }

    /// When `customerAddress` last wrote on `channel` (any conversation), from the history.
    package func lastInboundMessageAt(customerAddress: String, channel: ChannelKind) async throws -> Date? {
        let rows = try await client.query(
            """
            SELECT max(created_at) FROM messages
            WHERE author_address = \(customerAddress) AND channel = \(channel.rawValue) AND direction = 'inbound'
            """, logger: logger)
        for try await date in rows.decode(Date?.self) { return date }
        return nil
    }
}

/// What ``PostgresStore/claimForSending(replyId:conversationId:channel:textHash:owner:leaseMilliseconds:optOut:targetKnown:)`` found, in one
/// round trip on the common path.
package struct SendingClaim: Sendable, Equatable {
    /// The claim, as ``DeliveryStore/claimDelivery(replyId:conversationId:channel:textHash:owner:leaseMilliseconds:)`` answers it.
    package var claim: DeliveryClaim
    /// True when the row was created by this claim with the send already recorded (in doubt from
    /// now, one attempt counted, as ``DeliveryStore/markSending(replyId:owner:leaseMilliseconds:)``
    /// does): the first send may go out without recording it again, provided no call to Twilio comes
    /// between (the target was known at the claim).
    package var sendRecorded: Bool
    /// Whether the customer opted out (STOP) of the sender.
    package var optedOut: Bool
    /// The conversation's agent and customer participant ids, when its participants were reconciled.
    package var participants: ParticipantIds?

    package init(claim: DeliveryClaim, sendRecorded: Bool, optedOut: Bool, participants: ParticipantIds? = nil) {
        self.claim = claim
        self.sendRecorded = sendRecorded
        self.optedOut = optedOut
        self.participants = participants
    }
}

extension PostgresStore {
    /// Claims a reply's delivery row for a send, reading what the send needs, in one statement on the
    /// common path (a new reply): the opt-out of `optOut` (sender, customer), the conversation's
    /// reconciled participants, and the row — created with this owner's lease. The send is recorded
    /// with it (in doubt from now, one attempt counted) only when nothing stands between this claim
    /// and the send: the customer did not opt out, and the target is known (`targetKnown`, a classic
    /// reply with its addresses, or the participants reconciled). Otherwise, as when a call to Twilio
    /// comes first (reconciling participants, which may outlast the lease), the caller records the send
    /// with ``markSending(replyId:owner:leaseMilliseconds:)``, which checks it still owns the row.
    /// Claims issued at the same time share that statement (``claimRows(_:statements:)``).
    ///
    /// A row that already exists (a redelivered reply) is taken over as
    /// ``claimDelivery(replyId:conversationId:channel:textHash:owner:leaseMilliseconds:)`` does:
    /// pending and free (no owner, this owner, or an expired lease); its send is then not recorded
    /// (`sendRecorded` false: call ``markSending(replyId:owner:leaseMilliseconds:)`` before sending,
    /// after reconciling a send in doubt).
    package func claimForSending(
        replyId: String, conversationId: String, channel: ChannelKind, textHash: String, owner: String, leaseMilliseconds: Int,
        optOut: (agent: String, customer: String)?, targetKnown: Bool = false
    ) async throws -> SendingClaim {
        let found = try await batchers.claimRows.run(
            ClaimRequest(
                replyId: replyId, conversationId: conversationId, channel: channel, textHash: textHash, owner: owner,
                leaseMilliseconds: leaseMilliseconds, optOut: optOut, targetKnown: targetKnown))
        if found.inserted {
            return SendingClaim(
                claim: .claimed(inDoubtSince: nil), sendRecorded: found.sendRecorded, optedOut: found.optedOut, participants: found.participants)
        }
        // A redelivered reply: plain statements, within the caller's deadline (see `withDeadline`).
        let taken = try await withinDeadline { () async throws -> Date?? in
            let rows = try await client.query(
                """
                UPDATE deliveries SET owner = \(owner), lease_until = now() + \(leaseMilliseconds) * interval '1 millisecond'
                WHERE reply_id = \(replyId) AND status = 'pending' AND (owner IS NULL OR owner = \(owner) OR lease_until < now())
                RETURNING in_doubt_since
                """, logger: logger)
            for try await inDoubtSince in rows.decode(Date?.self) { return .some(inDoubtSince) }
            return .none
        }
        if let inDoubtSince = taken {
            return SendingClaim(
                claim: .claimed(inDoubtSince: inDoubtSince), sendRecorded: false, optedOut: found.optedOut, participants: found.participants)
        }
        let status = try await withinDeadline { () async throws -> String? in
            let rows = try await client.query("SELECT status FROM deliveries WHERE reply_id = \(replyId)", logger: logger)
            for try await value in rows.decode(String.self) { return value }
            return nil
        }
        if let status = status.flatMap(DeliveryStatus.init(rawValue:)), status != .pending {
            return SendingClaim(claim: .finished(status), sendRecorded: false, optedOut: found.optedOut)
        }
        return SendingClaim(claim: .heldElsewhere, sendRecorded: false, optedOut: found.optedOut)
    }
}
