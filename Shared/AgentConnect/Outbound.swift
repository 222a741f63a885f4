public import AgentConnectCore
import Foundation

/// Starting a messaging conversation (TAC's `InitiateMessagingConversationOptions`).
public struct OutboundConversationOptions: Sendable {
    /// The customer's address (`+1…`, `whatsapp:+1…`, `rcs:…`).
    public var to: String
    /// The first message.
    public var message: String
    /// One of our senders on the channel; the default sender when nil.
    public var from: String?
    /// Stored on the conversation (orchestrator limits: 7 keys besides `direction`).
    public var metadata: [String: String]
    /// Media by URL (at most 10), sent with the first message.
    public var media: [String]
    /// An approved Content template, sent instead of `message`: what a business-initiated WhatsApp
    /// conversation must start with (outside the 24-hour window the start is refused without one).
    public var template: MessageTemplate?
    /// The Chat channel (Chat only; else `TWILIO_CHAT_CHANNEL_ID` on the outbound service).
    public var channelId: String?

    public init(
        to: String, message: String, from: String? = nil, metadata: [String: String] = [:], media: [String] = [], template: MessageTemplate? = nil,
        channelId: String? = nil
    ) {
        self.to = to
        self.message = message
        self.from = from
        self.metadata = metadata
        self.media = media
        self.template = template
        self.channelId = channelId
    }
}

/// TAC's name for ``OutboundConversationOptions``.
public typealias InitiateMessagingConversationOptions = OutboundConversationOptions

/// The started conversation.
public struct OutboundConversationResult: Sendable, Equatable {
    public var conversationId: String

    /// From the outbound API's answer.
    package init(conversationId: String) {
        self.conversationId = conversationId
    }
}

/// Placing a call (TAC's `InitiateVoiceConversationOptions`).
public struct OutboundCallOptions: Sendable {
    public var to: String
    public var from: String?
    public var welcomeGreeting: String?
    /// The ConversationRelay socket, `wss://…`; nil: `wss://<TWILIO_VOICE_PUBLIC_DOMAIN>/ws`. The
    /// outbound service adds the call's single-use token to it, which voice-relay requires.
    public var websocketURL: String?
    /// The `<Connect action>`, `https://…`; nil: `https://<TWILIO_VOICE_PUBLIC_DOMAIN>/conversation-relay-callback`.
    public var actionURL: String?
    /// This call's `<ConversationRelay>` choices over the `CONVERSATION_RELAY_*` settings.
    public var twimlOptions: VoiceTwiMLOptions?
    /// `statusCallback`, `amd`, `record` (booleans) or Calls API parameters (`Timeout`, …).
    public var callOptions: [String: String]

    public init(
        to: String, from: String? = nil, websocketURL: String? = nil, welcomeGreeting: String? = nil, actionURL: String? = nil,
        twimlOptions: VoiceTwiMLOptions? = nil, callOptions: [String: String] = [:]
    ) {
        self.to = to
        self.from = from
        self.websocketURL = websocketURL
        self.welcomeGreeting = welcomeGreeting
        self.actionURL = actionURL
        self.twimlOptions = twimlOptions
        self.callOptions = callOptions
    }
}

/// TAC's name for ``OutboundCallOptions``.
public typealias InitiateVoiceConversationOptions = OutboundCallOptions

/// The placed call.
public struct OutboundCallResult: Sendable, Equatable {
    public var callSid: String

    /// From the outbound API's answer.
    package init(callSid: String) {
        self.callSid = callSid
    }
}

extension MessagingChannel {
    /// Starts a conversation on this channel with a first message; the customer's replies reach
    /// `onMessageReady` with `session.direction == .outbound`.
    public func initiateOutboundConversation(_ options: OutboundConversationOptions, idempotencyKey: String? = nil) async throws
        -> OutboundConversationResult
    {
        try await tac.initiateMessagingConversation(on: channel, options, idempotencyKey: idempotencyKey)
    }
}

extension TAC {
    /// Starts a messaging conversation through the outbound service's API (the channel classes, the
    /// `text_customer` tool).
    func initiateMessagingConversation(on channel: ChannelKind, _ options: OutboundConversationOptions, idempotencyKey: String?) async throws
        -> OutboundConversationResult
    {
        var body: [String: JSONValue] = [
            "channel": .string(channel.rawValue), "to": .string(options.to), "message": .string(options.message),
            "metadata": JSONValue(options.metadata),
        ]
        if let from = options.from { body["from"] = .string(from) }
        if !options.media.isEmpty { body["media"] = .array(options.media.map { .string($0) }) }
        if let template = options.template {
            body["contentSid"] = .string(template.contentSid)
            if !template.variables.isEmpty { body["contentVariables"] = JSONValue(template.variables) }
        }
        if let channelId = options.channelId { body["channelId"] = .string(channelId) }
        let answer = try await backend.callOutboundAPI(self, path: "/v1/conversations", body: .object(body), idempotencyKey: idempotencyKey)
        guard let id = answer["conversationId"]?.string else { throw TACError("outbound API answered without conversationId") }
        return OutboundConversationResult(conversationId: id)
    }
}

extension VoiceChannel {
    /// Places a call that ConversationRelay connects to voice-relay; the conversation then flows
    /// through `onMessageReady` like an inbound call.
    public func initiateOutboundConversation(_ options: OutboundCallOptions, idempotencyKey: String? = nil) async throws -> OutboundCallResult {
        var body: [String: JSONValue] = ["to": .string(options.to), "callOptions": JSONValue(options.callOptions)]
        if let from = options.from { body["from"] = .string(from) }
        if let greeting = options.welcomeGreeting { body["welcomeGreeting"] = .string(greeting) }
        if let url = options.websocketURL { body["websocketURL"] = .string(url) }
        if let url = options.actionURL { body["actionURL"] = .string(url) }
        if let twiml = options.twimlOptions, let data = try? JSONEncoder().encode(twiml) {
            body["twiml"] = try JSONDecoder().decode(JSONValue.self, from: data)
        }
        let answer = try await tac.backend.callOutboundAPI(tac, path: "/v1/calls", body: .object(body), idempotencyKey: idempotencyKey)
        guard let sid = answer["callSid"]?.string else { throw TACError("outbound API answered without callSid") }
        return OutboundCallResult(callSid: sid)
    }
}
