import AgentConnectCore
import Foundation
import NIOConcurrencyHelpers
import TwilioKit

/// A REST request the sim received, as recorded for tests.
struct RecordedRequest: Sendable {
    var method: String
    var path: String
    var body: JSONValue
    var form: [String: String]
    var idempotencyToken: String?
    var at: Date
}

/// A message the sim delivered to a "customer" (a `SEND_MESSAGE` action or a Messages API call).
struct DeliveredMessage: Sendable {
    var id: String
    var conversationId: String?
    var channel: String
    var to: String
    var from: String
    var text: String
    var at: Date
    /// Orchestrated: the communication the action created, and the participants on either side.
    var communicationId: String? = nil
    var fromParticipantId: String? = nil
    var toParticipantId: String? = nil
    /// Media by URL, a Content template and its variables, as the send carried them.
    var media: [String] = []
    var contentSid: String? = nil
    var contentVariables: [String: String] = [:]
    /// Its delivery status (`sent`, `delivered`, `failed`, `undelivered`) and Twilio's error code.
    var status = "sent"
    var errorCode: Int? = nil

    /// As `GET /v2/Conversations/{id}/Communications` lists it.
    var communication: JSONValue {
        [
            "id": .string(communicationId ?? id), "conversationId": JSONValue(conversationId),
            "author": ["address": .string(from), "channel": .string(channel), "participantId": JSONValue(fromParticipantId)],
            "content": content,
            "recipients": [["address": .string(to), "channel": .string(channel), "participantId": JSONValue(toParticipantId)]],
            "createdAt": .string(Timestamp.iso8601(at)), "updatedAt": .string(Timestamp.iso8601(at)),
        ]
    }

    /// A communication's `content`: its text, media and template.
    var content: JSONValue {
        var fields: [String: JSONValue] = ["type": media.isEmpty ? "TEXT" : "MEDIA", "text": .string(text)]
        if !media.isEmpty { fields["media"] = .array(media.map { ["url": .string($0)] }) }
        if let contentSid { fields["contentSid"] = .string(contentSid) }
        return .object(fields)
    }

    /// As the Messages API lists it.
    var message: JSONValue {
        [
            "sid": .string(id), "to": .string(to), "from": .string(from), "body": .string(text), "status": .string(status),
            "direction": "outbound-api", "date_created": .string(Timestamp.rfc2822(at)), "date_sent": .string(Timestamp.rfc2822(at)),
            "num_media": .string(String(media.count)), "error_code": errorCode.map { .number(Double($0)) } ?? .null,
        ]
    }

    var json: JSONValue {
        [
            "id": .string(id), "conversationId": JSONValue(conversationId), "channel": .string(channel), "to": .string(to),
            "from": .string(from), "text": .string(text), "at": .string(Timestamp.iso8601(at)),
            "media": .array(media.map { .string($0) }), "contentSid": JSONValue(contentSid), "contentVariables": JSONValue(contentVariables),
            "status": .string(status), "errorCode": errorCode.map { .number(Double($0)) } ?? .null,
        ]
    }
}

/// Injected failures for the next REST calls.
struct Fault: Sendable {
    /// The answer's status; below 400 the request is served normally (after the delay).
    var status: Int
    /// How many requests it still applies to.
    var remaining: Int
    var delayMilliseconds: Int
    var retryAfter: Int?
    /// Serve the request first (the message is sent), then hold the answer for the delay: what a
    /// client that times out sees as "no answer" although Twilio accepted it.
    var afterAccept = false
    /// Applies to every `every`-th matching request only (1: each).
    var every = 1
    /// Applies only to requests whose path contains this.
    var pathContains: String?
    /// Matching requests seen so far.
    var seen = 0
}

/// Everything the sim remembers: conversations, participants, deliveries, requests, faults.
final class SimState: Sendable {
    /// Live events for the dev phone page.
    let events = SimEventHub()
    struct Conversation: Sendable {
        var id: String
        var status: String
        var channelId: String?
        var metadata: [String: String]
        var participants: [JSONValue]
        var createdAt: Date
        /// Cleared with `PATCH {configuration: {statusCallbacks: []}}` (handoff): no more webhooks.
        var callbacksCleared = false
    }

