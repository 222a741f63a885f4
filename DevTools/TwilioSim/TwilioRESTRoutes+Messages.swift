import AgentConnectCore
import Foundation
import Hummingbird
import ServiceSupport
import TwilioKit

/// The Messages API (`/2010-04-01/Accounts/{account}/Messages.json`): send and list.
extension TwilioRESTRoutes {
    /// The Messages API: `Body` (at most 1,600 characters, else 21617), `MediaUrl` (repeated, at most
    /// 10), `ContentSid`/`ContentVariables`, `StatusCallback`. A recipient who opted out is refused
    /// (21610). Accepted messages answer `queued`; then, as Twilio, the status callbacks follow: `sent`
    /// and `delivered`, or `failed` with 63016 for free-form WhatsApp outside the 24-hour window, or the
    /// outcome set for an unreachable recipient (`/sim/recipients`).
    func message(_ incoming: Incoming) async throws -> Response {
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
        guard incoming.form["Body"] != nil || !media.isEmpty || contentSid != nil else {
            throw SimError(400, "Message body is required.", code: 21602)
        }
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
        message.contentVariables =
            incoming.form["ContentVariables"].flatMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }?.stringMap ?? [:]
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
    func listMessages(_ incoming: Incoming) throws -> Response {
        let query = Dictionary(FormCoding.decode(incoming.request.uri.query ?? ""), uniquingKeysWith: { a, _ in a })
        let day = query["DateSent>"] ?? query["DateSent>="]
        let dayStart = try day.map { text -> Date in
            guard let date = try? Date(text + "T00:00:00Z", strategy: .iso8601) else { throw SimError(400, "DateSent must be YYYY-MM-DD") }
            return date
        }
        let pageSize = min(1000, max(1, Int(query["PageSize"] ?? "") ?? 50))
        let matches = state.delivered.filter { message in
            message.conversationId == nil && (query["To"] == nil || message.to == query["To"])
                && (query["From"] == nil || message.from == query["From"])
                && (dayStart.map { message.at >= $0 } ?? true)
        }
        let page = matches.reversed().prefix(pageSize).map(\.message)
        let body: JSONValue = ["messages": .array(Array(page)), "page_size": .number(Double(pageSize)), "next_page_uri": .null]
        return JSONResponse.bytes(.ok, try encode(body))
    }
}
