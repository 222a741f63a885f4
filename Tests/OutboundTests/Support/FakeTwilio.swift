import AgentConnectCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOConcurrencyHelpers
import TwilioKit

/// The Twilio REST calls outbound makes, held in the test process: a Hummingbird app on a free port
/// of localhost, reached through the service's own `TwilioRESTClient`.
///
/// Like Twilio's Messages API and Orchestrator actions, it does **not** deduplicate a resent request:
/// every send creates a message, whatever its `I-Twilio-Idempotency-Token`. A scripted ``Fault`` makes
/// the next sends fail as Twilio and networks do.
final class FakeTwilio: Sendable {
    /// How the next send (Messages API or `SEND_MESSAGE`) goes wrong.
    enum Fault: Sendable {
        /// Goes through as usual (to fail a later send).
        case succeed
        /// Answers `status` (with Twilio's error `code`); `created`: the message exists all the same
        /// (a 5xx after Twilio accepted it).
        case answer(status: Int, code: Int? = nil, created: Bool = false)
        /// Creates the message, then answers only once the test ends (the client times out first).
        case hold
    }

    /// One request as it arrived.
    struct Request: Sendable {
        var method: String
        var path: String
        var form: [(String, String)]
        var json: JSONValue?
        /// Header values by lower-case name.
        var headers: [String: String]

        /// The first form field named `name`.
        func field(_ name: String) -> String? { form.first { $0.0 == name }?.1 }
    }

    /// A message the Messages API created.
    struct Message: Sendable {
        var sid: String
        var from: String
        var to: String
        var body: String
        var created: Date
    }

    private struct State {
        var requests: [Request] = []
        var messages: [Message] = []
        var participants: [String: [JSONValue]] = [:]
        var communications: [String: [JSONValue]] = [:]
        var calls: Set<String> = []
        var faults: [Fault] = []
        var held: [CheckedContinuation<Void, Never>] = []
        var released = false
        var sequence = 0
    }

    private let state = NIOLockedValueBox(State())

    /// Every request so far, in order.
    var requests: [Request] { state.withLockedValue { $0.requests } }
    /// The messages the Messages API created, in order.
    var messages: [Message] { state.withLockedValue { $0.messages } }
    /// The `SEND_MESSAGE` communications of a conversation, in order.
    func communications(_ conversationId: String) -> [JSONValue] { state.withLockedValue { $0.communications[conversationId] ?? [] } }
    /// Sends (Messages API and `SEND_MESSAGE`) that reached the fake, whatever their answer.
    var sendRequests: [Request] {
        requests.filter { $0.method == "POST" && ($0.path.hasSuffix("/Messages.json") || $0.path.hasSuffix("/Actions")) }
    }

    /// Queues faults for the next sends, in order.
    func fail(_ faults: Fault...) { state.withLockedValue { $0.faults += faults } }

    /// A conversation's participants as Twilio would list them.
    func setParticipants(_ conversationId: String, _ participants: [JSONValue]) {
        state.withLockedValue { $0.participants[conversationId] = participants }
    }

    /// Runs `body` with the base URL of a live fake; held answers are released when it ends.
    func run<Value: Sendable>(_ body: @Sendable (String) async throws -> Value) async throws -> Value {
        let router = Router()
        for method in [HTTPRequest.Method.get, .post, .put, .patch] {
            router.on("**", method: method) { request, _ in try await self.handle(request) }
        }
        var logger = Logger(label: "fake-twilio")
        logger.logLevel = .warning
        return try await Application(router: router, logger: logger).test(.live) { client in
            defer { releaseHeld() }
            return try await body("http://localhost:\(client.port ?? 0)")
        }
    }

    private func releaseHeld() {
        let held = state.withLockedValue { state in
            state.released = true
            defer { state.held = [] }
            return state.held
        }
        for continuation in held { continuation.resume() }
    }

    private func nextId(_ prefix: String) -> String {
        state.withLockedValue { state in
            state.sequence += 1
            return prefix + String(format: "%032x", state.sequence)
        }
    }

