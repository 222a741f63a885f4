import AgentConnectCore
import Foundation
import Hummingbird
import Logging
import ServiceSupport
import TwilioKit

/// The sim's own API (`/sim/...`), used by its CLI, the tests and the dev phone: play a customer,
/// read what the agent sent, inject faults.
struct ControlRoutes: Sendable {
    let state: SimState
    let configuration: SimConfiguration
    let webhooks: WebhookSender
    let rest: TwilioRESTRoutes

    func add(to router: Router<BasicRequestContext>) {
        router.post("/sim/messages") { request, _ in try await customerMessage(request) }
        router.get("/sim/messages") { request, _ in await delivered(request) }
        router.post("/sim/webhooks") { request, _ in try await rawWebhook(request) }
        router.post("/sim/conversations/:id/close") { _, context in try await close(context) }
        router.get("/sim/requests") { request, _ in requests(request) }
        router.post("/sim/faults") { request, _ in try await arm(request) }
        router.delete("/sim/faults") { _, _ in
            state.clearFaults()
            return JSONResponse.raw(.ok, #"{"status":"ok"}"#)
        }
        router.post("/sim/reset") { _, _ in
            state.reset()
            return JSONResponse.raw(.ok, #"{"status":"ok"}"#)
        }
    }

    private func body(_ request: Request) async throws -> JSONValue {
        let buffer = try await request.body.collect(upTo: 1 << 20)
        return try JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer))
    }

    /// A customer writes to the agent: `{channel, from, to?, text, classic?, participantType?}`.
    ///
    /// Orchestrated (default): the conversation and participants are created as Conversation
    /// Orchestrator would, then a signed `COMMUNICATION_CREATED` goes to messaging-ingress. Classic:
    /// a signed Messaging form webhook. A repeated `token` is Twilio redelivering the same message:
    /// the same communication id or `MessageSid` (derived from the token) with that header.
    private func customerMessage(_ request: Request) async throws -> Response {
        let input = try await body(request)
        guard let channelName = input["channel"]?.string?.lowercased(), let channel = ChannelKind(rawValue: channelName), channel.isMessaging else {
            return JSONResponse.error(.badRequest, "channel must be sms, whatsapp, rcs or chat")
        }
        let media = try SimMessaging(state: state, configuration: configuration).customerMedia(input["media"])
        guard let from = input["from"]?.string, let text = input["text"]?.string ?? (media.isEmpty ? nil : "") else {
            return JSONResponse.error(.badRequest, "from and text (or media) are required")
        }
        guard let to = input["to"]?.string ?? configuration.senders.defaultSender(for: channel) else {
            return JSONResponse.error(.badRequest, "no agent address configured for \(channelName)")
        }
        state.customerWrote(from: from, to: to, text: text)
        let token = input["token"]?.string ?? state.nextId("idem_")
        if input["classic"]?.bool == true {
            let sid = input["token"]?.string.map { Self.derivedId("SM", from: $0) } ?? "SM" + state.nextId("").suffix(32)
            let outcome = await webhooks.sendForm(
                [("AccountSid", configuration.accountSid), ("MessageSid", sid), ("From", from), ("To", to), ("Body", text)]
                    + SimMedium.formFields(media),
                to: configuration.messagingURL + "/webhook", idempotencyToken: input["token"]?.string)
            return JSONResponse.bytes(
                .ok,
                try encode([
                    "messageSid": .string(sid), "webhookStatus": .number(Double(outcome.status)), "attempts": .number(Double(outcome.attempts)),
                ]))
        }
        let orchestratorChannel = channel.orchestratorName
        let conversation = findOrCreateConversation(
            channel: orchestratorChannel, customer: from, agent: to, conversationId: input["conversationId"]?.string,
            customerType: input["participantType"]?.string ?? "CUSTOMER", agentType: input["agentParticipantType"]?.string ?? "AI_AGENT",
            chatChannelId: channel == .chat ? (input["channelId"]?.string ?? "CHsimchat") : nil)
        func participantId(_ address: String) -> String? {
            conversation.participants.first { ($0["addresses"]?.array ?? []).contains { $0["address"]?.string == address } }?["id"]?.string
        }
        let communicationId = input["token"]?.string.map { Self.derivedId("comms_communication_", from: $0) } ?? state.nextId("comms_communication_")
        var data: [String: JSONValue] = [
            "id": .string(communicationId), "conversationId": .string(conversation.id), "accountId": .string(configuration.accountSid),
            "author": ["address": .string(from), "channel": .string(orchestratorChannel), "participantId": JSONValue(participantId(from))],
            "content": media.isEmpty
                ? ["type": "TEXT", "text": .string(text)] : ["type": "MEDIA", "text": .string(text), "media": SimMedium.json(media)],
            "recipients": [["address": .string(to), "channel": .string(orchestratorChannel), "participantId": JSONValue(participantId(to))]],
            "createdAt": .string(Timestamp.iso8601(Date())),
        ]
        if channel == .chat { data["channelId"] = .string(conversation.channelId ?? "CHsimchat") }
        let sent = ContinuousClock.now
        state.events.publish([
            "kind": "customer.message", "conversationId": .string(conversation.id), "channel": .string(channel.rawValue), "from": .string(from),
            "to": .string(to), "text": .string(text), "media": SimMedium.json(media),
        ])
        let outcome = await webhooks.sendJSON(
            ["eventType": "COMMUNICATION_CREATED", "data": .object(data)], to: configuration.messagingURL + "/webhook", idempotencyToken: token)
        state.events.publish([
            "kind": "webhook.answered", "conversationId": .string(conversation.id), "status": .number(Double(outcome.status)),
            "attempts": .number(Double(outcome.attempts)), "ms": .number((ContinuousClock.now - sent).inMilliseconds.rounded()),
            "request": ["eventType": "COMMUNICATION_CREATED", "data": .object(data)], "response": .string(outcome.body),
        ])
        return JSONResponse.bytes(
            .ok,
            try encode([
                "conversationId": .string(conversation.id), "communicationId": .string(communicationId),
                "webhookStatus": .number(Double(outcome.status)), "attempts": .number(Double(outcome.attempts)), "token": .string(token),
            ]))
    }

