import AgentConnectCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceSupport
import TwilioKit

/// The Twilio REST endpoints the services call (as TAC calls them, docs/architecture.md §6.4, and the Messages API), with fault injection.
/// The endpoints live by API: `+Orchestrator` (Conversations), `+Messages`, `+Calls`.
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
        let decoded =
            header.hasPrefix("Basic ")
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
        state.record(
            RecordedRequest(method: request.method.rawValue, path: request.uri.path, body: json, form: form, idempotencyToken: token, at: Date()))
        let fault = state.takeFault(path: request.uri.path)
        if let fault, !fault.afterAccept {
            if fault.delayMilliseconds > 0 { try? await Task.sleep(for: .milliseconds(fault.delayMilliseconds)) }
            if fault.status >= 400 {
                var response = JSONResponse.raw(
                    HTTPResponse.Status(code: fault.status),
                    #"{"code":\#(fault.status == 429 ? 20429 : 20500),"message":"injected fault","status":\#(fault.status)}"#)
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
            let body: JSONValue = [
                "code": .number(Double(error.code ?? error.status * 100)), "message": .string(error.message), "status": .number(Double(error.status)),
            ]
            return JSONResponse.raw(HTTPResponse.Status(code: error.status), body.compactJSON)
        } catch {
            return JSONResponse.raw(.internalServerError, #"{"code":20500,"message":"internal error","status":500}"#)
        }
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