    private func handle(_ request: Request, raw: Hummingbird.Request) async throws -> Response {
        let parts = request.path.split(separator: "/").map(String.init)
        switch (request.method, parts.count, parts.last ?? "") {
        case ("POST", 4, "Messages.json"):
            return try await send(request) { sid in
                let message = Message(
                    sid: sid, from: request.field("From") ?? "", to: request.field("To") ?? "", body: request.field("Body") ?? "", created: Date())
                state.withLockedValue { $0.messages.append(message) }
            }
        case ("GET", 4, "Messages.json"):
            let query = raw.uri.queryParameters
            let listed = messages.reversed().filter { $0.to == query["To"].map(String.init) && $0.from == query["From"].map(String.init) }
            let items: [JSONValue] = listed.map {
                ["sid": .string($0.sid), "body": .string($0.body), "date_created": .string(Timestamp.rfc2822($0.created))]
            }
            return Self.json(.ok, ["messages": .array(items)])
        case ("POST", 4, "Calls.json"):
            let sid = nextId("CA")
            state.withLockedValue { _ = $0.calls.insert(sid) }
            return Self.json(.created, ["sid": .string(sid)])
        case ("POST", 5, let file) where parts[3] == "Calls":
            let known = state.withLockedValue { $0.calls.contains(String(file.dropLast(5))) }
            return known ? Self.json(.ok, [:]) : Self.json(.notFound, ["code": 20404, "message": "not found"])
        case ("POST", 2, "Conversations"):
            let id = nextId("CO")
            let participants = (request.json?["participants"]?.array ?? []).map { item -> JSONValue in
                var participant = item.object ?? [:]
                participant["id"] = .string(nextId("PA"))
                return .object(participant)
            }
            setParticipants(id, participants)
            return Self.json(.created, ["id": .string(id)])
        case ("GET", 4, "Participants"):
            return Self.json(.ok, ["participants": .array(state.withLockedValue { $0.participants[parts[2]] ?? [] })])
        case ("POST", 4, "Participants"):
            var participant = request.json?.object ?? [:]
            participant["id"] = .string(nextId("PA"))
            state.withLockedValue { $0.participants[parts[2], default: []].append(.object(participant)) }
            return Self.json(.created, .object(participant))
        case ("PUT", 5, let id) where parts[3] == "Participants":
            var participant = request.json?.object ?? [:]
            participant["id"] = .string(id)
            state.withLockedValue { state in
                state.participants[parts[2]] = (state.participants[parts[2]] ?? []).map { $0["id"]?.string == id ? .object(participant) : $0 }
            }
            return Self.json(.ok, .object(participant))
        case ("POST", 4, "Actions"):
            let payload = request.json?["payload"]
            return try await send(request) { id in
                let communication: JSONValue = [
                    "id": .string(id), "author": ["participantId": payload?["from"]?["participantId"] ?? .null],
                    "recipients": payload?["to"] ?? .null, "content": payload?["content"] ?? .null,
                    "createdAt": .string(Timestamp.iso8601(Date())),
                ]
                state.withLockedValue { $0.communications[parts[2], default: []].append(communication) }
            }
        case ("GET", 4, "Communications"):
            return Self.json(.ok, ["communications": .array(communications(parts[2]))])
        case ("POST", 4, "Executions"):
            return Self.json(.created, ["sid": .string(nextId("FN"))])
        case ("PUT", 3, _), ("PATCH", 3, _):
            return Self.json(.ok, [:])
        default:
            return Self.json(.notFound, ["code": 20404, "message": .string("the fake does not serve \(request.method) \(request.path)")])
        }
    }

    /// A send: the next fault, if any, else created (`create` with the new id) and answered 201.
    private func send(_ request: Request, create: (String) -> Void) async throws -> Response {
        let fault = state.withLockedValue { $0.faults.isEmpty ? nil : $0.faults.removeFirst() }
        let id = nextId(request.path.hasSuffix("/Actions") ? "CM" : "SM")
        switch fault {
        case .none, .succeed?:
            create(id)
            return Self.json(.created, ["sid": .string(id), "id": .string(id)])
        case .answer(let status, let code, let created)?:
            if created { create(id) }
            return Self.json(
                HTTPResponse.Status(code: status),
                ["code": code.map { .number(Double($0)) } ?? .null, "message": .string("fake Twilio answered \(status)")])
        case .hold?:
            create(id)
            await withCheckedContinuation { continuation in
                let released = state.withLockedValue { state in
                    if !state.released { state.held.append(continuation) }
                    return state.released
                }
                if released { continuation.resume() }
            }
            return Self.json(.created, ["sid": .string(id), "id": .string(id)])
        }
    }

    private func handle(_ raw: Hummingbird.Request) async throws -> Response {
        let buffer = try await raw.body.collect(upTo: 1 << 20)
        let text = String(buffer: buffer)
        let isJSON = raw.headers[.contentType]?.hasPrefix("application/json") ?? false
        var headers: [String: String] = [:]
        for field in raw.headers { headers[field.name.canonicalName] = field.value }
        let request = Request(
            method: raw.method.rawValue, path: raw.uri.path, form: isJSON ? [] : FormCoding.decode(text),
            json: isJSON ? try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) : nil, headers: headers)
        state.withLockedValue { $0.requests.append(request) }
        return try await handle(request, raw: raw)
    }

    private static func json(_ status: HTTPResponse.Status, _ body: JSONValue) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body.compactJSON)))
    }
}
