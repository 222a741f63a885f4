import AgentConnectCore
import Foundation
import Logging
import Metrics
import Store
import TwilioKit

/// Where a reply goes and how it is sent: the Messages API (classic) or an Orchestrator
/// communication, with its media and template.
extension ReplyDeliverer {
    /// A classic reply's target (its addresses, or the channel's default sender), known without a call
    /// to Twilio; nil for an Orchestrator reply or one without addresses.
    func classicTarget(_ event: BusEvent, reply: ReplyReady) -> Target? {
        guard reply.mode == .classic, let to = reply.customerAddress,
            let from = reply.agentAddress ?? configuration.senders.defaultSender(for: event.channel)
        else { return nil }
        return .classic(from: from, to: to)
    }

    /// Where the reply goes; `known`: the conversation's reconciled participants, read with the claim.
    func resolveTarget(_ event: BusEvent, reply: ReplyReady, known: ParticipantIds?) async throws -> Target {
        if reply.mode == .classic {
            guard let target = classicTarget(event, reply: reply) else { throw ReconciliationError("classic reply without addresses") }
            return target
        }
        guard let agentAddress = reply.agentAddress ?? configuration.senders.defaultSender(for: event.channel) else {
            throw ReconciliationError("no agent address for \(event.channel.rawValue)")
        }
        let participants = try await reconciler.resolve(
            conversationId: event.conversationId, channel: event.channel, agentAddress: agentAddress,
            customerAddress: reply.customerAddress, authorParticipantId: reply.customerParticipantId,
            known: known)
        let channelId = reply.channelId
        if event.channel == .chat && channelId == nil { throw ReconciliationError("chat reply without channelId") }
        return .orchestrated(participants: participants, agentAddress: agentAddress, channelId: channelId)
    }

    func send(_ event: BusEvent, reply: ReplyReady, target: Target, replyId: String) async throws -> String? {
        let text = reply.text
        switch target {
        case .classic(let from, let to):
            let extras = MessageExtras(reply: reply, statusCallback: configuration.statusCallbackURL)
            return try await api.sendClassicMessage(from: from, to: to, body: text, extras: extras, idempotencyKey: replyId)
        case .orchestrated(let participants, _, let channelId):
            return try await api.sendMessage(
                conversationId: event.conversationId, channel: event.channel, from: participants.agentId, to: participants.customerId,
                text: text, channelId: channelId, extras: MessageExtras(reply: reply), idempotencyKey: replyId)
        }
    }

    /// The Twilio resource an earlier, unanswered send of this reply created, if there is one.
    ///
    /// Twilio keeps no id of ours on a message, so the messages with the same sender, recipient and
    /// text created since the first attempt are counted against the *other* replies of this
    /// conversation with the same text that were sent in that time: one more in Twilio than we
    /// account for is ours. (Classic sends also skip message SIDs another reply recorded.)
    func findSent(_ event: BusEvent, reply: ReplyReady, target: Target, since: Date) async throws -> String? {
        let text = reply.text
        let earliest = since.addingTimeInterval(-Self.reconcileSkew)
        var candidates: [String] = []
        switch target {
        case .classic(let from, let to):
            for message in try await api.messages(from: from, to: to)
            where message.body == text && (message.dateCreated ?? .distantFuture) >= earliest.addingTimeInterval(-1) {
                let taken = try await bounded("looking up a provider id") { try await store.isProviderIdRecorded(message.sid) }
                if !taken { candidates.append(message.sid) }
            }
            // Recorded SIDs are excluded one by one above; nothing more to count against.
            return candidates.first
        case .orchestrated(let participants, let agentAddress, _):
            for communication in try await api.communications(conversationId: event.conversationId)
            where communication.text == text && (communication.createdAt ?? .distantFuture) >= earliest
                && (communication.authorParticipantId == participants.agentId || communication.authorAddress == agentAddress)
            {
                candidates.append(communication.id)
            }
        }
        guard !candidates.isEmpty else { return nil }
        let others = try await bounded("counting replies with the same text") {
            try await store.countSentLike(
                conversationId: event.conversationId, textHash: Self.textHash(text), since: earliest, excluding: event.id)
        }
        return candidates.count > others ? candidates.last : nil
    }
}

extension MessageExtras {
    /// What a reply carries besides its text: its media, its Content template (an empty `contentSid`
    /// is none) and the template's variables.
    init(reply: ReplyReady, statusCallback: String? = nil) {
        self.init(
            media: reply.media ?? [], contentSid: reply.contentSid.flatMap { $0.isEmpty ? nil : $0 }, contentVariables: reply.contentVariables ?? [:],
            statusCallback: statusCallback)
    }
}
