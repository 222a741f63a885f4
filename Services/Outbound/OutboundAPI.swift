import AgentConnectCore
import EventBus
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import ServiceSupport
import Store
import TwilioKit

/// The app-facing API: start a messaging conversation or place a call.
///
/// Bearer-token protected (`OUTBOUND_API_TOKEN`; 401 without it). An `Idempotency-Key` header makes a
/// retried request answer the first one's result instead of sending twice (remembered 24 h, in Redis
/// in the service: ``IdempotencyRecords``).
struct OutboundAPI: Sendable {
    let configuration: OutboundConfiguration
    let api: ConversationsAPI
    /// Conversations, messages, delivery rows and opt-outs (``PostgresStore`` in the service).
    let store: any OutboundStore
    /// The `Idempotency-Key` records (Redis in the service).
    let keys: any IdempotencyRecords
    /// The placed calls' socket tokens (Redis in the service).
    let callTokens: any CallTokenIssuer
    let logger: Logger

    /// How long an `Idempotency-Key` is remembered: 24 h.
    static let idempotencyTTLSeconds = 86_400

    func add<Context: RequestContext>(to router: Router<Context>) {
        router.post("/v1/conversations") { request, _ in await guarded(request, route: "conversations", startConversation) }
        router.post("/v1/calls") { request, _ in await guarded(request, route: "calls", startCall) }
        router.post("/v1/calls/end") { request, _ in await guarded(request, route: "calls-end", endCall) }
        router.post("/v1/handoffs") { request, _ in await guarded(request, route: "handoffs", handoff) }
    }

    /// A 4xx answer with a reason.
    struct Rejection: Error {
        var status: HTTPResponse.Status
        var reason: String
    }

    private func guarded(_ request: Request, route: String, _ body: (JSONValue, String) async throws -> JSONValue) async -> Response {
        let header = request.headers[.authorization] ?? ""
        let expected = "Bearer \(configuration.apiToken)"
        guard header.utf8.count == expected.utf8.count, zip(header.utf8, expected.utf8).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else {
            return JSONResponse.error(.unauthorized, "missing or wrong bearer token")
        }
        guard let buffer = try? await request.body.collect(upTo: 64 << 10) else {
            return JSONResponse.error(.contentTooLarge, "body exceeds 64 KiB")
        }
        guard let input = try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer)), case .object = input else {
            return JSONResponse.error(.badRequest, "body must be a JSON object")
        }
        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!]
        let recordKey = idempotencyKey.map { RedisKeys.idempotency(route: route, key: $0) }
        if let recordKey {
            do {
                switch try await keys.claim(recordKey, ttlSeconds: Self.idempotencyTTLSeconds) {
                case .claimed:
                    break
                case .inProgress:
                    return JSONResponse.error(.conflict, "a request with this Idempotency-Key is still in progress")
                case .completed(let stored):
                    var response = JSONResponse.raw(.created, stored)
                    response.headers[HTTPField.Name("Idempotent-Replayed")!] = "true"
                    return response
                }
            } catch {
                return JSONResponse.error(.serviceUnavailable, "temporarily unavailable")
            }
        }
        do {
            let result = try await body(input, idempotencyKey ?? UUID().uuidString)
            let bytes = try JSONEncoder().encode(result)
            if let recordKey { try? await keys.complete(recordKey, response: Array(bytes), ttlSeconds: Self.idempotencyTTLSeconds) }
            return JSONResponse.bytes(.created, Array(bytes))
        } catch {
            if let recordKey { try? await keys.release(recordKey) }
            switch error {
            case let rejection as Rejection:
                return JSONResponse.error(rejection.status, rejection.reason)
            case let twilio as TwilioAPIError:
                logger.error("Twilio refused the outbound request", metadata: ["error": "\(twilio)"])
                return JSONResponse.error(.badGateway, "Twilio answered \(twilio.status)\(twilio.code.map { " (\($0))" } ?? "")")
            default:
                logger.error("outbound request failed", metadata: ["error": "\(error)"])
                return JSONResponse.error(.internalServerError, "could not start")
            }
        }
    }

    /// `from` when it is one of ours on the channel, else the default; a 400 names the allowed ones.
    func sender(_ requested: String?, channel: ChannelKind) throws -> String {
        let allowed = configuration.senders.addresses(for: channel)
        if let requested {
            guard allowed.contains(requested) else {
                throw Rejection(
                    status: .badRequest, reason: "from must be one of the configured \(channel.rawValue) senders: \(allowed.joined(separator: ", "))")
            }
            return requested
        }
        guard let fallback = allowed.first else {
            throw Rejection(status: .badRequest, reason: "no \(channel.rawValue) sender is configured")
        }
        return fallback
    }

    /// The orchestrator's limits: at most 8 keys with `direction`, keys `[A-Za-z0-9._-]{1,128}`, string values ≤ 512.
    static func metadata(_ value: JSONValue?) throws -> [String: String] {
        guard let value, value != .null else { return ["direction": "outbound"] }
        guard let object = value.object else { throw Rejection(status: .badRequest, reason: "metadata must be an object of strings") }
        var result: [String: String] = [:]
        for (key, item) in object where key != "direction" {
            guard let text = item.string else { throw Rejection(status: .badRequest, reason: "metadata.\(key) must be a string") }
            guard (1...128).contains(key.count), key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) else {
                throw Rejection(status: .badRequest, reason: "metadata keys must match [A-Za-z0-9._-]{1,128}")
            }
            guard text.count <= 512 else { throw Rejection(status: .badRequest, reason: "metadata.\(key) is longer than 512 characters") }
            result[key] = text
        }
        guard result.count <= 7 else { throw Rejection(status: .badRequest, reason: "metadata holds at most 7 keys besides direction") }
        result["direction"] = "outbound"
        return result
    }

    func record(_ text: String, replyId: String, conversationId: String, channel: ChannelKind, from: String) async {
        _ = try? await store.appendMessage(
            MessageRecord(id: replyId, conversationId: conversationId, channel: channel, direction: .outbound, authorAddress: from, body: text))
    }

    func count(_ kind: String) {
        Counter(label: "agentconnect_outbound_started_total", dimensions: [("kind", kind)]).increment()
    }
}
