import AgentConnectCore
import Foundation
import HTTPTypes
import Hummingbird
import ServiceSupport
import TwilioKit

/// The Conversation Orchestrator's endpoints (`/v2/Conversations`): conversations, participants,
/// communications and the `SEND_MESSAGE` action, and the status callback the orchestrator posts.
extension TwilioRESTRoutes {
    func createConversation(_ incoming: Incoming) async throws -> Response {
        let participantsIn = incoming.json["participants"]?.array ?? []
        // Group by participant addresses: an ACTIVE conversation with the same addresses is a conflict.
        let addresses = Set(participantsIn.flatMap { ($0["addresses"]?.array ?? []).compactMap { $0["address"]?.string } })
        if !addresses.isEmpty,
            let existing = state.conversations.first(where: { conversation in
                conversation.status == "ACTIVE"
                    && Set(conversation.participants.flatMap { ($0["addresses"]?.array ?? []).compactMap { $0["address"]?.string } }) == addresses
            })
        {
            var response = JSONResponse.raw(.conflict, #"{"code":40900,"message":"conversation exists","status":409}"#)
            response.headers[HTTPField.Name("X-Conflicting-Resource-Id")!] = existing.id
            return response
        }
        let id = state.nextId("conv_conversation_")
        let participants = participantsIn.map { participant -> JSONValue in
            state.makeParticipant(
                conversationId: id, accountSid: configuration.accountSid, type: participant["type"]?.string ?? "UNKNOWN",
                addresses: participant["addresses"]?.array ?? [])
        }
        // A Chat conversation's addresses name its chat channel.
        let channelId = participantsIn.flatMap { $0["addresses"]?.array ?? [] }.compactMap { $0["channelId"]?.string }.first
        let conversation = SimState.Conversation(
            id: id, status: "ACTIVE", channelId: channelId, metadata: incoming.json["metadata"]?.stringMap ?? [:], participants: participants,
            createdAt: Date())
        state.upsert(conversation)
        return JSONResponse.bytes(.created, try encode(json(conversation)))
    }

    func listConversations(_ incoming: Incoming) -> Response {
        let query = Dictionary(FormCoding.decode(incoming.request.uri.query ?? ""), uniquingKeysWith: { a, _ in a })
        let matches = state.conversations.filter { conversation in
            (query["channelId"] == nil || conversation.channelId == query["channelId"])
                && (query["status"] == nil || conversation.status == query["status"])
        }
        let body: JSONValue = ["conversations": .array(matches.map(json)), "meta": ["pageSize": .number(Double(matches.count))]]
        return JSONResponse.bytes(.ok, (try? encode(body)) ?? [])
    }

    func conversation(_ context: BasicRequestContext) throws -> Response {
        JSONResponse.bytes(.ok, try encode(json(try find(context))))
    }

    func updateConversation(_ incoming: Incoming, _ context: BasicRequestContext) async throws -> Response {
        let id = try find(context).id
        let status = incoming.json["status"]?.string
        let updated = state.update(id) { conversation in
            if let status { conversation.status = status }
        }
        guard let updated else { throw SimError(404, "conversation not found") }
        if let status, status == "CLOSED" || status == "INACTIVE" {
            await sendConversationUpdated(updated)
        }
        return JSONResponse.bytes(.ok, try encode(json(updated)))
    }

    func patchConversation(_ incoming: Incoming, _ context: BasicRequestContext) async throws -> Response {
        let id = try find(context).id
        let updated = state.update(id) { conversation in
            conversation.metadata.merge(incoming.json["metadata"]?.stringMap ?? [:]) { _, new in new }
            if incoming.json["configuration"]?["statusCallbacks"]?.array?.isEmpty == true { conversation.callbacksCleared = true }
        }
        guard let updated else { throw SimError(404, "conversation not found") }
        return JSONResponse.bytes(.ok, try encode(json(updated)))
    }

    func participants(_ context: BasicRequestContext) throws -> Response {
        JSONResponse.bytes(.ok, try encode(["participants": .array(try find(context).participants)]))
    }

    func addParticipant(_ incoming: Incoming, _ context: BasicRequestContext) async throws -> Response {
        let id = try find(context).id
        let participant = state.makeParticipant(
            conversationId: id, accountSid: configuration.accountSid, type: incoming.json["type"]?.string ?? "UNKNOWN",
            addresses: incoming.json["addresses"]?.array ?? [])
        _ = state.update(id) { $0.participants.append(participant) }
        return JSONResponse.bytes(.created, try encode(participant))
    }

    func replaceParticipant(_ incoming: Incoming, _ context: BasicRequestContext) async throws -> Response {
        let id = try find(context).id
        let pid = context.parameters.get("pid") ?? ""
        var replaced: JSONValue?
        _ = state.update(id) { conversation in
            guard let index = conversation.participants.firstIndex(where: { $0["id"]?.string == pid }) else { return }
            var fields = conversation.participants[index].object ?? [:]
            for (key, value) in incoming.json.object ?? [:] { fields[key] = value }
            conversation.participants[index] = .object(fields)
            replaced = .object(fields)
        }
        guard let replaced else { throw SimError(404, "participant not found") }
        return JSONResponse.bytes(.ok, try encode(replaced))
    }

    func communications(_ context: BasicRequestContext) throws -> Response {
        let id = try find(context).id
        let items = state.delivered.filter { $0.conversationId == id }.map(\.communication)
        return JSONResponse.bytes(.ok, try encode(["communications": .array(items)]))
    }

    func action(_ incoming: Incoming, _ context: BasicRequestContext) async throws -> Response {
        let conversation = try find(context)
        if let cached = state.idempotent(incoming.token, enabled: configuration.idempotencyCache) {
            return JSONResponse.bytes(.accepted, try encode(cached))
        }
        guard incoming.json["type"]?.string == "SEND_MESSAGE" else { throw SimError(400, "unsupported action type") }
        let payload = incoming.json["payload"] ?? .null
        guard let to = payload["to"]?.array?.first, let channel = to["channel"]?.string else { throw SimError(400, "payload.to is required") }
        let content = payload["content"]
        let text = content?["text"]?.string ?? ""
        let media = (content?["media"]?.array ?? []).compactMap { $0["url"]?.string }
        let contentSid = content?["contentSid"]?.string
        guard !text.isEmpty || !media.isEmpty || contentSid != nil else { throw SimError(400, "payload.content needs text, media or contentSid") }
        guard MessageRules.fits(text) else {
            throw SimError(400, "The concatenated message body exceeds the 1600 character limit", code: MessageRules.ErrorCode.bodyTooLong)
        }
        if channel == "CHAT" && payload["channelSettings"]?["channelId"]?.string == nil {
            throw SimError(400, "channelSettings.channelId is required for CHAT")
        }
        func address(of reference: JSONValue?) throws -> String {
            if let address = reference?["address"]?.string { return address }
            let pid = reference?["participantId"]?.string
            guard let participant = conversation.participants.first(where: { $0["id"]?.string == pid }),
                let address = participant["addresses"]?.array?.first(where: { $0["channel"]?.string == channel })?["address"]?.string
            else {
                throw SimError(400, "unknown participant \(pid ?? "")")
            }
            return address
        }
        let actionId = state.nextId("comms_action_")
        let recipient = try address(of: to)
        let sender = try address(of: payload["from"])
        try checkRecipient(channel: channel, from: sender, to: recipient, template: contentSid != nil)
        var delivered = DeliveredMessage(
            id: actionId, conversationId: conversation.id, channel: channel, to: recipient, from: sender,
            text: text, at: Date(), communicationId: state.nextId("comms_communication_"),
            fromParticipantId: payload["from"]?["participantId"]?.string, toParticipantId: to["participantId"]?.string)
        delivered.media = media
        delivered.contentSid = contentSid
        delivered.contentVariables = content?["contentVariables"]?.stringMap ?? [:]
        if let outcome = state.unreachable(recipient) {
            delivered.status = outcome.status
            delivered.errorCode = outcome.errorCode
            state.fail(delivered)
        } else {
            state.deliver(delivered)
        }
        let response: JSONValue = [
            "id": .string(actionId), "type": "SEND_MESSAGE", "status": "COMPLETED", "conversationId": .string(conversation.id),
            "createdAt": .string(Timestamp.iso8601(Date())),
        ]
        state.remember(incoming.token, response, enabled: configuration.idempotencyCache)
        return JSONResponse.bytes(.accepted, try encode(response))
    }

    /// Refusals Twilio answers at once: a recipient who opted out (21610); on WhatsApp, free-form
    /// text outside the 24-hour window (63016: the Messages API reports it in a `failed` status
    /// callback instead, see ``message(_:)``; the orchestrator's action here answers it at once).
    private func checkRecipient(channel: String, from: String, to: String, template: Bool) throws {
        if state.isOptedOut(agent: from, customer: to) {
            throw SimError(400, "Attempt to send to unsubscribed recipient", code: MessageRules.ErrorCode.unsubscribed)
        }
        if channel == "WHATSAPP", !template, !state.windowOpen(customer: to) {
            throw SimError(
                400,
                "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.",
                code: MessageRules.ErrorCode.outsideWindow)
        }
    }

    /// Posts `CONVERSATION_UPDATED` for a status change to messaging-ingress, as the orchestrator's status callback.
    func sendConversationUpdated(_ conversation: SimState.Conversation) async {
        guard !conversation.callbacksCleared else { return }
        let body: JSONValue = [
            "eventType": "CONVERSATION_UPDATED",
            "data": [
                "id": .string(conversation.id), "accountId": .string(configuration.accountSid),
                "configurationId": JSONValue(configuration.conversationConfigurationId), "status": .string(conversation.status),
                "metadata": JSONValue(conversation.metadata), "createdAt": .string(Timestamp.iso8601(conversation.createdAt)),
                "updatedAt": .string(Timestamp.iso8601(Date())),
            ],
        ]
        _ = await webhooks.sendJSON(body, to: configuration.messagingURL + "/webhook", idempotencyToken: state.nextId("idem_"))
    }

    private func find(_ context: BasicRequestContext) throws -> SimState.Conversation {
        guard let id = context.parameters.get("id"), let conversation = state.conversation(id) else {
            throw SimError(404, "conversation not found")
        }
        return conversation
    }

    func json(_ conversation: SimState.Conversation) -> JSONValue {
        [
            "id": .string(conversation.id), "accountId": .string(configuration.accountSid),
            "configurationId": JSONValue(configuration.conversationConfigurationId), "status": .string(conversation.status),
            "channelId": JSONValue(conversation.channelId), "metadata": JSONValue(conversation.metadata),
            "createdAt": .string(Timestamp.iso8601(conversation.createdAt)),
        ]
    }
}
