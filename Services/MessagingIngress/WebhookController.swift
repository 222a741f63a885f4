import AgentConnectCore
import EventBus
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import ServiceSupport
import TwilioKit

/// `POST /webhook` and `POST /ci-webhook`: verify, classify, publish once, answer.
///
/// The hot path is parse, verify, one Redis round trip (an atomic dedup-and-append), answer: 200
/// only once the event is on the bus, 503 when Redis is unreachable so Twilio retries.
struct WebhookController: Sendable {
    let configuration: MessagingConfiguration
    let bus: any EventBus
    let logger: Logger
    private let verifier: TwilioRequestVerifier
    private let classifier: WebhookClassifier
    /// The metrics every accepted webhook records, made once (the metrics system is bootstrapped
    /// before the controller): `Counter(label:dimensions:)` per request asks the registry each time.
    private let acceptedCount = Counter(label: "agentconnect_webhooks_total", dimensions: [("outcome", "accepted")])
    private let acceptSeconds = Timer(label: "agentconnect_webhook_accept_seconds", dimensions: [("route", "/webhook")])

    init(configuration: MessagingConfiguration, bus: any EventBus, logger: Logger) {
        self.configuration = configuration
        self.bus = bus
        self.logger = logger
        verifier = TwilioRequestVerifier(authToken: configuration.authToken, publicDomain: configuration.publicDomain)
        classifier = WebhookClassifier(
            senders: configuration.senders, conversationConfigurationId: configuration.conversationConfigurationId,
            accountSid: configuration.accountSid)
    }

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.post("/webhook") { request, _ in await self.webhook(request) }
        router.post("/ci-webhook") { request, _ in await self.intelligenceWebhook(request) }
        router.post("/message-status") { request, _ in await self.messageStatus(request) }
    }

    /// One `webhook` span per request, continuing the caller's `traceparent` (else a new trace); its
    /// context is the published event's `traceparent`.
    private func webhook(_ request: Request) async -> Response {
        await Traces.withSpan("webhook", continuing: request.headers[HTTPField.Name("traceparent")!], kind: .server) { span in
            await webhook(request, traceparent: span.traceparent)
        }
    }

    private func webhook(_ request: Request, traceparent: String) async -> Response {
        let started = ContinuousClock.now
        let body: [UInt8]
        switch await readBody(request) {
        case .success(let bytes): body = bytes
        case .failure(let response): return response
        }
        // `I-Twilio-Idempotency-Token` is not signed: a replay can carry a fresh one, so it is never the dedup key.
        let decision: WebhookDecision
        if isForm(request) {
            guard let text = String(validating: body, as: UTF8.self), let fields = FormCoding.decodeStrict(text) else {
                return rejectUnsigned(request) ?? JSONResponse.error(.badRequest, "malformed form body")
            }
            guard verifier.verifyForm(request, params: fields) else { return forbidden("webhook") }
            decision = classifier.classifyClassicMessage(fields, traceparent: traceparent)
        } else {
            let bodyHash = TwilioSignature.bodyHash(body)
            guard verifier.verifyJSON(request, bodyHash: bodyHash) else { return forbidden("webhook") }
            guard let json = try? CompactJSON.decode(body) else {
                return JSONResponse.error(.badRequest, "body is not valid JSON")
            }
            decision = classifier.classifyOrchestratorEvent(json, bodyHash: bodyHash, traceparent: traceparent)
        }
        let response = await apply(decision)
        acceptSeconds.recordNanoseconds(Int64((ContinuousClock.now - started).nanoseconds))
        return response
    }

    /// Twilio's status callback for a reply sent through the Messages API (signed form).
    private func messageStatus(_ request: Request) async -> Response {
        let body: [UInt8]
        switch await readBody(request) {
        case .success(let bytes): body = bytes
        case .failure(let response): return response
        }
        guard let text = String(validating: body, as: UTF8.self), let fields = FormCoding.decodeStrict(text) else {
            return rejectUnsigned(request) ?? JSONResponse.error(.badRequest, "malformed form body")
        }
        guard verifier.verifyForm(request, params: fields) else { return forbidden("message-status") }
        let traceparent = Traceparent.continuing(request.headers[HTTPField.Name("traceparent")!]).description
        return await apply(classifier.classifyMessageStatus(fields, traceparent: traceparent))
    }

    private func intelligenceWebhook(_ request: Request) async -> Response {
        let body: [UInt8]
        switch await readBody(request) {
        case .success(let bytes): body = bytes
        case .failure(let response): return response
        }
        let bodyHash = TwilioSignature.bodyHash(body)
        guard verifier.verifyJSON(request, bodyHash: bodyHash) else { return forbidden("ci-webhook") }
        guard let json = try? CompactJSON.decode(body), case .object = json else {
            return JSONResponse.error(.badRequest, "body must be a JSON object")
        }
        guard let conversationId = json["conversationId"]?.string, !conversationId.isEmpty else {
            return JSONResponse.error(.badRequest, "missing conversationId")
        }
        let traceparent = Traceparent.continuing(request.headers[HTTPField.Name("traceparent")!]).description
        return await apply(
            classifier.classifyIntelligenceResult(
                json, conversationId: conversationId, bodyHash: bodyHash, traceparent: traceparent))
    }

    private func apply(_ decision: WebhookDecision) async -> Response {
        switch decision {
        case .reject(let reason):
            count("rejected")
            return JSONResponse.error(.badRequest, reason)
        case .ignore(let reason):
            logger.debug("webhook ignored", metadata: ["reason": "\(reason)"])
            count("ignored")
            return JSONResponse.raw(.ok, #"{"status":"ignored"}"#)
        case .drop(let reason, let isError):
            Counter(label: "agentconnect_webhook_dropped_total", dimensions: [("reason", reason)]).increment()
            if isError {
                Counter(label: "agentconnect_errors_total", dimensions: [("kind", "webhook_\(reason)")]).increment()
                logger.error("inbound message dropped", metadata: ["reason": "\(reason)"])
            } else {
                logger.debug("inbound message dropped", metadata: ["reason": "\(reason)"])
            }
            return JSONResponse.raw(.ok, #"{"status":"dropped"}"#)
        case .publish(let event, let dedupKey):
            let stream = Partitioner.inboundStream(for: event.conversationId, partitions: configuration.common.inboundPartitions)
            do {
                let outcome = try await bus.publish(event, to: stream, dedupKey: RedisKeys.dedup(dedupKey), ttlSeconds: configuration.dedupTTLSeconds)
                if outcome == .duplicate {
                    count("duplicate")
                    logger.info("duplicate webhook", metadata: ["conversation.id": "\(event.conversationId)", "event.id": "\(event.id)"])
                    return JSONResponse.raw(.ok, #"{"status":"duplicate"}"#)
                }
            } catch {
                count("unavailable")
                logger.error("bus unavailable; asking Twilio to retry", metadata: ["error": "\(error)"])
                return JSONResponse.error(.serviceUnavailable, "temporarily unavailable")
            }
            acceptedCount.increment()
            // Per message at debug, as outbound's "reply delivered": at info they cost 5–15% of a message's CPU.
            logger.debug(
                "webhook accepted",
                metadata: [
                    "event.type": "\(event.type)", "event.id": "\(event.id)", "conversation.id": "\(event.conversationId)",
                    "channel": "\(event.channel.rawValue)", "traceparent": "\(event.traceparent)",
                ])
            return JSONResponse.raw(.ok, #"{"status":"ok"}"#)
        }
    }

    private enum BodyResult {
        case success([UInt8])
        case failure(Response)
    }

    private func readBody(_ request: Request) async -> BodyResult {
        do {
            let buffer = try await request.body.collect(upTo: configuration.maxBodyBytes)
            return .success(Array(buffer: buffer))
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            count("too_large")
            return .failure(JSONResponse.error(.contentTooLarge, "body exceeds \(configuration.maxBodyBytes) bytes"))
        } catch {
            return .failure(JSONResponse.error(.badRequest, "could not read body"))
        }
    }

    /// Whether `Content-Type` names a form, in any case (compared as bytes: Foundation's `contains`
    /// went through `NSString` on every webhook).
    private func isForm(_ request: Request) -> Bool {
        guard let value = request.headers[.contentType] else { return false }
        return ASCII.contains(value.utf8, lowercased: "application/x-www-form-urlencoded".utf8)
    }

    /// Unsigned requests get 403 before any parsing error is revealed.
    private func rejectUnsigned(_ request: Request) -> Response? {
        TwilioRequestVerifier.signatureHeader(request) == nil ? forbidden("webhook") : nil
    }

    private func forbidden(_ route: String) -> Response {
        count("forbidden")
        logger.warning("invalid or missing Twilio signature", metadata: ["route": "\(route)"])
        return JSONResponse.error(.forbidden, "invalid Twilio signature")
    }

    private func count(_ outcome: String) {
        Counter(label: "agentconnect_webhooks_total", dimensions: [("outcome", outcome)]).increment()
    }
}
