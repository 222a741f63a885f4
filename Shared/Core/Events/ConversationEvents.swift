import Foundation

/// `conversation.started`: Conversation Orchestrator's `PARTICIPANT_ADDED`.
package struct ConversationStarted: BusEventPayload, Equatable {
    package static let type = EventType.conversationStarted

    /// The participant added.
    package var participantId: String?
    /// Its type (`CUSTOMER`, `AI_AGENT`, …).
    package var participantType: String?
    /// Its first address.
    package var address: String?
    /// Its profile.
    package var profileId: String?

    package init(participantId: String? = nil, participantType: String? = nil, address: String? = nil, profileId: String? = nil) {
        self.participantId = participantId
        self.participantType = participantType
        self.address = address
        self.profileId = profileId
    }

    package func busPayload() -> JSONValue {
        var writer = PayloadWriter(capacity: 4)
        writer.set("participantId", participantId)
        writer.set("participantType", participantType)
        writer.set("address", address)
        writer.set("profileId", profileId)
        return writer.json
    }

    package init(busPayload: JSONValue) throws {
        let reader = try PayloadReader(busPayload)
        participantId = try reader.optionalScalar("participantId")
        participantType = try reader.optionalScalar("participantType")
        address = try reader.optionalScalar("address")
        profileId = try reader.optionalScalar("profileId")
    }
}

/// `conversation.inactive`: Conversation Orchestrator's conversation went `INACTIVE`. The webhook names
/// no channel: the envelope says `sms` and `channelKnown` is false (the worker reads the record's).
package struct ConversationInactive: BusEventPayload, Equatable {
    package static let type = EventType.conversationInactive

    /// The conversation's status, `INACTIVE`.
    package var status: String
    /// Who said so: `orchestrator`.
    package var reason: ConversationEnded.Reason
    /// False: the envelope's channel is a placeholder.
    package var channelKnown: Bool?
    /// The conversation's metadata as Orchestrator sent it.
    package var metadata: JSONValue?

    package init(
        status: String = "INACTIVE", reason: ConversationEnded.Reason = .orchestrator, channelKnown: Bool? = false, metadata: JSONValue? = nil
    ) {
        self.status = status
        self.reason = reason
        self.channelKnown = channelKnown
        self.metadata = metadata
    }

    package func busPayload() -> JSONValue {
        var writer = PayloadWriter(capacity: 4)
        writer.set("status", status)
        writer.set("reason", reason)
        writer.set("channelKnown", channelKnown)
        writer.set("metadata", metadata)
        return writer.json
    }

    package init(busPayload: JSONValue) throws {
        let reader = try PayloadReader(busPayload)
        status = try reader.scalar("status")
        reason = try reader.rawValue("reason")
        channelKnown = try reader.optionalScalar("channelKnown")
        metadata = reader.optionalValue("metadata")
    }
}

/// `conversation.ended`: a conversation ended (Orchestrator `CLOSED`, a call's hang-up, a handoff, its
/// relay lost). Built only by ``event(conversationId:channel:reason:callSid:relayInstance:handoffData:status:metadata:id:traceparent:)``
/// and published with ``dedupKey(conversationId:)`` (except Orchestrator's, deduplicated on its
/// webhook), so a conversation ends once whoever notices first.
package struct ConversationEnded: BusEventPayload, Equatable {
    package static let type = EventType.conversationEnded

    /// Why a conversation ended.
    package enum Reason: String, Codable, Sendable, CaseIterable {
        /// The caller hung up (the socket closed, or the call's status callback said so).
        case hangup
        /// The agent handed the conversation to a person.
        case handoff
        /// The relay holding the call stopped; a peer ended its calls.
        case relayLost = "relay_lost"
        /// Conversation Orchestrator closed it.
        case orchestrator
    }

    /// Why it ended.
    package var reason: Reason
    /// Voice: the call.
    package var callSid: String?
    /// `relay_lost`: the relay that stopped.
    package var relayInstance: String?
    /// A voice handoff's data, from the ConversationRelay callback.
    package var handoffData: String?
    /// Orchestrator: the conversation's status, `CLOSED`.
    package var status: String?
    /// False when the envelope's channel is a placeholder (Orchestrator names none).
    package var channelKnown: Bool?
    /// Orchestrator: the conversation's metadata.
    package var metadata: JSONValue?

    package init(
        reason: Reason, callSid: String? = nil, relayInstance: String? = nil, handoffData: String? = nil, status: String? = nil,
        channelKnown: Bool? = nil, metadata: JSONValue? = nil
    ) {
        self.reason = reason
        self.callSid = callSid
        self.relayInstance = relayInstance
        self.handoffData = handoffData
        self.status = status
        self.channelKnown = channelKnown
        self.metadata = metadata
    }

    package func busPayload() -> JSONValue {
        var writer = PayloadWriter(capacity: 4)
        writer.set("reason", reason)
        writer.set("callSid", callSid)
        writer.set("relayInstance", relayInstance)
        writer.set("handoffData", handoffData)
        writer.set("status", status)
        writer.set("channelKnown", channelKnown)
        writer.set("metadata", metadata)
        return writer.json
    }

    package init(busPayload: JSONValue) throws {
        let reader = try PayloadReader(busPayload)
        reason = try reader.rawValue("reason")
        callSid = try reader.optionalScalar("callSid")
        relayInstance = try reader.optionalScalar("relayInstance")
        handoffData = try reader.optionalScalar("handoffData")
        status = try reader.optionalScalar("status")
        channelKnown = try reader.optionalScalar("channelKnown")
        metadata = reader.optionalValue("metadata")
    }

    /// How long a conversation's end is remembered for deduplication.
    package static let dedupTTLSeconds = 86_400

    /// The dedup key that makes a conversation end once, whoever notices first (`tac:dedup:ended:<id>`).
    package static func dedupKey(conversationId: String) -> String {
        RedisKeys.endedDedup(conversationId)
    }

    /// The `conversation.ended` envelope: publish it on the conversation's inbound partition with
    /// ``dedupKey(conversationId:)`` and ``dedupTTLSeconds``.
    /// - Parameter channel: the conversation's channel; `nil` when the producer does not know it
    ///   (the envelope then says `sms` and the payload `channelKnown: false`).
    package static func event(
        conversationId: String, channel: ChannelKind?, reason: Reason, callSid: String? = nil, relayInstance: String? = nil,
        handoffData: String? = nil, status: String? = nil, metadata: JSONValue? = nil, id: String = BusEvent.newID(),
        traceparent: String = Traceparent.random().description
    ) throws -> BusEvent {
        let ended = ConversationEnded(
            reason: reason, callSid: callSid, relayInstance: relayInstance, handoffData: handoffData, status: status,
            channelKnown: channel == nil ? false : nil, metadata: metadata)
        return try BusEvent(ended, id: id, conversationId: conversationId, channel: channel ?? .sms, traceparent: traceparent)
    }
}
