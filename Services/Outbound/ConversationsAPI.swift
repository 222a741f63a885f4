import AgentConnectCore
import Foundation
import NIOHTTP1
import TwilioKit

/// A Conversation Orchestrator participant.
struct Participant: Sendable, Equatable {
    var id: String
    var type: String?
    var name: String?
    var profileId: String?
    var addresses: [JSONValue]

    init(json: JSONValue) {
        id = json["id"]?.string ?? ""
        type = json["type"]?.string
        name = json["name"]?.string
        profileId = json["profileId"]?.string
        addresses = json["addresses"]?.array ?? []
    }

    /// Whether it holds `address` on `channel`.
    func owns(_ address: String, on channel: ChannelKind) -> Bool {
        addresses.contains { $0["channel"]?.string == channel.orchestratorName && $0["address"]?.string == address }
    }

    /// Whether it has any address on `channel`.
    func isOn(_ channel: ChannelKind) -> Bool {
        addresses.contains { $0["channel"]?.string == channel.orchestratorName }
    }

    var isAgent: Bool { type == "AGENT" || type == "AI_AGENT" }
}

/// What a message carries besides its text: media by URL, a Content template, where Twilio reports
/// its delivery status (Messages API).
struct MessageExtras: Sendable, Equatable {
    var media: [String] = []
    var contentSid: String?
    var contentVariables: [String: String] = [:]
    var statusCallback: String?

    /// From a reply's or a start's JSON: `media` (URLs), `contentSid`, `contentVariables`.
    init(json: JSONValue?, statusCallback: String? = nil) {
        media = (json?["media"]?.array ?? []).compactMap { $0.string ?? $0["url"]?.string }
        contentSid = json?["contentSid"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        contentVariables = json?["contentVariables"]?.stringMap ?? [:]
        self.statusCallback = statusCallback
    }

    init(media: [String] = [], contentSid: String? = nil, contentVariables: [String: String] = [:], statusCallback: String? = nil) {
        self.media = media
        self.contentSid = contentSid
        self.contentVariables = contentVariables
        self.statusCallback = statusCallback
    }
}

/// The Conversation Orchestrator and Messages REST calls outbound makes (as TAC makes them: docs/architecture.md §6.4).
///
/// Ids go into paths percent-encoded, one segment each, so a crafted id cannot reach another resource.
struct ConversationsAPI: Sendable {
    let rest: TwilioRESTClient
    private var base: String { rest.configuration.conversationsBaseURL }

    private func segment(_ id: String) -> String { FormCoding.percentEncode(id) }

    /// A communication of a conversation, as the reconciliation of an unknown send reads it.
    struct Communication: Sendable {
        var id: String
        var authorParticipantId: String?
        var authorAddress: String?
        var text: String?
        var createdAt: Date?
    }

    /// The conversation's communications (one page of up to 100, as the API lists them).
    func communications(conversationId: String) async throws -> [Communication] {
        let response = try await rest.json(.GET, "\(base)/v2/Conversations/\(segment(conversationId))/Communications?pageSize=100")
        return (response.json?["communications"]?.array ?? []).compactMap { item in
            guard let id = item["id"]?.string else { return nil }
            return Communication(
                id: id, authorParticipantId: item["author"]?["participantId"]?.string, authorAddress: item["author"]?["address"]?.string,
                text: item["content"]?["text"]?.string, createdAt: item["createdAt"]?.string.flatMap(Timestamp.parse))
        }
    }

    /// A message the Messages API lists.
    struct SentMessage: Sendable {
        var sid: String
        var body: String?
        var dateCreated: Date?
    }

