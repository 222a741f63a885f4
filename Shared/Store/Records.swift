import AgentConnectCore
import Foundation

/// What the services remember about a conversation.
package struct ConversationRecord: Sendable, Equatable {
    package var id: String
    package var channel: ChannelKind
    package var status: String
    package var direction: String
    package var customerAddress: String?
    package var agentAddress: String?
    package var customerParticipantId: String?
    package var agentParticipantId: String?
    package var profileId: String?
    package var metadata: [String: String]

    package init(
        id: String, channel: ChannelKind, status: String = "ACTIVE", direction: String = "inbound", customerAddress: String? = nil,
        agentAddress: String? = nil, customerParticipantId: String? = nil, agentParticipantId: String? = nil,
        profileId: String? = nil, metadata: [String: String] = [:]
    ) {
        self.id = id
        self.channel = channel
        self.status = status
        self.direction = direction
        self.customerAddress = customerAddress
        self.agentAddress = agentAddress
        self.customerParticipantId = customerParticipantId
        self.agentParticipantId = agentParticipantId
        self.profileId = profileId
        self.metadata = metadata
    }
}

/// One message of the communication history.
package struct MessageRecord: Sendable, Equatable {
    package enum Direction: String, Sendable { case inbound, outbound }

    /// The event or reply id: appending the same id twice stores it once.
    package var id: String
    package var conversationId: String
    package var channel: ChannelKind
    package var direction: Direction
    package var authorAddress: String?
    package var body: String
    package var createdAt: Date

    package init(
        id: String, conversationId: String, channel: ChannelKind, direction: Direction, authorAddress: String?, body: String,
        createdAt: Date = Date()
    ) {
        self.id = id
        self.conversationId = conversationId
        self.channel = channel
        self.direction = direction
        self.authorAddress = authorAddress
        self.body = body
        self.createdAt = createdAt
    }
}

/// Where a reply's delivery stands.
package enum DeliveryStatus: String, Sendable, Equatable {
    case pending, sent, failed
}

/// What claiming a reply's delivery row found.
package enum DeliveryClaim: Sendable, Equatable {
    /// This owner holds the lease and may send. `inDoubtSince`: an earlier send went out at or after
    /// this time and its outcome is unknown, so Twilio must be asked before anything is sent again.
    case claimed(inDoubtSince: Date?)
    /// The reply was already sent, or given up on.
    case finished(DeliveryStatus)
    /// Another live owner is sending it.
    case heldElsewhere
}