    /// A stable id for a caller-given redelivery token: `prefix` + 32 hex digits.
    static func derivedId(_ prefix: String, from token: String) -> String {
        prefix + TwilioSignature.bodyHash(Array("sim|\(token)".utf8)).prefix(32)
    }

    private func findOrCreateConversation(
        channel: String, customer: String, agent: String, conversationId: String?, customerType: String, agentType: String, chatChannelId: String?
    ) -> SimState.Conversation {
        if let conversationId, let existing = state.conversation(conversationId) { return existing }
        if let existing = state.conversations.first(where: { conversation in
            conversation.status != "CLOSED"
                && conversation.participants.contains {
                    ($0["addresses"]?.array ?? []).contains { $0["address"]?.string == customer && $0["channel"]?.string == channel }
                }
                && conversation.participants.contains { ($0["addresses"]?.array ?? []).contains { $0["address"]?.string == agent } }
        }) {
            return existing
        }
        let id = conversationId ?? state.nextId("conv_conversation_")
        var customerAddress: [String: JSONValue] = ["channel": .string(channel), "address": .string(customer)]
        var agentAddress: [String: JSONValue] = ["channel": .string(channel), "address": .string(agent)]
        if let chatChannelId {
            customerAddress["channelId"] = .string(chatChannelId)
            agentAddress["channelId"] = .string(chatChannelId)
        }
        let conversation = SimState.Conversation(
            id: id, status: "ACTIVE", channelId: chatChannelId, metadata: [:],
            participants: [
                state.makeParticipant(
                    conversationId: id, accountSid: configuration.accountSid, type: customerType, addresses: [.object(customerAddress)]),
                state.makeParticipant(conversationId: id, accountSid: configuration.accountSid, type: agentType, addresses: [.object(agentAddress)]),
            ], createdAt: Date())
        state.upsert(conversation)
        return conversation
    }

    /// What the agent sent: `?conversationId=&to=&count=N&waitMs=T` long-polls until N messages match.
    private func delivered(_ request: Request) async -> Response {
        let query = Dictionary(FormCoding.decode(request.uri.query ?? ""), uniquingKeysWith: { a, _ in a })
        let want = Int(query["count"] ?? "0") ?? 0
        let deadline = ContinuousClock.now + .milliseconds(min(60_000, Int(query["waitMs"] ?? "0") ?? 0))
        while true {
            let matches = state.delivered.filter { message in
                (query["conversationId"] == nil || message.conversationId == query["conversationId"])
                    && (query["to"] == nil || message.to == query["to"])
            }
            let remaining = deadline - ContinuousClock.now
            if matches.count >= want || remaining <= .zero {
                return JSONResponse.bytes(.ok, (try? encode(["messages": .array(matches.map(\.json))])) ?? [])
            }
            await state.waitForDelivery(timeout: min(remaining, .milliseconds(200)))
        }
    }

    /// Sends an arbitrary signed JSON webhook: `{body, path?, token?, signature?}` (a wrong `signature` is sent as given).
    private func rawWebhook(_ request: Request) async throws -> Response {
        let input = try await body(request)
        let path = input["path"]?.string ?? "/webhook"
        let outcome = await webhooks.sendJSON(
            input["body"] ?? .object([:]), to: configuration.messagingURL + path, idempotencyToken: input["token"]?.string,
            signature: input["signature"]?.string)
        return JSONResponse.bytes(.ok, try encode(["status": .number(Double(outcome.status)), "body": .string(outcome.body)]))
    }

    private func close(_ context: BasicRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id"), let closed = state.update(id, { $0.status = "CLOSED" }) else {
            return JSONResponse.error(.notFound, "conversation not found")
        }
        await rest.sendConversationUpdated(closed)
        return JSONResponse.raw(.ok, #"{"status":"CLOSED"}"#)
    }

    private func requests(_ request: Request) -> Response {
        let query = Dictionary(FormCoding.decode(request.uri.query ?? ""), uniquingKeysWith: { a, _ in a })
        let items = state.requests.filter { query["path"] == nil || $0.path.contains(query["path"] ?? "") }.map { recorded -> JSONValue in
            [
                "method": .string(recorded.method), "path": .string(recorded.path), "body": recorded.body, "form": JSONValue(recorded.form),
                "idempotencyToken": JSONValue(recorded.idempotencyToken),
            ]
        }
        return JSONResponse.bytes(.ok, (try? encode(["requests": .array(items)])) ?? [])
    }

    /// Arms a fault: `{status: 429|500|200, count: N, delayMs?, retryAfter?}`.
    private func arm(_ request: Request) async throws -> Response {
        let input = try await body(request)
        state.arm(
            Fault(
                status: input["status"]?.int ?? 500, remaining: input["count"]?.int ?? 1,
                delayMilliseconds: Int(input["delayMs"]?.double ?? 0), retryAfter: input["retryAfter"]?.double.map { Int($0) },
                afterAccept: input["afterAccept"]?.bool ?? false, every: max(1, Int(input["every"]?.double ?? 1)),
                pathContains: input["pathContains"]?.string))
        return JSONResponse.raw(.ok, #"{"status":"armed"}"#)
    }
}
