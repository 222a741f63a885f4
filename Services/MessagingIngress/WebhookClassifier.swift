import AgentConnectCore
import Foundation
import TwilioKit

/// What to do with one verified webhook.
enum WebhookDecision: Equatable {
    /// Publish this event, deduplicated on `dedupKey` (always derived from the signed body).
    case publish(BusEvent, dedupKey: String)
    /// Answer 200 and do nothing (an event type we do not act on).
    case ignore(String)
    /// Answer 200, publish nothing, and count the drop; `isError` drops are logged as errors.
    case drop(reason: String, isError: Bool)
    /// Answer 400 with this reason.
    case reject(String)
}

/// Turns verified webhook bodies into bus events (as TAC does it: docs/architecture.md §6.1), without any I/O.
///
/// Deduplication and event ids come from what Twilio signed — the `MessageSid`, the communication id,
/// the participant id, the conversation's status and `updatedAt`, else the hash of the signed body —
/// never from the unsigned `I-Twilio-Idempotency-Token` header: a captured webhook replayed with a fresh
/// header is the same event, with the same id (so its replies carry the same ids downstream).
struct WebhookClassifier: Sendable {
    var senders: Senders
    var conversationConfigurationId: String?
    var accountSid: String?

    /// A Conversation Orchestrator JSON event.
    /// - Parameter bodyHash: the hex SHA-256 of the signed body, the dedup key when the event carries no id.
    func classifyOrchestratorEvent(_ body: JSONValue, bodyHash: String, traceparent: String) -> WebhookDecision {
        guard case .object = body else { return .reject("webhook payload must be a JSON object") }
        guard let eventType = body["eventType"]?.string else { return .reject("missing eventType") }
        guard let data = body["data"], case .object = data else {
            return eventType.isEmpty ? .reject("missing data") : .ignore("\(eventType) without a data object")
        }
        switch eventType {
        case "COMMUNICATION_CREATED":
            return communicationCreated(data, bodyHash: bodyHash, traceparent: traceparent)
        case "CONVERSATION_UPDATED":
            return conversationUpdated(data, traceparent: traceparent)
        case "PARTICIPANT_ADDED":
            return participantAdded(data, bodyHash: bodyHash, traceparent: traceparent)
        default:
            return .ignore(eventType)
        }
    }

