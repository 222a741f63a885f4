import AgentConnectCore
import Foundation

/// Where a voice handoff goes: the TwiML the `<Connect action>` callback answers once the agent
/// ended the session with `handoffData` (ConversationRelay then continues the call with it).
package enum HandoffDestination: Sendable, Equatable {
    /// A Studio flow (`FW…`), entered the way Twilio documents for a call: `<Redirect>` to the flow's
    /// webhook URL, the handoff data and reason in its query (Studio reads query parameters into the flow).
    case studio(accountSid: String, flowSid: String)
    /// A phone number or a SIP address (`sip:…`): `<Dial>`. A SIP address carries the handoff data in
    /// `X-` headers; a phone number carries none (it stays on the conversation).
    case dial(String)
    /// A TaskRouter workflow (`WW…`): `<Enqueue workflowSid>` with the handoff data in the `<Task>` attributes.
    case workflow(String)
    /// A named queue: `<Enqueue>name</Enqueue>`.
    case queue(String)

    /// `VOICE_HANDOFF_TO`: `studio`, `+1…`, `sip:…`, `workflow:WW…` or `queue:<name>`; `studio` needs
    /// the account and flow SIDs. Nil (the call ends after the handoff) when unset and there is no flow.
    package static func parse(_ value: String?, accountSid: String?, studioFlowSid: String?) throws -> HandoffDestination? {
        let value = value?.trimmingCharacters(in: .whitespaces) ?? ""
        if value.isEmpty || value == "studio" {
            guard let studioFlowSid, let accountSid else {
                if value.isEmpty { return nil }
                throw ConfigurationError(variable: "VOICE_HANDOFF_TO", reason: "studio needs TWILIO_STUDIO_HANDOFF_FLOW_SID and TWILIO_ACCOUNT_SID")
            }
            return .studio(accountSid: accountSid, flowSid: studioFlowSid)
        }
        if value.hasPrefix("workflow:"), value.count > 9 { return .workflow(String(value.dropFirst(9))) }
        if value.hasPrefix("queue:"), value.count > 6 { return .queue(String(value.dropFirst(6))) }
        if value.hasPrefix("sip:") || (value.hasPrefix("+") && value.dropFirst().allSatisfy(\.isNumber) && value.count > 4) { return .dial(value) }
        throw ConfigurationError(variable: "VOICE_HANDOFF_TO", reason: "must be studio, +<number>, sip:<address>, workflow:WW… or queue:<name>")
    }

    /// The TwiML that hands the call over. `handoffData` is the `end` frame's string (JSON by TAC's
    /// convention: `{conversationId, profileId, attributes:{reason,…}}`), `reason` its `attributes.reason`.
    package func twiml(handoffData: String, reason: String?, conversationId: String?) -> String {
        var body: String
        switch self {
        case .studio(let accountSid, let flowSid):
            var query: [(String, String)] = [("HandoffData", handoffData)]
            if let reason { query.append(("HandoffReason", reason)) }
            if let conversationId { query.append(("ConversationId", conversationId)) }
            let url = "https://webhooks.twilio.com/v1/Accounts/\(accountSid)/Flows/\(flowSid)?" + FormCoding.encode(query)
            body = #"<Redirect method="POST">\#(TwiMLBuilder.escape(url))</Redirect>"#
        case .dial(let target):
            if target.hasPrefix("sip:") {
                var headers: [(String, String)] = []
                if let reason { headers.append(("X-Handoff-Reason", String(reason.prefix(200)))) }
                if let conversationId { headers.append(("X-Conversation-Id", conversationId)) }
                let uri = headers.isEmpty ? target : target + (target.contains("?") ? "&" : "?") + FormCoding.encode(headers)
                body = "<Dial><Sip>\(TwiMLBuilder.escape(uri))</Sip></Dial>"
            } else {
                body = "<Dial><Number>\(TwiMLBuilder.escape(target))</Number></Dial>"
            }
        case .workflow(let workflowSid):
            var attributes: [String: JSONValue] = ["handoffData": .string(handoffData)]
            if let parsed = try? JSONDecoder().decode(JSONValue.self, from: Data(handoffData.utf8)), case .object = parsed {
                attributes["handoffData"] = parsed
            }
            attributes["reason"] = JSONValue(reason)
            attributes["conversationId"] = JSONValue(conversationId)
            body =
                #"<Enqueue workflowSid="\#(TwiMLBuilder.escape(workflowSid))"><Task>\#(TwiMLBuilder.escape(JSONValue.object(attributes).compactJSON))</Task></Enqueue>"#
        case .queue(let name):
            body = "<Enqueue>\(TwiMLBuilder.escape(name))</Enqueue>"
        }
        return #"<?xml version="1.0" encoding="UTF-8"?><Response>\#(body)</Response>"#
    }
}
