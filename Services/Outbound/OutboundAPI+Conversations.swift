import AgentConnectCore
import EventBus
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import ServiceSupport
import Store
import TwilioKit

/// `POST /v1/conversations`: starting a messaging conversation (the first message and its rules).
extension OutboundAPI {
    /// `{channel, to, from?, message, metadata?}` → `{conversationId}`.
    func startConversation(_ input: JSONValue, idempotencyKey: String) async throws -> JSONValue {
        guard let name = input["channel"]?.string?.lowercased(), let channel = ChannelKind(rawValue: name), channel.isMessaging else {
            throw Rejection(status: .badRequest, reason: "channel must be sms, whatsapp, rcs or chat")
        }
        guard let to = input["to"]?.string?.trimmingCharacters(in: .whitespaces), !to.isEmpty else {
            throw Rejection(status: .badRequest, reason: "to is required")
        }
        let extras = try Self.messageExtras(input)
        let message = input["message"]?.string ?? ""
        guard !message.allSatisfy(\.isWhitespace) || extras.contentSid != nil || !extras.media.isEmpty else {
            throw Rejection(status: .badRequest, reason: "message is required (or contentSid, or media)")
        }
        let from = try sender(input["from"]?.string, channel: channel)
        var metadata = try Self.metadata(input["metadata"])
        let channelId = input["channelId"]?.string ?? (channel == .chat ? configuration.chatChannelId : nil)
        if channel == .chat {
            guard let channelId else {
                throw Rejection(status: .badRequest, reason: "a chat conversation needs channelId (or TWILIO_CHAT_CHANNEL_ID)")
            }
            metadata["channel_id"] = channelId
        }
        try await checkMessagingRules(channel: channel, from: from, to: to, extras: extras)
        let replyId = "outbound:\(idempotencyKey)"
        if let configurationId = configuration.conversationConfigurationId {
            let (conversationId, created) = try await api.createConversation(
                configurationId: configurationId, channel: channel, customer: to, agent: from, metadata: metadata, channelId: channelId)
            do {
                let participants = try await api.participants(conversationId: conversationId)
                guard let customer = participants.first(where: { $0.type == "CUSTOMER" && $0.owns(to, on: channel) }),
                    let agent = participants.first(where: { $0.isAgent && $0.owns(from, on: channel) })
                else {
                    throw TwilioAPIError(status: 0, message: "participants not found after creating the conversation")
                }
                try await store.upsertConversation(
                    ConversationRecord(
                        id: conversationId, channel: channel, direction: "outbound", customerAddress: to, agentAddress: from,
                        customerParticipantId: customer.id, agentParticipantId: agent.id,
                        metadata: metadata.merging([ParticipantReconciler.reconciledKey: "1", "mode": ConversationMode.orchestrator.rawValue]) { $1 })
                )
                _ = try await api.sendMessage(
                    conversationId: conversationId, channel: channel, from: agent.id, to: customer.id, text: message,
                    channelId: channelId, extras: extras, idempotencyKey: replyId)
            } catch {
                if created { try? await api.setStatus(conversationId: conversationId, status: "CLOSED") }
                throw error
            }
            await record(message, replyId: replyId, conversationId: conversationId, channel: channel, from: from)
            count("conversation")
            return ["conversationId": .string(conversationId), "channel": .string(channel.rawValue), "direction": "outbound"]
        }
        let conversationId = classicConversationId(channel: channel, agent: from, customer: to)
        try await store.upsertConversation(
            ConversationRecord(
                id: conversationId, channel: channel, direction: "outbound", customerAddress: to, agentAddress: from,
                metadata: metadata.merging(["mode": ConversationMode.classic.rawValue]) { $1 }))
        var classicExtras = extras
        classicExtras.statusCallback = configuration.statusCallbackURL
        let sid = try await api.sendClassicMessage(from: from, to: to, body: message, extras: classicExtras, idempotencyKey: replyId)
        if let sid {
            // The first message's delivery row, so its status callbacks find it (as a reply's do).
            _ = try? await store.claimDelivery(
                replyId: replyId, conversationId: conversationId, channel: channel, textHash: ReplyDeliverer.textHash(message), owner: "outbound-api",
                leaseMilliseconds: 1000)
            try? await store.markDelivered(replyId: replyId, providerId: sid)
        }
        await record(message, replyId: replyId, conversationId: conversationId, channel: channel, from: from)
        count("conversation")
        return ["conversationId": .string(conversationId), "channel": .string(channel.rawValue), "direction": "outbound"]
    }

    /// `media` (URLs, at most 10), `contentSid` and `contentVariables` (an object of strings) of a start.
    static func messageExtras(_ input: JSONValue) throws -> MessageExtras {
        let extras = MessageExtras(json: input)
        guard extras.media.count <= MessageRules.maxMediaPerMessage else {
            throw Rejection(status: .badRequest, reason: "at most \(MessageRules.maxMediaPerMessage) media per message")
        }
        guard extras.media.allSatisfy({ $0.hasPrefix("https://") || $0.hasPrefix("http://") }) else {
            throw Rejection(status: .badRequest, reason: "media must be http(s) URLs")
        }
        if input["contentVariables"] != nil, input["contentVariables"] != .null, extras.contentSid == nil {
            throw Rejection(status: .badRequest, reason: "contentVariables need a contentSid (Twilio error 21654)")
        }
        return extras
    }

    /// Twilio's messaging rules, checked before anything is sent: a body of at most 1,600 characters
    /// (else 21617), no message to a customer who opted out (21610), and on WhatsApp a free-form
    /// message only within 24 hours of the customer's last message — outside it, a template (63016).
    func checkMessagingRules(channel: ChannelKind, from: String, to: String, extras: MessageExtras) async throws {
        guard channel != .chat else { return }
        if try await store.isOptedOut(agent: from, customer: to) {
            throw Rejection(
                status: .conflict,
                reason: "\(Masking.maskPhoneNumbers(to)) opted out (STOP) of messages from this sender; Twilio would refuse with error 21610")
        }
        guard channel == .whatsapp, extras.contentSid == nil else { return }
        let last = try await store.lastInboundMessageAt(customerAddress: to, channel: .whatsapp)
        guard let last, Date().timeIntervalSince(last) < MessageRules.whatsAppWindow else {
            let since = last.map { "the customer last wrote \(Int(Date().timeIntervalSince($0) / 3600)) h ago" } ?? "the customer has not written yet"
            throw Rejection(
                status: .conflict,
                reason:
                    "WhatsApp's 24-hour customer-service window is closed (\(since)): start with an approved template (contentSid, contentVariables); a free-form message would fail with Twilio error 63016"
            )
        }
    }
}
