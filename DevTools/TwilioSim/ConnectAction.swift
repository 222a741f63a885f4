import AgentConnectCore
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RelayCaller
import TwilioKit

/// What Twilio does when a ConversationRelay session ends (the `<Connect action>`): it posts the
/// session's outcome to the action URL — `CallStatus` (`in-progress` when the app ended the session
/// with an `end` message, `completed` when the caller hung up), `SessionStatus`, `SessionId` and,
/// after an `end` with `handoffData`, `HandoffData` — and, while the call is still up, executes the
/// TwiML it answers. The sim follows what a handoff answers: a `<Redirect>` to a Studio flow's webhook
/// (`https://webhooks.twilio.com/v1/Accounts/{AccountSid}/Flows/{FlowSid}`: the flow is entered
/// with the URL's query parameters, as Studio documents for its TwiML Redirect), `<Dial>` (a number
/// or SIP address is rung) or `<Enqueue>` (a TaskRouter task is created with the `<Task>` attributes).
/// The outcome is kept as `GET /sim/calls/{sid}.action`.
struct ConnectAction: Sendable {
    let state: SimState
    let configuration: SimConfiguration
    let logger: Logger

    func follow(twiml: String, transcript: RelayCaller.Transcript, from: String, to: String, direction: String) async {
        guard let action = RelayCaller.attribute("action", in: twiml) else { return }
        let end = transcript.otherFrames.last { $0["type"]?.string == "end" }
        var fields: [(String, String)] = [
            ("AccountSid", configuration.accountSid), ("CallSid", transcript.callSid), ("From", from), ("To", to), ("Direction", direction),
            ("CallStatus", end == nil ? "completed" : "in-progress"), ("SessionId", "VX" + transcript.callSid.dropFirst(2)),
            ("SessionStatus", "ended"),
        ]
        if let data = end?["handoffData"]?.string { fields.append(("HandoffData", data)) }
        var outcome: [String: JSONValue] = ["actionURL": .string(action), "posted": JSONValue(Dictionary(fields, uniquingKeysWith: { a, _ in a }))]
        do {
            var request = HTTPClientRequest(url: configuration.voiceURL + URLPathOf.path(action))
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.headers.add(
                name: "X-Twilio-Signature", value: TwilioSignature(authToken: configuration.authToken).compute(url: action, params: fields))
            request.body = .bytes(ByteBuffer(string: FormCoding.encode(fields)))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(15))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            outcome["status"] = .number(Double(response.status.code))
            outcome["twiml"] = .string(body)
            if end != nil, response.status.code == 200 { outcome["next"] = Self.execute(body) }
        } catch {
            outcome["error"] = .string("\(error)")
        }
        state.recordCall(transcript.callSid + ".action", .object(outcome))
    }

    /// What the call does with the action's TwiML (the verbs a handoff uses).
    static func execute(_ twiml: String) -> JSONValue {
        if let url = element("Redirect", in: twiml) {
            guard let studio = url.range(of: "https://webhooks.twilio.com/v1/Accounts/") else { return ["verb": "Redirect", "url": .string(url)] }
            let rest = url[studio.upperBound...]
            let parts = rest.split(separator: "?", maxSplits: 1)
            let path = parts.first?.split(separator: "/") ?? []
            let query = parts.count > 1 ? FormCoding.decode(String(parts[1])) : []
            guard path.count >= 3, path[1] == "Flows" else { return ["verb": "Redirect", "url": .string(url)] }
            return [
                "verb": "Redirect", "studio": true, "accountSid": .string(String(path[0])), "flowSid": .string(String(path[2])),
                "flowParameters": JSONValue(Dictionary(query, uniquingKeysWith: { a, _ in a })),
            ]
        }
        if let number = element("Number", in: twiml) { return ["verb": "Dial", "number": .string(number)] }
        if let sip = element("Sip", in: twiml) { return ["verb": "Dial", "sip": .string(sip)] }
        if twiml.contains("<Enqueue") {
            return [
                "verb": "Enqueue", "workflowSid": JSONValue(RelayCaller.attribute("workflowSid", in: twiml)),
                "task": JSONValue(element("Task", in: twiml)), "queue": JSONValue(element("Enqueue", in: twiml)),
            ]
        }
        return ["verb": twiml.contains("<Hangup") || !twiml.contains("<Response>") ? "Hangup" : "Other"]
    }

    /// The unescaped text of the first `<name …>text</name>`.
    static func element(_ name: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(name)"), let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex),
            let start = xml[open.upperBound..<close.lowerBound].firstIndex(of: ">")
        else { return nil }
        let inner = String(xml[xml.index(after: start)..<close.lowerBound])
        guard !inner.contains("<") else { return nil }
        return inner.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// The path and query of a URL (`https://host/a?b` → `/a?b`).
enum URLPathOf {
    static func path(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        return rest.firstIndex(of: "/").map { String(rest[$0...]) } ?? "/"
    }
}
