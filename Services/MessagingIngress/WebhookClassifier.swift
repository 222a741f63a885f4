import AgentConnectCore
import Foundation
import TwilioKit

/// What to do with one verified webhook.
enum WebhookDecision: Equatable {
    /// Publish this event, deduplicated on `dedupKey` when there is one.
    case publish(BusEvent, dedupKey: String?)
    /// Answer 200 and do nothing (an event type we do not act on).
    case ignore(String)
    /// Answer 200, publish nothing, and count the drop; `isError` drops are logged as errors.
    case drop(reason: String, isError: Bool)
    /// Answer 400 with this reason.
    case reject(String)
}

/// Turns verified webhook bodies into bus events (tac-python-spec §4.1), without any I/O.
struct WebhookClassifier: Sendable {
    var senders: Senders
    var conversationConfigurationId: String?
    var accountSid: String?

    /// A Conversation Orchestrator JSON event.
    func classifyOrchestratorEvent(_ body: JSONValue, idempotencyToken: String?, traceparent: String) -> WebhookDecision {
        guard case .object = body else { return .reject("webhook payload must be a JSON object") }
        guard let eventType = body["eventType"]?.string else { return .reject("missing eventType") }
        guard let data = body["data"], case .object = data else {
            return eventType.isEmpty ? .reject("missing data") : .ignore("\(eventType) without a data object")
        }
        switch eventType {
        case "COMMUNICATION_CREATED":
            return communicationCreated(data, token: idempotencyToken, traceparent: traceparent)
        case "CONVERSATION_UPDATED":
            return conversationUpdated(data, token: idempotencyToken, traceparent: traceparent)
        case "PARTICIPANT_ADDED":
            return participantAdded(data, token: idempotencyToken, traceparent: traceparent)
        default:
            return .ignore(eventType)
        }
    }

    private func communicationCreated(_ data: JSONValue, token: String?, traceparent: String) -> WebhookDecision {
        guard let conversationId = data["conversationId"]?.string, !conversationId.isEmpty else {
            return .reject("COMMUNICATION_CREATED without conversationId")
        }
        guard let channelName = data["author"]?["channel"]?.string else { return .reject("COMMUNICATION_CREATED without author.channel") }
        guard let channel = ChannelKind(orchestratorName: channelName), channel.isMessaging else {
            return .ignore("communication on channel \(channelName)")
        }
        guard let author = data["author"]?["address"]?.string, !author.isEmpty else { return .reject("missing author.address") }
        let text = data["content"]?["text"]?.string ?? ""
        guard !text.allSatisfy(\.isWhitespace) else { return .drop(reason: "empty_text", isError: false) }
        if senders.owns(author, on: channel) { return .drop(reason: "own_message", isError: false) }
        let recipients = (data["recipients"]?.array ?? []).filter { $0["channel"]?.string == channelName }
        var agentAddress: String?
        var agentParticipantId: String?
        if channel == .chat {
            agentAddress = senders.chatAgentAddress
        } else if !recipients.isEmpty {
            guard let matched = recipients.first(where: { senders.owns($0["address"]?.string ?? "", on: channel) }) else {
                return .drop(reason: "unknown_recipient", isError: true)
            }
            agentAddress = matched["address"]?.string
            agentParticipantId = matched["participantId"]?.string
        } else {
            agentAddress = senders.defaultSender(for: channel)
        }
        let communicationId = data["id"]?.string
        let payload: JSONValue = [
            "mode": "orchestrator",
            "text": .string(text),
            "authorAddress": .string(author),
            "authorParticipantId": JSONValue(data["author"]?["participantId"]?.string),
            "agentAddress": JSONValue(agentAddress),
            "agentParticipantId": JSONValue(agentParticipantId),
            "channelId": JSONValue(data["channelId"]?.string),
            "communicationId": JSONValue(communicationId),
        ]
        let event = BusEvent(
            type: EventType.messageReceived, conversationId: conversationId, channel: channel, traceparent: traceparent, payload: payload)
        return .publish(event, dedupKey: token ?? communicationId.map { "comm:\($0)" })
    }

