import AgentConnectCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceSupport
import TwilioKit

/// The Twilio REST endpoints the services call (as TAC calls them, docs/architecture.md §6.4, and the Messages API), with fault injection.
struct TwilioRESTRoutes: Sendable {
    let state: SimState
    let configuration: SimConfiguration
    let webhooks: WebhookSender
    /// Hands a Calls API call to the sim's phone, which answers it in the background.
    let answerCall: (@Sendable (CallAnswerer.Job) -> Void)?
    let logger: Logger
    /// Sends the Messages API's status callbacks in the background (none when nil).
    var statusCallbacks: StatusCallbackSender? = nil

    func add(to router: Router<BasicRequestContext>) {
        let conversations = router.group("/v2/Conversations")
        conversations.post { request, _ in await guarded(request) { try await createConversation($0) } }
        conversations.get { request, _ in await guarded(request) { listConversations($0) } }
        conversations.get(":id") { request, context in await guarded(request) { _ in try conversation(context) } }
        conversations.put(":id") { request, context in await guarded(request) { try await updateConversation($0, context) } }
        conversations.patch(":id") { request, context in await guarded(request) { try await patchConversation($0, context) } }
        conversations.get(":id/Participants") { request, context in await guarded(request) { _ in try participants(context) } }
        conversations.post(":id/Participants") { request, context in await guarded(request) { try await addParticipant($0, context) } }
        conversations.put(":id/Participants/:pid") { request, context in await guarded(request) { try await replaceParticipant($0, context) } }
        conversations.get(":id/Communications") { request, context in await guarded(request) { _ in try communications(context) } }
        conversations.post(":id/Actions") { request, context in await guarded(request) { try await action($0, context) } }
        router.post("/2010-04-01/Accounts/:account/Messages.json") { request, _ in await guarded(request) { try await message($0) } }
        router.get("/2010-04-01/Accounts/:account/Messages.json") { request, _ in await guarded(request) { try listMessages($0) } }
        router.post("/2010-04-01/Accounts/:account/Calls.json") { request, _ in await guarded(request) { try await createCall($0) } }
        router.post("/2010-04-01/Accounts/:account/Calls/:file") { request, context in
            await guarded(request) { try updateCall($0, sid: String((context.parameters.get("file") ?? "").dropLast(".json".count))) }
        }
        router.get("/2010-04-01/Accounts/{account}.json") { request, context in await guarded(request) { try account($0, context) } }
        SimMessaging(state: state, configuration: configuration).add(to: router)
        router.post("/v2/Flows/:flow/Executions") { request, _ in
            await guarded(request) { incoming in
                guard incoming.form["To"] != nil, incoming.form["From"] != nil else { throw SimError(400, "To and From are required") }
                return JSONResponse.bytes(.created, try encode(["sid": .string(state.nextId("FN")), "status": "active"]))
            }
        }
    }

    /// The Accounts API's fetch, as `agentconnect doctor` uses it to check credentials: Basic auth with
    /// the account SID and the sim's auth token gets the account (200), anything else 401, and another
    /// account SID 404. The sim knows no API keys.
    private func account(_ incoming: Incoming, _ context: BasicRequestContext) throws -> Response {
        let header = incoming.request.headers[.authorization] ?? ""
        let decoded = header.hasPrefix("Basic ")
            ? Data(base64Encoded: String(header.dropFirst("Basic ".count))).map { String(decoding: $0, as: UTF8.self) } : nil
        guard decoded == "\(configuration.accountSid):\(configuration.authToken)" else {
            throw SimError(401, "Authenticate")
        }
        guard context.parameters.get("account") == configuration.accountSid else { throw SimError(404, "The requested resource was not found") }
        let body: JSONValue = [
            "sid": .string(configuration.accountSid), "friendly_name": "twilio-sim", "status": "active", "type": "Full",
        ]
        return JSONResponse.bytes(.ok, try encode(body))
    }

    /// The parsed request handed to an endpoint.
    struct Incoming: Sendable {
        var request: Request
        var json: JSONValue
        var form: [String: String]
        var token: String?
        /// The form's fields in order, repeated names included (`MediaUrl`).
        var pairs: [(String, String)] = []
    }