    private func communicationCreated(_ data: JSONValue, bodyHash: String, traceparent: String) -> WebhookDecision {
        guard let conversationId = data["conversationId"]?.string, !conversationId.isEmpty else {
            return .reject("COMMUNICATION_CREATED without conversationId")
        }
        guard let channelName = data["author"]?["channel"]?.string else { return .reject("COMMUNICATION_CREATED without author.channel") }
        guard let channel = ChannelKind(orchestratorName: channelName), channel.isMessaging else {
            return .ignore("communication on channel \(channelName)")
        }
        guard let author = data["author"]?["address"]?.string, !author.isEmpty else { return .reject("missing author.address") }
        let text = data["content"]?["text"]?.string ?? ""
        let media = Self.orchestratorMedia(data["content"])
        guard !text.allSatisfy(\.isWhitespace) || !media.isEmpty else { return .drop(reason: "empty_text", isError: false) }
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
        let communicationId = data["id"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        let message = MessageReceived(
            mode: .orchestrator, text: text, authorAddress: author, media: media, authorParticipantId: data["author"]?["participantId"]?.string,
            agentAddress: agentAddress, agentParticipantId: agentParticipantId, channelId: data["channelId"]?.string,
            communicationId: communicationId, optOut: MessageRules.optKeyword(text)?.rawValue)
        let key = communicationId.map { "comm:\($0)" } ?? "body:\(bodyHash)"
        return publish(message, dedupKey: key, conversationId: conversationId, channel: channel, traceparent: traceparent)
    }

    private func conversationUpdated(_ data: JSONValue, traceparent: String) -> WebhookDecision {
        guard let conversationId = data["id"]?.string, !conversationId.isEmpty else { return .reject("CONVERSATION_UPDATED without id") }
        guard let configured = conversationConfigurationId, data["configurationId"]?.string == configured else {
            return .ignore("configurationId does not match")
        }
        let status = data["status"]?.string ?? ""
        let metadata = data["metadata"] ?? .object([:])
        // Deduplicated on what Orchestrator signed (the status and its time), not per conversation:
        // the event names no channel; the worker reads it from the conversation's record.
        let key = "conv:\(conversationId):\(status):\(data["updatedAt"]?.string ?? "")"
        switch status {
        case "CLOSED":
            return decision(dedupKey: key) {
                try ConversationEnded.event(
                    conversationId: conversationId, channel: nil, reason: .orchestrator, status: status, metadata: metadata, id: Self.eventId(key),
                    traceparent: traceparent)
            }
        case "INACTIVE":
            return publish(
                ConversationInactive(status: status, metadata: metadata), dedupKey: key, conversationId: conversationId, channel: .sms,
                traceparent: traceparent)
        default:
            return .ignore("status \(status)")
        }
    }

    private func participantAdded(_ data: JSONValue, bodyHash: String, traceparent: String) -> WebhookDecision {
        guard let conversationId = data["conversationId"]?.string, !conversationId.isEmpty else {
            return .reject("PARTICIPANT_ADDED without conversationId")
        }
        let address = data["addresses"]?.array?.first
        guard let channel = address?["channel"]?.string.flatMap(ChannelKind.init(orchestratorName:)) else {
            return .ignore("participant on an unsupported channel")
        }
        let started = ConversationStarted(
            participantId: data["id"]?.string, participantType: data["type"]?.string, address: address?["address"]?.string,
            profileId: data["profileId"]?.string)
        let key = data["id"]?.string.flatMap { $0.isEmpty ? nil : "participant:\($0)" } ?? "body:\(bodyHash)"
        return publish(started, dedupKey: key, conversationId: conversationId, channel: channel, traceparent: traceparent)
    }

    /// A classic Twilio Messaging webhook (form fields `From`, `To`, `Body`, `MessageSid`, …).
    func classifyClassicMessage(_ fields: [(String, String)], traceparent: String) -> WebhookDecision {
        let form = Dictionary(fields, uniquingKeysWith: { first, _ in first })
        guard let from = form["From"], !from.isEmpty, let to = form["To"], !to.isEmpty else { return .reject("missing From or To") }
        guard let messageSid = form["MessageSid"] ?? form["SmsMessageSid"], !messageSid.isEmpty else { return .reject("missing MessageSid") }
        if let accountSid, let received = form["AccountSid"], received != accountSid { return .drop(reason: "wrong_account", isError: true) }
        let channel: ChannelKind = to.hasPrefix("whatsapp:") ? .whatsapp : (to.hasPrefix("rcs:") ? .rcs : .sms)
        if senders.owns(from, on: channel) { return .drop(reason: "own_message", isError: false) }
        guard senders.owns(to, on: channel) else { return .drop(reason: "unknown_recipient", isError: true) }
        let body = form["Body"] ?? ""
        let mediaCount = Int(form["NumMedia"] ?? "0") ?? 0
        let media: [MessageReceived.Media] = (0..<min(mediaCount, MessageRules.maxMediaPerMessage)).compactMap { index in
            form["MediaUrl\(index)"].map { url in MessageReceived.Media(url: url, contentType: form["MediaContentType\(index)"]) }
        }
        guard !body.allSatisfy(\.isWhitespace) || !media.isEmpty else { return .drop(reason: "empty_text", isError: false) }
        let message = MessageReceived(
            mode: .classic, text: body, authorAddress: from, media: media, agentAddress: to, messageSid: messageSid,
            optOut: MessageRules.optKeyword(body)?.rawValue)
        return publish(
            message, dedupKey: "msg:\(messageSid)", conversationId: classicConversationId(channel: channel, agent: to, customer: from),
            channel: channel,
            traceparent: traceparent)
    }

    /// The media of an orchestrator communication's `content`: `content.media[]` items with `url` (or
    /// `mediaUrl`), `contentType` and, when known, `size` in bytes (at most 10, as Twilio carries).
    static func orchestratorMedia(_ content: JSONValue?) -> [MessageReceived.Media] {
        (content?["media"]?.array ?? []).prefix(MessageRules.maxMediaPerMessage).compactMap { item in
            guard let url = item["url"]?.string ?? item["mediaUrl"]?.string, !url.isEmpty else { return nil }
            return MessageReceived.Media(
                url: url, contentType: item["contentType"]?.string ?? item["content_type"]?.string, size: Self.mediaSize(item["size"]))
        }
    }

    /// A medium's size as the bus carries it: a whole number of bytes that any reader can hold in an
    /// `Int` (a negative, fractional, or astronomically large number, which would trap a worker's
    /// `Int(_:)` on every redelivery, is carried as unknown).
    static func mediaSize(_ value: JSONValue?) -> Int? {
        guard let size = value?.double, size.isFinite, size >= 0, size <= 9e15, size == size.rounded() else { return nil }
        return Int(exactly: size)
    }

    /// A Messages API status callback (`MessageSid`, `MessageStatus`, `ErrorCode`, `From`, `To`): a
    /// `message.status` event on the conversation's partition, deduplicated on the SID and status.
    /// The conversation is the classic one of the sender and recipient.
    func classifyMessageStatus(_ fields: [(String, String)], traceparent: String) -> WebhookDecision {
        let form = Dictionary(fields, uniquingKeysWith: { first, _ in first })
        guard let sid = form["MessageSid"] ?? form["SmsSid"], !sid.isEmpty else { return .reject("missing MessageSid") }
        guard let status = (form["MessageStatus"] ?? form["SmsStatus"])?.lowercased(), !status.isEmpty else {
            return .reject("missing MessageStatus")
        }
        guard let from = form["From"], !from.isEmpty, let to = form["To"], !to.isEmpty else { return .reject("missing From or To") }
        if let accountSid, let received = form["AccountSid"], received != accountSid { return .drop(reason: "wrong_account", isError: true) }
        let channel: ChannelKind = from.hasPrefix("whatsapp:") ? .whatsapp : (from.hasPrefix("rcs:") ? .rcs : .sms)
        guard senders.owns(from, on: channel) else { return .drop(reason: "unknown_sender", isError: true) }
        let errorCode = form["ErrorCode"].flatMap { $0.isEmpty || $0 == "0" ? nil : $0 }
        let delivery = MessageStatus(
            messageSid: sid, status: status, errorCode: errorCode, errorMessage: form["ErrorMessage"], agentAddress: from, customerAddress: to)
        return publish(
            delivery, dedupKey: "status:\(sid):\(status)", conversationId: classicConversationId(channel: channel, agent: from, customer: to),
            channel: channel, traceparent: traceparent)
    }

    /// A `/ci-webhook` result: deduplicated on its operator result ids (with the conversation and the
    /// intelligence configuration), else on the signed body's hash.
    func classifyIntelligenceResult(_ json: JSONValue, conversationId: String, bodyHash: String, traceparent: String) -> WebhookDecision {
        let resultIds = (json["operatorResults"]?.array ?? []).compactMap { $0["id"]?.string }.filter { !$0.isEmpty }.sorted()
        let configuration = json["intelligenceConfiguration"]?["id"]?.string ?? ""
        let key =
            resultIds.isEmpty
            ? "ci:body:\(bodyHash)"
            : "ci:" + TwilioSignature.bodyHash(Array("\(conversationId)|\(configuration)|\(resultIds.joined(separator: ","))".utf8))
        return publish(IntelligenceResult(body: json), dedupKey: key, conversationId: conversationId, channel: .sms, traceparent: traceparent)
    }

    /// Publishes a typed event whose id is derived from its dedup key.
    private func publish(
        _ payload: some BusEventPayload, dedupKey: String, conversationId: String, channel: ChannelKind, traceparent: String
    ) -> WebhookDecision {
        decision(dedupKey: dedupKey) {
            try BusEvent(payload, id: Self.eventId(dedupKey), conversationId: conversationId, channel: channel, traceparent: traceparent)
        }
    }

    /// `.publish` of the event built, or an error drop when it cannot be encoded.
    private func decision(dedupKey: String, _ build: () throws -> BusEvent) -> WebhookDecision {
        do {
            return .publish(try build(), dedupKey: dedupKey)
        } catch {
            return .drop(reason: "unencodable_event", isError: true)
        }
    }

    /// The event id for a dedup key: UUID-shaped, from its SHA-256, so a redelivered webhook's event
    /// (and every reply id derived from it, `<event id>:r<n>`) is the same.
    static func eventId(_ dedupKey: String) -> String {
        let hex = Array(TwilioSignature.bodyHash(Array("tac:event|\(dedupKey)".utf8)).utf8)
        // 8-4-4-4-12 of the first 32 hex digits, written byte by byte (this runs for every webhook).
        return String(unsafeUninitializedCapacity: 36) { out in
            var count = 0
            for index in 0..<32 {
                if index == 8 || index == 12 || index == 16 || index == 20 {
                    out[count] = UInt8(ascii: "-")
                    count += 1
                }
                out[count] = hex[index]
                count += 1
            }
            return count
        }
    }
}