    private func conversationUpdated(_ data: JSONValue, token: String?, traceparent: String) -> WebhookDecision {
        guard let conversationId = data["id"]?.string, !conversationId.isEmpty else { return .reject("CONVERSATION_UPDATED without id") }
        guard let configured = conversationConfigurationId, data["configurationId"]?.string == configured else {
            return .ignore("configurationId does not match")
        }
        let status = data["status"]?.string ?? ""
        let type: String
        switch status {
        case "CLOSED": type = EventType.conversationEnded
        case "INACTIVE": type = EventType.conversationInactive
        default: return .ignore("status \(status)")
        }
        let payload: JSONValue = [
            "status": .string(status), "reason": "orchestrator", "channelKnown": false,
            "metadata": data["metadata"] ?? .object([:]),
        ]
        // The orchestrator event names no channel; the worker reads it from the conversation's record.
        let event = BusEvent(type: type, conversationId: conversationId, channel: .sms, traceparent: traceparent, payload: payload)
        return .publish(event, dedupKey: token ?? "conv:\(conversationId):\(status):\(data["updatedAt"]?.string ?? "")")
    }

    private func participantAdded(_ data: JSONValue, token: String?, traceparent: String) -> WebhookDecision {
        guard let conversationId = data["conversationId"]?.string, !conversationId.isEmpty else {
            return .reject("PARTICIPANT_ADDED without conversationId")
        }
        let address = data["addresses"]?.array?.first
        guard let channel = address?["channel"]?.string.flatMap(ChannelKind.init(orchestratorName:)) else {
            return .ignore("participant on an unsupported channel")
        }
        let payload: JSONValue = [
            "participantId": JSONValue(data["id"]?.string), "participantType": JSONValue(data["type"]?.string),
            "address": JSONValue(address?["address"]?.string), "profileId": JSONValue(data["profileId"]?.string),
        ]
        let event = BusEvent(
            type: EventType.conversationStarted, conversationId: conversationId, channel: channel, traceparent: traceparent, payload: payload)
        return .publish(event, dedupKey: token ?? data["id"]?.string.map { "participant:\($0)" })
    }

    /// A classic Twilio Messaging webhook (form fields `From`, `To`, `Body`, `MessageSid`, …).
    func classifyClassicMessage(_ fields: [(String, String)], idempotencyToken: String?, traceparent: String) -> WebhookDecision {
        let form = Dictionary(fields, uniquingKeysWith: { first, _ in first })
        guard let from = form["From"], !from.isEmpty, let to = form["To"], !to.isEmpty else { return .reject("missing From or To") }
        guard let messageSid = form["MessageSid"] ?? form["SmsMessageSid"], !messageSid.isEmpty else { return .reject("missing MessageSid") }
        if let accountSid, let received = form["AccountSid"], received != accountSid { return .drop(reason: "wrong_account", isError: true) }
        let channel: ChannelKind = to.hasPrefix("whatsapp:") ? .whatsapp : (to.hasPrefix("rcs:") ? .rcs : .sms)
        if senders.owns(from, on: channel) { return .drop(reason: "own_message", isError: false) }
        guard senders.owns(to, on: channel) else { return .drop(reason: "unknown_recipient", isError: true) }
        let body = form["Body"] ?? ""
        let mediaCount = Int(form["NumMedia"] ?? "0") ?? 0
        let media: [JSONValue] = (0..<min(mediaCount, 10)).compactMap { index in
            form["MediaUrl\(index)"].map { url in
                ["url": .string(url), "contentType": JSONValue(form["MediaContentType\(index)"])]
            }
        }
        guard !body.allSatisfy(\.isWhitespace) || !media.isEmpty else { return .drop(reason: "empty_text", isError: false) }
        let payload: JSONValue = [
            "mode": "classic", "text": .string(body), "authorAddress": .string(from), "agentAddress": .string(to),
            "messageSid": .string(messageSid), "media": .array(media),
        ]
        let event = BusEvent(
            type: EventType.messageReceived, conversationId: classicConversationId(channel: channel, agent: to, customer: from),
            channel: channel, traceparent: traceparent, payload: payload)
        return .publish(event, dedupKey: idempotencyToken ?? "msg:\(messageSid)")
    }
}