    /// Records the request, applies an armed fault, runs the endpoint, maps errors to Twilio-style bodies.
    private func guarded(_ request: Request, _ body: (Incoming) async throws -> Response) async -> Response {
        let bytes = (try? await request.body.collect(upTo: 8 << 20)).map { Array(buffer: $0) } ?? []
        let isForm = request.headers[.contentType]?.contains("form-urlencoded") ?? false
        let pairs = isForm ? FormCoding.decode(String(decoding: bytes, as: UTF8.self)) : []
        let form = Dictionary(pairs, uniquingKeysWith: { a, _ in a })
        let json = isForm ? JSONValue.null : ((try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))) ?? .null)
        let token = request.headers[HTTPField.Name("I-Twilio-Idempotency-Token")!]
        state.record(RecordedRequest(method: request.method.rawValue, path: request.uri.path, body: json, form: form, idempotencyToken: token, at: Date()))
        let fault = state.takeFault(path: request.uri.path)
        if let fault, !fault.afterAccept {
            if fault.delayMilliseconds > 0 { try? await Task.sleep(for: .milliseconds(fault.delayMilliseconds)) }
            if fault.status >= 400 {
                var response = JSONResponse.raw(
                    HTTPResponse.Status(code: fault.status), #"{"code":\#(fault.status == 429 ? 20429 : 20500),"message":"injected fault","status":\#(fault.status)}"#)
                if let retryAfter = fault.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
                return response
            }
        }
        do {
            let response = try await body(Incoming(request: request, json: json, form: form, token: token, pairs: pairs))
            if let fault, fault.afterAccept {
                // Twilio accepted (and sends) the message, but the answer comes late: the client times out.
                try? await Task.sleep(for: .milliseconds(fault.delayMilliseconds))
            }
            return response
        } catch let error as SimError {
            let body: JSONValue = ["code": .number(Double(error.code ?? error.status * 100)), "message": .string(error.message), "status": .number(Double(error.status))]
            return JSONResponse.raw(HTTPResponse.Status(code: error.status), body.compactJSON)
        } catch {
            return JSONResponse.raw(.internalServerError, #"{"code":20500,"message":"internal error","status":500}"#)
        }
    }

    private func createConversation(_ incoming: Incoming) async throws -> Response {
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
            state.makeParticipant(conversationId: id, accountSid: configuration.accountSid, type: participant["type"]?.string ?? "UNKNOWN", addresses: participant["addresses"]?.array ?? [])
        }
        // A Chat conversation's addresses name its chat channel.
        let channelId = participantsIn.flatMap { $0["addresses"]?.array ?? [] }.compactMap { $0["channelId"]?.string }.first
        let conversation = SimState.Conversation(
            id: id, status: "ACTIVE", channelId: channelId, metadata: incoming.json["metadata"]?.stringMap ?? [:], participants: participants,
            createdAt: Date())
        state.upsert(conversation)
        return JSONResponse.bytes(.created, try encode(json(conversation)))
    }

    private func listConversations(_ incoming: Incoming) -> Response {
        let query = Dictionary(FormCoding.decode(incoming.request.uri.query ?? ""), uniquingKeysWith: { a, _ in a })
        let matches = state.conversations.filter { conversation in
            (query["channelId"] == nil || conversation.channelId == query["channelId"]) && (query["status"] == nil || conversation.status == query["status"])
        }
        let body: JSONValue = ["conversations": .array(matches.map(json)), "meta": ["pageSize": .number(Double(matches.count))]]
        return JSONResponse.bytes(.ok, (try? encode(body)) ?? [])
    }

    private func conversation(_ context: BasicRequestContext) throws -> Response {
        JSONResponse.bytes(.ok, try encode(json(try find(context))))
    }

    private func updateConversation(_ incoming: Incoming, _ context: BasicRequestContext) async throws -> Response {
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

    private func patchConversation(_ incoming: Incoming, _ context: BasicRequestContext) async throws -> Response {
        let id = try find(context).id
        let updated = state.update(id) { conversation in
            conversation.metadata.merge(incoming.json["metadata"]?.stringMap ?? [:]) { _, new in new }
            if incoming.json["configuration"]?["statusCallbacks"]?.array?.isEmpty == true { conversation.callbacksCleared = true }
        }
        guard let updated else { throw SimError(404, "conversation not found") }
        return JSONResponse.bytes(.ok, try encode(json(updated)))
    }

    private func participants(_ context: BasicRequestContext) throws -> Response {
        JSONResponse.bytes(.ok, try encode(["participants": .array(try find(context).participants)]))
    }

    private func addParticipant(_ incoming: Incoming, _ context: BasicRequestContext) async throws -> Response {
        let id = try find(context).id
        let participant = state.makeParticipant(
            conversationId: id, accountSid: configuration.accountSid, type: incoming.json["type"]?.string ?? "UNKNOWN", addresses: incoming.json["addresses"]?.array ?? [])
        _ = state.update(id) { $0.participants.append(participant) }
        return JSONResponse.bytes(.created, try encode(participant))
    }

    private func replaceParticipant(_ incoming: Incoming, _ context: BasicRequestContext) async throws -> Response {
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

    private func communications(_ context: BasicRequestContext) throws -> Response {
        let id = try find(context).id
        let items = state.delivered.filter { $0.conversationId == id }.map(\.communication)
        return JSONResponse.bytes(.ok, try encode(["communications": .array(items)]))
    }

    private func action(_ incoming: Incoming, _ context: BasicRequestContext) async throws -> Response {
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
                400, "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.",
                code: MessageRules.ErrorCode.outsideWindow)
        }
    }

    /// The Messages API: `Body` (at most 1,600 characters, else 21617), `MediaUrl` (repeated, at most
    /// 10), `ContentSid`/`ContentVariables`, `StatusCallback`. A recipient who opted out is refused
    /// (21610). Accepted messages answer `queued`; then, as Twilio, the status callbacks follow: `sent`
    /// and `delivered`, or `failed` with 63016 for free-form WhatsApp outside the 24-hour window, or the
    /// outcome set for an unreachable recipient (`/sim/recipients`).
    private func message(_ incoming: Incoming) async throws -> Response {
        if let cached = state.idempotent(incoming.token, enabled: configuration.idempotencyCache) {
            return JSONResponse.bytes(.created, try encode(cached))
        }
        guard let to = incoming.form["To"], let from = incoming.form["From"] else { throw SimError(400, "To and From are required", code: 21604) }
        let body = incoming.form["Body"] ?? ""
        let media = incoming.pairs.filter { $0.0 == "MediaUrl" }.map(\.1)
        let contentSid = incoming.form["ContentSid"]
        if incoming.form["ContentVariables"] != nil && contentSid == nil {
            throw SimError(400, "A ContentSid must be specified if ContentVariables are provided in the request.", code: 21654)
        }
        guard incoming.form["Body"] != nil || !media.isEmpty || contentSid != nil else { throw SimError(400, "Message body is required.", code: 21602) }
        guard MessageRules.fits(body) else {
            throw SimError(400, "The concatenated message body exceeds the 1600 character limit", code: MessageRules.ErrorCode.bodyTooLong)
        }
        guard media.count <= MessageRules.maxMediaPerMessage else { throw SimError(400, "Too many media: at most 10 per message", code: 21623) }
        let channel = to.hasPrefix("whatsapp:") ? "WHATSAPP" : "SMS"
        if state.isOptedOut(agent: from, customer: to) {
            throw SimError(400, "Attempt to send to unsubscribed recipient", code: MessageRules.ErrorCode.unsubscribed)
        }
        let sid = "SM" + state.nextId("").suffix(32)
        var message = DeliveredMessage(id: sid, conversationId: nil, channel: channel, to: to, from: from, text: body, at: Date())
        message.media = media
        message.contentSid = contentSid
        message.contentVariables = incoming.form["ContentVariables"].flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }?.stringMap ?? [:]
        let statuses: [(status: String, errorCode: Int?)]
        if channel == "WHATSAPP", contentSid == nil, !state.windowOpen(customer: to) {
            message.status = "failed"
            message.errorCode = MessageRules.ErrorCode.outsideWindow
            state.fail(message)
            statuses = [("failed", MessageRules.ErrorCode.outsideWindow)]
        } else if let outcome = state.unreachable(to) {
            message.status = outcome.status
            message.errorCode = outcome.errorCode
            state.fail(message)
            statuses = [("sent", nil), (outcome.status, outcome.errorCode)]
        } else {
            state.deliver(message)
            statuses = [("sent", nil), ("delivered", nil)]
        }
        statusCallbacks?.enqueue(
            StatusCallbackSender.Job(
                messageSid: sid, delivered: message.errorCode == nil, url: incoming.form["StatusCallback"],
                fields: [("AccountSid", configuration.accountSid), ("MessageSid", sid), ("SmsSid", sid), ("From", from), ("To", to)],
                statuses: statuses))
        let response: JSONValue = [
            "sid": .string(sid), "status": "queued", "to": .string(to), "from": .string(from), "body": .string(body),
            "num_media": .string(String(media.count)),
        ]
        state.remember(incoming.token, response, enabled: configuration.idempotencyCache)
        return JSONResponse.bytes(.created, try encode(response))
    }

    /// The Messages API's list (newest first), filtered by `To`, `From` and `DateSent>=` (a day, as Twilio).
    private func listMessages(_ incoming: Incoming) throws -> Response {
        let query = Dictionary(FormCoding.decode(incoming.request.uri.query ?? ""), uniquingKeysWith: { a, _ in a })
        let day = query["DateSent>"] ?? query["DateSent>="]
        let dayStart = try day.map { text -> Date in
            guard let date = try? Date(text + "T00:00:00Z", strategy: .iso8601) else { throw SimError(400, "DateSent must be YYYY-MM-DD") }
            return date
        }
        let pageSize = min(1000, max(1, Int(query["PageSize"] ?? "") ?? 50))
        let matches = state.delivered.filter { message in
            message.conversationId == nil && (query["To"] == nil || message.to == query["To"]) && (query["From"] == nil || message.from == query["From"])
                && (dayStart.map { message.at >= $0 } ?? true)
        }
        let page = matches.reversed().prefix(pageSize).map(\.message)
        let body: JSONValue = ["messages": .array(Array(page)), "page_size": .number(Double(pageSize)), "next_page_uri": .null]
        return JSONResponse.bytes(.ok, try encode(body))
    }

    /// The Calls API: answers `{sid}` at once; the call is then answered in the background.
    private func createCall(_ incoming: Incoming) async throws -> Response {
        if let cached = state.idempotent(incoming.token, enabled: configuration.idempotencyCache) {
            return JSONResponse.bytes(.created, try encode(cached))
        }
        guard let to = incoming.form["To"], let from = incoming.form["From"], let twiml = incoming.form["Twiml"] else {
            throw SimError(400, "To, From and Twiml are required")
        }
        let sid = "CA" + state.nextId("").suffix(32)
        let response: JSONValue = ["sid": .string(sid), "status": "queued", "to": .string(to), "from": .string(from)]
        state.remember(incoming.token, response, enabled: configuration.idempotencyCache)
        state.recordCall(sid, ["callSid": .string(sid), "status": "queued", "to": .string(to)])
        state.events.publish(["kind": "call.incoming", "callSid": .string(sid), "from": .string(from), "to": .string(to), "twiml": .string(twiml)])
        answerCall?(CallAnswerer.Job(sid: sid, from: from, to: to, twiml: twiml))
        return JSONResponse.bytes(.created, try encode(response))
    }

    /// The Calls API's update (`POST …/Calls/{CallSid}.json`): `Status=completed` hangs up an
    /// in-progress call, `canceled` a queued or ringing one (Twilio's documented values); an unknown
    /// call is a 404. The sim records the status on the call (`GET /sim/calls/{sid}.status`); the
    /// sim's phone does not hang up a socket it is in the middle of.
    private func updateCall(_ incoming: Incoming, sid: String) throws -> Response {
        let known = [sid, sid + ".live", sid + ".action"].contains { state.call($0) != nil }
        guard known else { throw SimError(404, "The requested resource /Calls/\(sid).json was not found") }
        guard let status = incoming.form["Status"], ["completed", "canceled"].contains(status) else {
            throw SimError(400, "Status must be completed or canceled")
        }
        state.recordCall(sid + ".status", ["callSid": .string(sid), "status": .string(status)])
        return JSONResponse.bytes(.ok, try encode(["sid": .string(sid), "status": .string(status)]))
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

/// An error answer from the sim's Twilio endpoints.
struct SimError: Error {
    var status: Int
    var message: String
    /// Twilio's error code; `status × 100` when nil.
    var code: Int?

    init(_ status: Int, _ message: String, code: Int? = nil) {
        self.status = status
        self.message = message
        self.code = code
    }
}

/// Compact JSON bytes.
func encode(_ value: JSONValue) throws -> [UInt8] {
    Array(try JSONEncoder().encode(value))
}
