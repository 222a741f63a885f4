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

/// `POST /v1/calls`, `/v1/calls/end` and `/v1/handoffs`: placing, ending and handing off calls.
extension OutboundAPI {
    /// `{to, from?, welcomeGreeting?, twiml?, websocketURL?, actionURL?, callOptions?}` → `{callSid}`.
    ///
    /// The TwiML is the one inbound calls get (``ConversationRelaySettings``: every
    /// `CONVERSATION_RELAY_*` attribute, `<Language>` and `<Parameter>`), with the request's `twiml`
    /// options (``ConversationRelayOptions``) and `welcomeGreeting` on top. The socket URL (by default
    /// `wss://<TWILIO_VOICE_PUBLIC_DOMAIN>/ws`) carries a single-use token (``RelayCallTokens``),
    /// bound to the CallSid once Twilio returns it; voice-relay accepts the call's socket only with it.
    /// `actionURL` defaults to `https://<domain>/conversation-relay-callback`.
    func startCall(_ input: JSONValue, idempotencyKey: String) async throws -> JSONValue {
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
            guard let data = try? JSONEncoder().encode(twiml), let parsed = try? JSONDecoder().decode(ConversationRelayOptions.self, from: data)
            else {
                throw Rejection(
                    status: .badRequest, reason: "twiml must be an object of <ConversationRelay> options (voice, language, languages, parameters, …)")
            }
            var parsedOptions = parsed
            parsedOptions.parameters?["conversationId"] = nil
            settings = settings.applying(parsedOptions)
        }
        settings.set("welcomeGreeting", input["welcomeGreeting"]?.string)
        if let configurationId = configuration.conversationConfigurationId { settings.set("conversationConfiguration", configurationId) }
        let socketBase = try Self.url(input["websocketURL"], scheme: "wss://", default: "wss://\(domain)/ws")
        let actionURL = try Self.url(input["actionURL"], scheme: "https://", default: "https://\(domain)/conversation-relay-callback")
        let token = try await callTokens.mint(callSid: nil, conversationId: nil)
        let twiml = TwiMLBuilder(
            settings: settings, actionURL: actionURL, websocketURL: socketBase + (socketBase.contains("?") ? "&" : "?") + "token=\(token)"
        ).build()
        let sid = try await api.createCall(to: to, from: from, twiml: twiml, options: options, idempotencyKey: "call:\(idempotencyKey)")
        do {
            try await callTokens.bind(token, callSid: sid)
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
    func endCall(_ input: JSONValue, idempotencyKey: String) async throws -> JSONValue {
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
                    options += [
                        ("MachineDetection", "Enable"), ("AsyncAmd", "true"), ("AsyncAmdStatusCallback", "https://\(domain)/twilio/call-events/amd"),
                    ]
                default:
                    options += [("Record", "true"), ("RecordingStatusCallback", "https://\(domain)/twilio/call-events/recording")]
                }
                continue
            }
            guard let name = allowed[lowered] else {
                throw Rejection(
                    status: .badRequest, reason: "callOptions may not set \(key) (allowed: \(allowedCallOptions.joined(separator: ", ")))")
            }
            let values: [JSONValue] = value.array ?? [value]
            for item in values {
                guard
                    let text = item.string ?? item.bool.map({ $0 ? "true" : "false" })
                        ?? item.double.map({ value in value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value) })
                else {
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
    func handoff(_ input: JSONValue, idempotencyKey: String) async throws -> JSONValue {
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
        let mode = conversation.metadata["mode"].flatMap(ConversationMode.init(rawValue:))
        if configuration.conversationConfigurationId != nil, mode != .classic, mode != .relay {
            do {
                try await api.setStatus(conversationId: conversationId, status: "INACTIVE")
            } catch {
                logger.warning(
                    "handoff: could not set the conversation INACTIVE", metadata: ["conversation.id": "\(conversationId)", "error": "\(error)"])
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
}