    private struct State {
        var conversations: [String: Conversation] = [:]
        var delivered: [DeliveredMessage] = []
        var requests: [RecordedRequest] = []
        var idempotency: [String: JSONValue] = [:]
        var faults: [Fault] = []
        var calls: [String: JSONValue] = [:]
        var sequence = 0
        /// Messages Twilio accepted but could not deliver (failed, undelivered): never reach the customer.
        var undelivered: [DeliveredMessage] = []
        /// When each customer address last wrote (WhatsApp's 24-hour window).
        var lastCustomerMessage: [String: Date] = [:]
        /// `agent|customer` pairs the customer opted out of (STOP).
        var optedOut: Set<String> = []
        /// Media the sim hosts, by media SID: content type and bytes.
        var media: [String: (contentType: String, bytes: [UInt8])] = [:]
        /// Recipients the sim cannot deliver to: the final status and Twilio's error code.
        var unreachable: [String: (status: String, errorCode: Int)] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// Distinguishes this sim run's ids from earlier runs' (PostgreSQL outlives the sim).
    private let run = String(UInt64.random(in: 1..<(1 << 48)), radix: 16)

    /// A new id: `prefix`, this run's tag, a sequence number (32 hex digits in all, like Twilio's).
    func nextId(_ prefix: String) -> String {
        let run = run
        return state.withLockedValue { state in
            state.sequence += 1
            let hex = run + String(state.sequence, radix: 16)
            return prefix + String(repeating: "0", count: max(0, 32 - hex.count)) + hex
        }
    }

    /// A new participant resource.
    func makeParticipant(conversationId: String, accountSid: String, type: String, addresses: [JSONValue]) -> JSONValue {
        [
            "id": .string(nextId("comms_participant_")), "conversationId": .string(conversationId), "accountId": .string(accountSid),
            "type": .string(type), "addresses": .array(addresses),
        ]
    }

    func record(_ request: RecordedRequest) {
        state.withLockedValue { $0.requests.append(request) }
    }

    var requests: [RecordedRequest] { state.withLockedValue { $0.requests } }

    /// The fault to apply to this call to `path`, if one is armed and matches.
    func takeFault(path: String) -> Fault? {
        state.withLockedValue { state in
            guard var fault = state.faults.first else { return nil }
            if let match = fault.pathContains, !path.contains(match) { return nil }
            fault.seen += 1
            guard fault.seen % fault.every == 0 else {
                state.faults[0] = fault
                return nil
            }
            fault.remaining -= 1
            if fault.remaining <= 0 { state.faults.removeFirst() } else { state.faults[0] = fault }
            return fault
        }
    }

    func arm(_ fault: Fault) {
        state.withLockedValue { $0.faults.append(fault) }
    }

    func clearFaults() {
        state.withLockedValue { $0.faults.removeAll() }
    }

    /// A cached response for a repeated idempotency token (only with `SIM_IDEMPOTENCY_CACHE=1`;
    /// Twilio's Messages and Calls APIs send a resent request again).
    func idempotent(_ token: String?, enabled: Bool) -> JSONValue? {
        guard enabled, let token else { return nil }
        return state.withLockedValue { $0.idempotency[token] }
    }

    func remember(_ token: String?, _ response: JSONValue, enabled: Bool) {
        guard enabled, let token else { return }
        state.withLockedValue { $0.idempotency[token] = response }
    }

    func upsert(_ conversation: Conversation) {
        state.withLockedValue { $0.conversations[conversation.id] = conversation }
    }

    func conversation(_ id: String) -> Conversation? {
        state.withLockedValue { $0.conversations[id] }
    }

    func update(_ id: String, _ body: (inout Conversation) -> Void) -> Conversation? {
        state.withLockedValue { state in
            guard var conversation = state.conversations[id] else { return nil }
            body(&conversation)
            state.conversations[id] = conversation
            return conversation
        }
    }

