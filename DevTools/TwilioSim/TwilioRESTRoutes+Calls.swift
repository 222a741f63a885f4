import AgentConnectCore
import Foundation
import Hummingbird
import ServiceSupport
import TwilioKit

/// The Calls API (`/2010-04-01/Accounts/{account}/Calls`): create and update.
extension TwilioRESTRoutes {
    /// The Calls API: answers `{sid}` at once; the call is then answered in the background.
    func createCall(_ incoming: Incoming) async throws -> Response {
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
    func updateCall(_ incoming: Incoming, sid: String) throws -> Response {
        let known = [sid, sid + ".live", sid + ".action"].contains { state.call($0) != nil }
        guard known else { throw SimError(404, "The requested resource /Calls/\(sid).json was not found") }
        guard let status = incoming.form["Status"], ["completed", "canceled"].contains(status) else {
            throw SimError(400, "Status must be completed or canceled")
        }
        state.recordCall(sid + ".status", ["callSid": .string(sid), "status": .string(status)])
        return JSONResponse.bytes(.ok, try encode(["sid": .string(sid), "status": .string(status)]))
    }
}
