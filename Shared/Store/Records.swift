import AgentConnectCore
import Foundation

/// What the services remember about a conversation.
public struct ConversationRecord: Sendable, Equatable {
    public var id: String
    public var channel: ChannelKind
    public var status: String
    public var direction: String
    public var customerAddress: String?
    public var agentAddress: String?
    public var customerParticipantId: String?
    public var agentParticipantId: String?
    public var profileId: String?
    public var metadata: [String: String]

    public init(
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
public struct MessageRecord: Sendable, Equatable {
    public enum Direction: String, Sendable { case inbound, outbound }

    /// The event or reply id: appending the same id twice stores it once.
    public var id: String
    public var conversationId: String
    public var channel: ChannelKind
    public var direction: Direction
    public var authorAddress: String?
    public var body: String
    public var createdAt: Date

    public init(
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
public enum DeliveryStatus: String, Sendable, Equatable {
    case pending, sent, failed
}

/// What claiming a reply's delivery row found.
public enum DeliveryClaim: Sendable, Equatable {
    /// This owner holds the lease and may send. `inDoubtSince`: an earlier send went out at or after
    /// this time and its outcome is unknown, so Twilio must be asked before anything is sent again.
    case claimed(inDoubtSince: Date?)
    /// The reply was already sent, or given up on.
    case finished(DeliveryStatus)
    /// Another live owner is sending it.
    case heldElsewhere
}