    var conversations: [Conversation] { state.withLockedValue { Array($0.conversations.values) } }

    /// Records a delivery.
    func deliver(_ message: DeliveredMessage) {
        state.withLockedValue { $0.delivered.append(message) }
        if case .object(var event) = message.json {
            event["kind"] = "agent.message"
            events.publish(.object(event))
        }
    }

    var delivered: [DeliveredMessage] { state.withLockedValue { $0.delivered } }

    /// Waits until something is delivered or the timeout passes.
    func waitForDelivery(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        let count = state.withLockedValue { $0.delivered.count }
        while ContinuousClock.now < deadline, state.withLockedValue({ $0.delivered.count }) == count {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Records what happened on a call the sim answered (Calls API).
    func recordCall(_ sid: String, _ value: JSONValue) {
        state.withLockedValue { $0.calls[sid] = value }
    }

    func call(_ sid: String) -> JSONValue? {
        state.withLockedValue { $0.calls[sid] }
    }

    /// A customer message: remembers when they wrote (the WhatsApp window) and an opt-out or opt-in
    /// keyword, as Twilio does before passing the message on.
    func customerWrote(from customer: String, to agent: String, text: String) {
        let keyword = MessageRules.optKeyword(text)
        state.withLockedValue { state in
            state.lastCustomerMessage[customer] = Date()
            switch keyword {
            case .optOut: state.optedOut.insert("\(agent)|\(customer)")
            case .optIn: state.optedOut.remove("\(agent)|\(customer)")
            case nil: break
            }
        }
    }

    /// Whether `customer` opted out of `agent` (STOP, not lifted by START).
    func isOptedOut(agent: String, customer: String) -> Bool {
        state.withLockedValue { $0.optedOut.contains("\(agent)|\(customer)") }
    }

    /// Whether `customer` wrote within WhatsApp's 24-hour window.
    func windowOpen(customer: String) -> Bool {
        state.withLockedValue { $0.lastCustomerMessage[customer] }.map { Date().timeIntervalSince($0) < MessageRules.whatsAppWindow } ?? false
    }

    /// Hosts a medium; returns its SID.
    func storeMedium(contentType: String, bytes: [UInt8]) -> String {
        let sid = "ME" + nextId("").suffix(32)
        state.withLockedValue { $0.media[sid] = (contentType, bytes) }
        return sid
    }

    func medium(_ sid: String) -> (contentType: String, bytes: [UInt8])? {
        state.withLockedValue { $0.media[sid] }
    }

    /// Makes sends to `address` end `status` (`undelivered`, `failed`) with `errorCode`; nil clears it.
    func setUnreachable(_ address: String, _ outcome: (status: String, errorCode: Int)?) {
        state.withLockedValue { $0.unreachable[address] = outcome }
    }

    func unreachable(_ address: String) -> (status: String, errorCode: Int)? {
        state.withLockedValue { $0.unreachable[address] }
    }

    /// Records a message Twilio accepted but did not deliver.
    func fail(_ message: DeliveredMessage) {
        state.withLockedValue { $0.undelivered.append(message) }
        if case .object(var event) = message.json {
            event["kind"] = "agent.status"
            events.publish(.object(event))
        }
    }

    var undelivered: [DeliveredMessage] { state.withLockedValue { $0.undelivered } }

    /// Sets a delivered message's status (the dev phone shows it under the message).
    func setStatus(_ id: String, _ status: String) {
        let updated = state.withLockedValue { state -> DeliveredMessage? in
            guard let index = state.delivered.firstIndex(where: { $0.id == id }) else { return nil }
            state.delivered[index].status = status
            return state.delivered[index]
        }
        if let updated, case .object(var event) = updated.json {
            event["kind"] = "agent.status"
            events.publish(.object(event))
        }
    }

    func reset() {
        state.withLockedValue { $0 = State() }
    }
}
