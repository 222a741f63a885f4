public import AgentConnectCore
import NIOConcurrencyHelpers

/// Per-channel settings (TAC's channel config).
public struct ChannelConfiguration: Sendable {
    /// When memory is read before `onMessageReady`.
    public var memoryMode: MemoryMode

    public init(memoryMode: MemoryMode = .never) {
        self.memoryMode = memoryMode
    }
}

/// A messaging channel: SMS, WhatsApp, RCS or Chat. Creating one registers it with the `TAC`.
public class MessagingChannel: @unchecked Sendable {
    /// The worker it belongs to.
    public let tac: TAC
    /// Which channel.
    public let channel: ChannelKind
    /// Its memory mode (`once` runs as `always` on messaging, as in TAC).
    public let memoryMode: MemoryMode

    init(_ tac: TAC, channel: ChannelKind, configuration: ChannelConfiguration) {
        self.tac = tac
        self.channel = channel
        self.memoryMode = configuration.memoryMode == .once ? .always : configuration.memoryMode
        tac.register(channel, memoryMode: memoryMode)
    }

    /// Sends `response` to the customer of a conversation on this channel, exactly once.
    ///
    /// Inside a callback the current turn's session is used; otherwise the conversation's stored
    /// participants are. `media` (http(s) URLs, at most 10) go with the message (MMS, WhatsApp);
    /// a `template` (an approved Content template) is sent instead of free text. A reply longer than
    /// the channel carries (1,600 characters) arrives as several messages, split on sentence
    /// boundaries, in order. On WhatsApp, outside a turn and more than 24 hours after the customer's
    /// last message, free text is refused here with a ``TACError`` (Twilio would fail it with error
    /// 63016): send a template.
    public func sendResponse(conversationId: String, response: String, media: [String] = [], template: MessageTemplate? = nil) async throws {
        try await tac.backend.sendMessage(tac, channel: channel, conversationId: conversationId, response: response, media: media, template: template)
    }
}

/// SMS, on `TWILIO_PHONE_NUMBER(S)`.
public final class SMSChannel: MessagingChannel, @unchecked Sendable {
    public init(_ tac: TAC, configuration: ChannelConfiguration = .init()) {
        super.init(tac, channel: .sms, configuration: configuration)
    }
}

/// WhatsApp, on `TWILIO_WHATSAPP_NUMBER(S)`.
public final class WhatsAppChannel: MessagingChannel, @unchecked Sendable {
    public init(_ tac: TAC, configuration: ChannelConfiguration = .init()) {
        super.init(tac, channel: .whatsapp, configuration: configuration)
    }
}

/// RCS, on `TWILIO_RCS_SENDER_ID(S)`.
public final class RCSChannel: MessagingChannel, @unchecked Sendable {
    public init(_ tac: TAC, configuration: ChannelConfiguration = .init()) {
        super.init(tac, channel: .rcs, configuration: configuration)
    }
}

/// Chat (Conversations), as `TWILIO_CHAT_AGENT_ADDRESS`.
public final class ChatChannel: MessagingChannel, @unchecked Sendable {
    public init(_ tac: TAC, configuration: ChannelConfiguration = .init()) {
        super.init(tac, channel: .chat, configuration: configuration)
    }
}

/// Voice through ConversationRelay. Replies stream token by token to the caller.
public final class VoiceChannel: Sendable {
    public let tac: TAC
    public let memoryMode: MemoryMode

    public init(_ tac: TAC, configuration: ChannelConfiguration = .init()) {
        self.tac = tac
        self.memoryMode = configuration.memoryMode
        tac.register(.voice, memoryMode: configuration.memoryMode)
    }

    /// Registers the per-call TwiML hook (TAC's `on_inbound_call_twiml`): for each incoming call,
    /// choose its voice, languages, transcription, interruptibility or `<Parameter>`s from the voice
    /// webhook (the caller's country, say); fields left `nil` keep the `CONVERSATION_RELAY_*`
    /// settings. Return `nil` for the defaults. It runs in a worker while `/twiml` waits in
    /// voice-relay (they meet in Redis); past `VOICE_TWIML_HOOK_TIMEOUT_MS` (1.5 s), or if it throws,
    /// the call gets the defaults, so keep it quick and free of side effects (any worker may run it).
    public func onInboundCallTwiML(_ hook: @escaping @Sendable (TwiMLRequest) async throws -> VoiceTwiMLOptions?) {
        tac.callbacks.withLockedValue { $0.twimlHook = hook }
    }

    /// Speaks a whole reply: one `text` frame with `last: true`.
    public func sendResponse(conversationId: String, response: String) async throws {
        try await send(conversationId: conversationId) { emit in
            try await emit(["type": "text", "token": .string(response), "last": true])
        }
    }

    /// Streams tokens as they are produced (`last: false` each), then an empty `last: true`. Any
    /// `AsyncSequence` of `String` will do, whatever its failure type (`AsyncStream<String>`,
    /// `AsyncThrowingStream<String, any Error>`, a model client's stream, …).
    public func sendResponse<Tokens: AsyncSequence>(conversationId: String, response: Tokens) async throws where Tokens.Element == String {
        try await send(conversationId: conversationId) { emit in
            for try await token in response {
                try Task.checkCancellation()
                try await emit(["type": "text", "token": .string(token), "last": false])
            }
            try await emit(["type": "text", "token": "", "last": true])
        }
    }

    /// Streams a known list of tokens.
    public func sendResponse(conversationId: String, tokens: [String]) async throws {
        try await sendResponse(
            conversationId: conversationId,
            response: AsyncThrowingStream { continuation in
                for token in tokens { continuation.yield(token) }
                continuation.finish()
            })
    }

    /// Sends any ConversationRelay frame (`play`, `sendDigits`, `language`, `end`) to the call.
    public func sendFrame(conversationId: String, frame: JSONValue) async throws {
        try await send(conversationId: conversationId) { emit in try await emit(frame) }
    }

    /// Publishes the frames `body` emits as one reply of the current turn (or a reply of its own
    /// outside a callback), to the relay holding the call.
    func send(
        conversationId: String, _ body: (_ emit: (JSONValue) async throws -> Void) async throws -> Void
    ) async throws {
        try await tac.backend.sendFrames(tac, conversationId: conversationId, body)
    }
}