    /// The latest messages (a page of 100) from `from` to `to`. No `DateSent` filter: a message Twilio
    /// accepted but has not sent yet has no `date_sent`, and it is exactly the one looked for.
    func messages(from: String, to: String) async throws -> [SentMessage] {
        let query = FormCoding.encode([("To", to), ("From", from), ("PageSize", "100")])
        let url = "\(rest.configuration.apiBaseURL)/2010-04-01/Accounts/\(segment(rest.configuration.accountSid))/Messages.json?\(query)"
        let response = try await rest.json(.GET, url)
        return (response.json?["messages"]?.array ?? []).compactMap { item in
            guard let sid = item["sid"]?.string else { return nil }
            return SentMessage(sid: sid, body: item["body"]?.string, dateCreated: item["date_created"]?.string.flatMap(Timestamp.parseRFC2822))
        }
    }

    func participants(conversationId: String) async throws -> [Participant] {
        let response = try await rest.json(.GET, "\(base)/v2/Conversations/\(segment(conversationId))/Participants")
        return (response.json?["participants"]?.array ?? []).map(Participant.init(json:))
    }

    func addParticipant(conversationId: String, type: String, channel: ChannelKind, address: String) async throws -> Participant {
        let body: JSONValue = ["type": .string(type), "addresses": [["channel": .string(channel.orchestratorName), "address": .string(address)]]]
        let response = try await rest.json(.POST, "\(base)/v2/Conversations/\(segment(conversationId))/Participants", body: body)
        return Participant(json: response.json ?? .null)
    }

    /// Replaces a participant (PUT is a full replacement: name, addresses and profile are kept).
    func retype(_ participant: Participant, conversationId: String, to type: String, profileId: String?) async throws {
        var body: [String: JSONValue] = ["type": .string(type), "addresses": .array(participant.addresses)]
        if let name = participant.name { body["name"] = .string(name) }
        if let profile = profileId ?? participant.profileId { body["profileId"] = .string(profile) }
        _ = try await rest.json(
            .PUT, "\(base)/v2/Conversations/\(segment(conversationId))/Participants/\(segment(participant.id))", body: .object(body))
    }

    /// `SEND_MESSAGE` from the agent participant to the customer participant. Media go in
    /// `content.media[]` (`{url}` each), a Content template in `content.contentSid` and
    /// `content.contentVariables`.
    func sendMessage(
        conversationId: String, channel: ChannelKind, from agentId: String, to customerId: String, text: String, channelId: String?,
        extras: MessageExtras = MessageExtras(), idempotencyKey: String
    ) async throws -> String? {
        var content: [String: JSONValue] = ["text": .string(text)]
        if !extras.media.isEmpty { content["media"] = .array(extras.media.map { ["url": .string($0)] }) }
        if let contentSid = extras.contentSid {
            content["contentSid"] = .string(contentSid)
            if !extras.contentVariables.isEmpty { content["contentVariables"] = JSONValue(extras.contentVariables) }
        }
        var payload: [String: JSONValue] = [
            "from": ["participantId": .string(agentId), "channel": .string(channel.orchestratorName)],
            "to": [["participantId": .string(customerId), "channel": .string(channel.orchestratorName)]],
            "content": .object(content),
        ]
        if let channelId { payload["channelSettings"] = ["channelId": .string(channelId)] }
        let response = try await rest.json(
            .POST, "\(base)/v2/Conversations/\(segment(conversationId))/Actions", body: ["type": "SEND_MESSAGE", "payload": .object(payload)],
            headers: [("I-Twilio-Idempotency-Token", idempotencyKey)])
        return response.json?["id"]?.string
    }

