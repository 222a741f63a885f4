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
/// retried request answer the first one's result instead of sending twice (remembered 24 h in Redis).
struct OutboundAPI: Sendable {
    let configuration: OutboundConfiguration
    let api: ConversationsAPI
    let store: PostgresStore
    let redis: RedisClient
    let logger: Logger

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
        let redisKey = idempotencyKey.map { "tac:idem:\(route):\($0)" }
        if let redisKey {
            do {
                let claimed = try await redis.command("SET", .string(redisKey), "pending", "NX", "EX", "86400")
                if claimed != .status("OK") {
                    let stored = try await redis.command("GET", .string(redisKey)).string ?? "pending"
                    guard stored != "pending" else {
                        return JSONResponse.error(.conflict, "a request with this Idempotency-Key is still in progress")
                    }
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
            if let redisKey { _ = try? await redis.command("SET", .string(redisKey), .bytes(Array(bytes)), "EX", "86400") }
            return JSONResponse.bytes(.created, Array(bytes))
        } catch {
            if let redisKey { _ = try? await redis.command("DEL", .string(redisKey)) }
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

    /// `{channel, to, from?, message, metadata?}` → `{conversationId}`.
    private func startConversation(_ input: JSONValue, idempotencyKey: String) async throws -> JSONValue {
        guard let name = input["channel"]?.string?.lowercased(), let channel = ChannelKind(rawValue: name), channel.isMessaging else {
            throw Rejection(status: .badRequest, reason: "channel must be sms, whatsapp, rcs or chat")
        }
        guard let to = input["to"]?.string?.trimmingCharacters(in: .whitespaces), !to.isEmpty else {
            throw Rejection(status: .badRequest, reason: "to is required")
        }
        let extras = try Self.messageExtras(input)
        let message = input["message"]?.string ?? ""
        guard !message.allSatisfy(\.isWhitespace) || extras.contentSid != nil || !extras.media.isEmpty else {
            throw Rejection(status: .badRequest, reason: "message is required (or contentSid, or media)")
        }
        let from = try sender(input["from"]?.string, channel: channel)
        var metadata = try Self.metadata(input["metadata"])
        let channelId = input["channelId"]?.string ?? (channel == .chat ? configuration.chatChannelId : nil)
        if channel == .chat {
            guard let channelId else {
                throw Rejection(status: .badRequest, reason: "a chat conversation needs channelId (or TWILIO_CHAT_CHANNEL_ID)")
            }
            metadata["channel_id"] = channelId
        }
        try await checkMessagingRules(channel: channel, from: from, to: to, extras: extras)
        let replyId = "outbound:\(idempotencyKey)"
        if let configurationId = configuration.conversationConfigurationId {
            let (conversationId, created) = try await api.createConversation(
                configurationId: configurationId, channel: channel, customer: to, agent: from, metadata: metadata, channelId: channelId)
            do {
                let participants = try await api.participants(conversationId: conversationId)
                guard let customer = participants.first(where: { $0.type == "CUSTOMER" && $0.owns(to, on: channel) }),
                    let agent = participants.first(where: { $0.isAgent && $0.owns(from, on: channel) })
                else {
                    throw TwilioAPIError(status: 0, message: "participants not found after creating the conversation")
                }
                try await store.upsertConversation(
                    ConversationRecord(
                        id: conversationId, channel: channel, direction: "outbound", customerAddress: to, agentAddress: from,
                        customerParticipantId: customer.id, agentParticipantId: agent.id,
                        metadata: metadata.merging([ParticipantReconciler.reconciledKey: "1", "mode": "orchestrator"]) { $1 }))
                _ = try await api.sendMessage(
                    conversationId: conversationId, channel: channel, from: agent.id, to: customer.id, text: message,
                    channelId: channelId, extras: extras, idempotencyKey: replyId)
            } catch {
                if created { try? await api.setStatus(conversationId: conversationId, status: "CLOSED") }
                throw error
            }
            await record(message, replyId: replyId, conversationId: conversationId, channel: channel, from: from)
            count("conversation")
            return ["conversationId": .string(conversationId), "channel": .string(channel.rawValue), "direction": "outbound"]
        }
        let conversationId = classicConversationId(channel: channel, agent: from, customer: to)
        try await store.upsertConversation(
            ConversationRecord(
                id: conversationId, channel: channel, direction: "outbound", customerAddress: to, agentAddress: from,
                metadata: metadata.merging(["mode": "classic"]) { $1 }))
        var classicExtras = extras
        classicExtras.statusCallback = configuration.statusCallbackURL
        let sid = try await api.sendClassicMessage(from: from, to: to, body: message, extras: classicExtras, idempotencyKey: replyId)
        if let sid {
            // The first message's delivery row, so its status callbacks find it (as a reply's do).
            _ = try? await store.claimDelivery(
                replyId: replyId, conversationId: conversationId, channel: channel, textHash: ReplyDeliverer.textHash(message), owner: "outbound-api",
                leaseMilliseconds: 1000)
            try? await store.markDelivered(replyId: replyId, providerId: sid)
        }
        await record(message, replyId: replyId, conversationId: conversationId, channel: channel, from: from)
        count("conversation")
        return ["conversationId": .string(conversationId), "channel": .string(channel.rawValue), "direction": "outbound"]
    }

    /// `media` (URLs, at most 10), `contentSid` and `contentVariables` (an object of strings) of a start.
    static func messageExtras(_ input: JSONValue) throws -> MessageExtras {
        let extras = MessageExtras(json: input)
        guard extras.media.count <= MessageRules.maxMediaPerMessage else {
            throw Rejection(status: .badRequest, reason: "at most \(MessageRules.maxMediaPerMessage) media per message")
        }
        guard extras.media.allSatisfy({ $0.hasPrefix("https://") || $0.hasPrefix("http://") }) else {
            throw Rejection(status: .badRequest, reason: "media must be http(s) URLs")
        }
        if input["contentVariables"] != nil, input["contentVariables"] != .null, extras.contentSid == nil {
            throw Rejection(status: .badRequest, reason: "contentVariables need a contentSid (Twilio error 21654)")
        }
        return extras
    }

    /// Twilio's messaging rules, checked before anything is sent: a body of at most 1,600 characters
    /// (else 21617), no message to a customer who opted out (21610), and on WhatsApp a free-form
    /// message only within 24 hours of the customer's last message — outside it, a template (63016).
    private func checkMessagingRules(channel: ChannelKind, from: String, to: String, extras: MessageExtras) async throws {
        guard channel != .chat else { return }
        if try await store.isOptedOut(agent: from, customer: to) {
            throw Rejection(status: .conflict, reason: "\(Masking.maskPhoneNumbers(to)) opted out (STOP) of messages from this sender; Twilio would refuse with error 21610")
        }
        guard channel == .whatsapp, extras.contentSid == nil else { return }
        let last = try await store.lastInboundMessageAt(customerAddress: to, channel: .whatsapp)
        guard let last, Date().timeIntervalSince(last) < MessageRules.whatsAppWindow else {
            let since = last.map { "the customer last wrote \(Int(Date().timeIntervalSince($0) / 3600)) h ago" } ?? "the customer has not written yet"
            throw Rejection(
                status: .conflict,
                reason: "WhatsApp's 24-hour customer-service window is closed (\(since)): start with an approved template (contentSid, contentVariables); a free-form message would fail with Twilio error 63016")
        }
    }

    /// `{to, from?, welcomeGreeting?, twiml?, websocketURL?, actionURL?, callOptions?}` → `{callSid}`.
    ///
    /// The TwiML is the one inbound calls get (``ConversationRelaySettings``: every
    /// `CONVERSATION_RELAY_*` attribute, `<Language>` and `<Parameter>`), with the request's `twiml`
    /// options (``ConversationRelayOptions``) and `welcomeGreeting` on top. The socket URL (by default
    /// `wss://<TWILIO_VOICE_PUBLIC_DOMAIN>/ws`) carries a single-use token (``RelayCallTokens``),
    /// bound to the CallSid once Twilio returns it; voice-relay accepts the call's socket only with it.
    /// `actionURL` defaults to `https://<domain>/conversation-relay-callback`.
    private func startCall(_ input: JSONValue, idempotencyKey: String) async throws -> JSONValue {
        guard let domain = configuration.voicePublicDomain else {
            throw Rejection(status: .serviceUnavailable, reason: "voice is not configured (TWILIO_VOICE_PUBLIC_DOMAIN)")
        }
        guard let to = input["to"]?.string?.trimmingCharacters(in: .whitespaces), !to.isEmpty else {
            throw Rejection(status: .badRequest, reason: "to is required")
        }
        let from = try sender(input["from"]?.string, channel: .voice)
        let options = try Self.callOptions(input["callOptions"], domain: domain)
        var settings = configuration.relay
        if let twiml = input["twiml"], twiml != .null {
            guard let data = try? JSONEncoder().encode(twiml), let parsed = try? JSONDecoder().decode(ConversationRelayOptions.self, from: data) else {
                throw Rejection(status: .badRequest, reason: "twiml must be an object of <ConversationRelay> options (voice, language, languages, parameters, …)")
            }
            var parsedOptions = parsed
            parsedOptions.parameters?["conversationId"] = nil
            settings = settings.applying(parsedOptions)
        }
        settings.set("welcomeGreeting", input["welcomeGreeting"]?.string)
        if let configurationId = configuration.conversationConfigurationId { settings.set("conversationConfiguration", configurationId) }
        let socketBase = try Self.url(input["websocketURL"], scheme: "wss://", default: "wss://\(domain)/ws")
        let actionURL = try Self.url(input["actionURL"], scheme: "https://", default: "https://\(domain)/conversation-relay-callback")
        let tokens = RelayCallTokens(redis: redis)
        let token = try await tokens.mint(callSid: nil, conversationId: nil)
        let twiml = TwiMLBuilder(
            settings: settings, actionURL: actionURL, websocketURL: socketBase + (socketBase.contains("?") ? "&" : "?") + "token=\(token)"
        ).build()
        let sid = try await api.createCall(to: to, from: from, twiml: twiml, options: options, idempotencyKey: "call:\(idempotencyKey)")
        do {
            try await tokens.bind(token, callSid: sid)
        } catch {
            // The relay waits a few seconds for the binding, then refuses the socket: the call fails closed.
            logger.error("could not bind the call's socket token", metadata: ["call.sid": "\(sid)", "error": "\(error)"])
        }
        count("call")
        logger.info("call placed", metadata: ["call.sid": "\(sid)"])
        return ["callSid": .string(sid)]
    }

    /// An `https://`/`wss://` URL from the request, or the default.
    static func url(_ value: JSONValue?, scheme: String, default fallback: String) throws -> String {
        guard let value, value != .null else { return fallback }
        guard let text = value.string?.trimmingCharacters(in: .whitespaces), text.hasPrefix(scheme), text.count > scheme.count else {
            throw Rejection(status: .badRequest, reason: "URLs must start with \(scheme)")
        }
        return text
    }

    /// `{callSid}` → `{ended: true}`: hangs the call up through the Calls API (`Status=completed`),
    /// TAC's `end_call`. A call that already ended is not an error.
    private func endCall(_ input: JSONValue, idempotencyKey: String) async throws -> JSONValue {
        guard let sid = input["callSid"]?.string, sid.count == 34, sid.hasPrefix("CA"), sid.dropFirst(2).allSatisfy(\.isHexDigit) else {
            throw Rejection(status: .badRequest, reason: "callSid must be a call SID (CA + 32 hex digits)")
        }
        let url = "\(api.rest.configuration.apiBaseURL)/2010-04-01/Accounts/\(api.rest.configuration.accountSid)/Calls/\(sid).json"
        let response = try await api.rest.form(.POST, url, fields: [("Status", "completed")])
        guard (200..<300).contains(response.status) else {
            throw Rejection(status: response.status == 404 ? .notFound : .badGateway, reason: "Twilio answered \(response.status) to ending the call")
        }
        count("call_end")
        logger.info("call ended through the API", metadata: ["call.sid": "\(sid)"])
        return ["callSid": .string(sid), "ended": true]
    }

    /// Calls API parameters a caller may pass in `callOptions` (matched case-insensitively). None takes
    /// a URL: Twilio would call it with the call's details, so every callback goes to our own domain
    /// through the `statusCallback`, `amd` and `record` switches instead.
    static let allowedCallOptions = [
        "Timeout", "TimeLimit", "SendDigits", "MachineDetection", "MachineDetectionTimeout", "MachineDetectionSpeechThreshold",
        "MachineDetectionSpeechEndThreshold", "MachineDetectionSilenceTimeout", "AsyncAmd", "RecordingChannels", "RecordingTrack", "Trim",
        "CallReason", "StatusCallbackEvent", "RecordingStatusCallbackEvent",
    ]

    /// `callOptions` → form fields: the switches `statusCallback`, `amd`, `record` (booleans, any
    /// capitalisation) point Twilio's callbacks at `https://<domain>/twilio/call-events/…`; other keys
    /// must be in ``allowedCallOptions``; anything else — `To`, `Url`, `FallbackUrl`,
    /// `AsyncAmdStatusCallback`, `RecordingStatusCallback`, … in any capitalisation — is a 400.
    static func callOptions(_ value: JSONValue?, domain: String) throws -> [(String, String)] {
        guard let value, value != .null else { return [] }
        guard let object = value.object else { throw Rejection(status: .badRequest, reason: "callOptions must be an object") }
        let allowed = Dictionary(uniqueKeysWithValues: allowedCallOptions.map { ($0.lowercased(), $0) })
        var options: [(String, String)] = []
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            let lowered = key.lowercased()
            if ["statuscallback", "amd", "record"].contains(lowered) {
                guard let on = value.bool ?? value.string.flatMap({ ["true": true, "false": false][$0.lowercased()] }) else {
                    throw Rejection(
                        status: .badRequest, reason: "callOptions.\(key) is a switch (true or false); callbacks go only to this service's own domain")
                }
                guard on else { continue }
                switch lowered {
                case "statuscallback":
                    options += [("StatusCallback", "https://\(domain)/twilio/call-events/status")]
                    if object.keys.allSatisfy({ $0.lowercased() != "statuscallbackevent" }) {
                        options += ["initiated", "ringing", "answered", "completed"].map { ("StatusCallbackEvent", $0) }
                    }
                case "amd":
                    options += [("MachineDetection", "Enable"), ("AsyncAmd", "true"), ("AsyncAmdStatusCallback", "https://\(domain)/twilio/call-events/amd")]
                default:
                    options += [("Record", "true"), ("RecordingStatusCallback", "https://\(domain)/twilio/call-events/recording")]
                }
                continue
            }
            guard let name = allowed[lowered] else {
                throw Rejection(status: .badRequest, reason: "callOptions may not set \(key) (allowed: \(allowedCallOptions.joined(separator: ", ")))")
            }
            let values: [JSONValue] = value.array ?? [value]
            for item in values {
                guard let text = item.string ?? item.bool.map({ $0 ? "true" : "false" }) ?? item.double.map({ value in value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value) }) else {
                    throw Rejection(status: .badRequest, reason: "callOptions.\(key) must be a string, number or boolean")
                }
                options.append((name, text))
            }
        }
        return options
    }

    /// `{conversationId, attributes?, profileId?, channel?, customerAddress?, agentAddress?, mode?}` → the Studio handoff as TAC does it (docs/architecture.md §6.7): the
    /// orchestrator conversation set `INACTIVE` and its status callbacks cleared (failures only
    /// logged), then, for messaging, a Studio execution with `HandoffData`. Voice hands off with the
    /// ConversationRelay `end` frame, which the SDK sends; here it only gets the first two steps.
    private func handoff(_ input: JSONValue, idempotencyKey: String) async throws -> JSONValue {
        guard let conversationId = input["conversationId"]?.string, !conversationId.isEmpty else {
            throw Rejection(status: .badRequest, reason: "conversationId is required")
        }
        // The SDK sends what its session knows (a conversation's row may not be written yet); the
        // stored row fills in the rest.
        let stored = try await store.conversation(id: conversationId)
        guard let channel = input["channel"]?.string.flatMap(ChannelKind.init(rawValue:)) ?? stored?.channel else {
            throw Rejection(status: .notFound, reason: "unknown conversation \(conversationId)")
        }
        var conversation = stored ?? ConversationRecord(id: conversationId, channel: channel)
        conversation.customerAddress = input["customerAddress"]?.string ?? conversation.customerAddress
        conversation.agentAddress = input["agentAddress"]?.string ?? conversation.agentAddress
        if let mode = input["mode"]?.string { conversation.metadata["mode"] = mode }
        guard channel == .voice || configuration.studioHandoffFlowSid != nil else {
            throw Rejection(status: .badRequest, reason: "handoff needs TWILIO_STUDIO_HANDOFF_FLOW_SID")
        }
        if configuration.conversationConfigurationId != nil, conversation.metadata["mode"] != "classic", conversation.metadata["mode"] != "relay" {
            do {
                try await api.setStatus(conversationId: conversationId, status: "INACTIVE")
            } catch {
                logger.warning("handoff: could not set the conversation INACTIVE", metadata: ["conversation.id": "\(conversationId)", "error": "\(error)"])
            }
            do {
                try await api.clearStatusCallbacks(conversationId: conversationId)
            } catch {
                logger.warning("handoff: could not clear status callbacks", metadata: ["conversation.id": "\(conversationId)", "error": "\(error)"])
            }
        }
        if stored != nil { try await store.setStatus(conversationId: conversationId, status: "INACTIVE") }
        if channel != .voice, let flow = configuration.studioHandoffFlowSid {
            let from = [.sms, .rcs, .whatsapp].contains(channel) ? conversation.agentAddress : configuration.senders.defaultSender(for: .sms)
            let data = Self.handoffData(input, conversationId: conversationId, profileId: conversation.profileId)
            _ = try await api.studioExecution(flowSid: flow, to: conversation.customerAddress ?? "", from: from ?? "", parameters: data.compactJSON)
        }
        count("handoff")
        logger.info("handed off", metadata: ["conversation.id": "\(conversationId)", "channel": "\(channel.rawValue)"])
        return ["status": "handoff_initiated", "channel": .string(channel.rawValue)]
    }

    /// `{"HandoffData": {conversationId, storeId, profileId, attributes}}`, what Studio reads as `flow.data.HandoffData`.
    static func handoffData(_ input: JSONValue, conversationId: String, profileId: String?) -> JSONValue {
        [
            "HandoffData": [
                "conversationId": .string(conversationId), "storeId": .string(input["storeId"]?.string ?? ""),
                "profileId": .string(input["profileId"]?.string ?? profileId ?? ""), "attributes": .object(input["attributes"]?.object ?? [:]),
            ]
        ]
    }

    /// `from` when it is one of ours on the channel, else the default; a 400 names the allowed ones.
    private func sender(_ requested: String?, channel: ChannelKind) throws -> String {
        let allowed = configuration.senders.addresses(for: channel)
        if let requested {
            guard allowed.contains(requested) else {
                throw Rejection(status: .badRequest, reason: "from must be one of the configured \(channel.rawValue) senders: \(allowed.joined(separator: ", "))")
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

    private func record(_ text: String, replyId: String, conversationId: String, channel: ChannelKind, from: String) async {
        _ = try? await store.appendMessage(
            MessageRecord(id: replyId, conversationId: conversationId, channel: channel, direction: .outbound, authorAddress: from, body: text))
    }

    private func count(_ kind: String) {
        Counter(label: "agentconnect_outbound_started_total", dimensions: [("kind", kind)]).increment()
    }
}
