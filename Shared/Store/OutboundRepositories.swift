import AgentConnectCore
import Foundation

/// A reply's delivery row claimed for a send, with what the send needs, in one round trip.
package protocol SendingClaimStore: DeliveryStore {
    /// Claims the row of `replyId` for `owner`, reading the opt-out of `optOut` (sender, customer) and
    /// the conversation's reconciled participants. A new row is created with this owner's lease, and
    /// with its send recorded (in doubt from now, one attempt counted) only when the customer did not
    /// opt out and the target is known (`targetKnown`, or the participants reconciled). An existing
    /// row is taken over as ``DeliveryStore/claimDelivery(replyId:conversationId:channel:textHash:owner:leaseMilliseconds:)``
    /// does, without recording a send. ``PostgresStore`` does it in one statement on the common path.
    /// Called within a `withDeadline`: every wait in it must honour ``TaskDeadline`` (a
    /// `StatementBatcher`'s does; wrap any other in `withinDeadline`).
    func claimForSending(
        replyId: String, conversationId: String, channel: ChannelKind, textHash: String, owner: String, leaseMilliseconds: Int,
        optOut: (agent: String, customer: String)?, targetKnown: Bool
    ) async throws -> SendingClaim
}

/// What Twilio's messaging rules need before a send: who opted out (STOP) of which sender, and when
/// a customer last wrote (WhatsApp's 24-hour window).
package protocol MessagingRulesStore: Sendable {
    /// Whether `customer` opted out (STOP) of messages from `agent`.
    func isOptedOut(agent: String, customer: String) async throws -> Bool
    /// Records that `customer` opted out of (`true`, STOP) or back in to (`false`, START) messages from `agent`.
    func setOptedOut(_ optedOut: Bool, agent: String, customer: String) async throws
    /// When `customerAddress` last wrote on `channel` (any conversation), from the history.
    func lastInboundMessageAt(customerAddress: String, channel: ChannelKind) async throws -> Date?
}

/// Everything the outbound service keeps in the store: ``PostgresStore`` in the service,
/// ``InMemoryStore`` in tests.
package typealias OutboundStore = ConversationStore & MessageStore & SendingClaimStore & MessagingRulesStore

extension PostgresStore: SendingClaimStore, MessagingRulesStore {}
