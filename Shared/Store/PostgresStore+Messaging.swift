import AgentConnectCore
import Foundation
import PostgresNIO

/// What recording a Twilio delivery status found.
public enum DeliveryStatusRecording: Sendable, Equatable {
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
    public func recordDeliveryStatus(providerId: String, status: String, errorCode: String?) async throws -> DeliveryStatusRecording {
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
    public func deliveryStatusReported(replyId: String) async throws -> (status: String?, errorCode: String?) {
        let rows = try await client.query(
            "SELECT delivery_status, delivery_error_code FROM deliveries WHERE reply_id = \(replyId)", logger: logger)
        for try await row in rows.decode((String?, String?).self) { return (row.0, row.1) }
        return (nil, nil)
    }

    /// Whether `customer` opted out (STOP) of messages from `agent`.
    public func isOptedOut(agent: String, customer: String) async throws -> Bool {
        let rows = try await client.query(
            "SELECT 1 FROM opt_outs WHERE agent_address = \(agent) AND customer_address = \(customer)", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Records that `customer` opted out of (`true`, STOP) or back in to (`false`, START) messages from `agent`.
    public func setOptedOut(_ optedOut: Bool, agent: String, customer: String) async throws {
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
    public func lastInboundMessageAt(customerAddress: String, channel: ChannelKind) async throws -> Date? {
        let rows = try await client.query(
            """
            SELECT max(created_at) FROM messages
            WHERE author_address = \(customerAddress) AND channel = \(channel.rawValue) AND direction = 'inbound'
            """, logger: logger)
        for try await date in rows.decode(Date?.self) { return date }
        return nil
    }
}