    /// Creates a conversation with the customer and agent participants; on 409 (one exists for these
    /// participants) returns the existing id with `created: false`.
    ///
    /// On Chat, both addresses carry the `channelId` of the chat channel.
    func createConversation(
        configurationId: String, channel: ChannelKind, customer: String, agent: String, metadata: [String: String], channelId: String? = nil
    ) async throws -> (id: String, created: Bool) {
        func address(_ value: String) -> JSONValue {
            var fields: [String: JSONValue] = ["channel": .string(channel.orchestratorName), "address": .string(value)]
            if let channelId { fields["channelId"] = .string(channelId) }
            return .object(fields)
        }
        let body: JSONValue = [
            "configurationId": .string(configurationId),
            "participants": [
                ["type": "CUSTOMER", "addresses": [address(customer)]],
                ["type": "AI_AGENT", "addresses": [address(agent)]],
            ],
            "metadata": JSONValue(metadata),
        ]
        do {
            let response = try await rest.json(.POST, "\(base)/v2/Conversations", body: body)
            guard let id = response.json?["id"]?.string else { throw TwilioAPIError(status: response.status, message: "no conversation id") }
            return (id, true)
        } catch let error as TwilioAPIError where error.status == 409 {
            guard let existing = error.conflictingResourceId else {
                throw TwilioAPIError(status: 409, message: "conflict without X-Conflicting-Resource-Id")
            }
            _ = try? await rest.json(.PATCH, "\(base)/v2/Conversations/\(segment(existing))", body: ["metadata": JSONValue(metadata)])
            return (existing, false)
        }
    }

    /// Sets a conversation's status (`CLOSED` to undo a failed start).
    func setStatus(conversationId: String, status: String) async throws {
        _ = try await rest.json(.PUT, "\(base)/v2/Conversations/\(segment(conversationId))", body: ["status": .string(status)])
    }

    /// Stops the orchestrator's webhooks for a conversation (handoff: TAC gets no more events).
    func clearStatusCallbacks(conversationId: String) async throws {
        _ = try await rest.json(.PATCH, "\(base)/v2/Conversations/\(segment(conversationId))", body: ["configuration": ["statusCallbacks": []]])
    }

    /// Starts a Studio flow execution (the handoff of a messaging conversation to a person).
    func studioExecution(flowSid: String, to: String, from: String, parameters: String) async throws -> String? {
        let url = "\(rest.configuration.studioBaseURL)/v2/Flows/\(segment(flowSid))/Executions"
        let response = try await rest.form(.POST, url, fields: [("To", to), ("From", from), ("Parameters", parameters)])
        return response.json?["sid"]?.string
    }

    /// The Calls API with inline TwiML; returns the CallSid.
    func createCall(to: String, from: String, twiml: String, options: [(String, String)], idempotencyKey: String) async throws -> String {
        let url = "\(rest.configuration.apiBaseURL)/2010-04-01/Accounts/\(segment(rest.configuration.accountSid))/Calls.json"
        let response = try await rest.form(
            .POST, url, fields: [("To", to), ("From", from), ("Twiml", twiml)] + options, headers: [("I-Twilio-Idempotency-Token", idempotencyKey)])
        guard let sid = response.json?["sid"]?.string else { throw TwilioAPIError(status: response.status, message: "no call sid") }
        return sid
    }

    /// The Messages API, for classic numbers: `Body` (left out for a template, which Twilio requires
    /// outside WhatsApp's window), `MediaUrl` once per medium, `ContentSid` and `ContentVariables` (a
    /// JSON string), `StatusCallback` where Twilio posts the message's delivery status.
    func sendClassicMessage(from: String, to: String, body: String, extras: MessageExtras = MessageExtras(), idempotencyKey: String) async throws
        -> String?
    {
        let url = "\(rest.configuration.apiBaseURL)/2010-04-01/Accounts/\(segment(rest.configuration.accountSid))/Messages.json"
        var fields: [(String, String)] = [("To", to), ("From", from)]
        if let contentSid = extras.contentSid {
            fields.append(("ContentSid", contentSid))
            if !extras.contentVariables.isEmpty { fields.append(("ContentVariables", JSONValue(extras.contentVariables).compactJSON)) }
        } else if !body.isEmpty || extras.media.isEmpty {
            fields.append(("Body", body))
        }
        fields += extras.media.map { ("MediaUrl", $0) }
        if let callback = extras.statusCallback { fields.append(("StatusCallback", callback)) }
        let response = try await rest.form(.POST, url, fields: fields, headers: [("I-Twilio-Idempotency-Token", idempotencyKey)])
        return response.json?["sid"]?.string
    }
}
