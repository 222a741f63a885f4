/// `message.received`: a customer's turn (an SMS/WhatsApp/RCS/Chat message or a final voice prompt).
///
/// Written by messaging-ingress (orchestrator and classic webhooks) and voice-relay (prompts); the
/// fields of the other producers are absent.
package struct MessageReceived: BusEventPayload, Equatable {
    package static let type = EventType.messageReceived

    /// One medium of an inbound message.
    package struct Media: Codable, Sendable, Equatable {
        /// Where Twilio serves it.
        package var url: String
        /// Its MIME type, when Twilio says.
        package var contentType: String?
        /// Its size in bytes, when known.
        package var size: Int?

        package init(url: String, contentType: String? = nil, size: Int? = nil) {
            self.url = url
            self.contentType = contentType
            self.size = size
        }

        /// As the producers wrote media before the typed events: `contentType` and `size` always
        /// present, `null` when unknown.
        package func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(url, forKey: .url)
            try container.encode(contentType, forKey: .contentType)
            try container.encode(size, forKey: .size)
        }

        /// As ``encode(to:)`` writes it.
        var json: JSONValue {
            .object(["url": .string(url), "contentType": JSONValue(contentType), "size": size.map { .number(Double($0)) } ?? .null])
        }

        /// As the `Codable` conformance reads it.
        init(json: JSONValue) throws {
            let reader = try PayloadReader(json)
            url = try reader.scalar("url")
            contentType = try reader.optionalScalar("contentType")
            size = try reader.optionalScalar("size")
        }
    }

    /// How the conversation reaches Twilio (replies go back the same way).
    package var mode: ConversationMode
    /// The customer's text (a voice prompt's transcript).
    package var text: String
    /// The customer's address (phone number, `whatsapp:+…`, chat identity).
    package var authorAddress: String
    /// Messaging: the media (at most 10); absent for voice.
    package var media: [Media]?
    /// Orchestrator: the customer's participant id.
    package var authorParticipantId: String?
    /// The agent's address the customer wrote to (the called number for voice).
    package var agentAddress: String?
    /// Orchestrator: the agent's participant id.
    package var agentParticipantId: String?
    /// Orchestrator: the channel id (Chat).
    package var channelId: String?
    /// Orchestrator: the communication id.
    package var communicationId: String?
    /// Classic: the `MessageSid`.
    package var messageSid: String?
    /// The opt keyword the text is, as `MessageRules.OptKeyword` spells it: `stop` or `start`.
    package var optOut: String?
    /// Voice: the relay holding the call (its frames go to `tac:voice:<relayInstance>`).
    package var relayInstance: String?
    /// Voice: the call.
    package var callSid: String?
    /// Voice: `inbound` or `outbound`.
    package var direction: String?
    /// Voice: the prompt's language.
    package var lang: String?
    /// Voice: the `<Parameter>`s of the call's TwiML (absent when none).
    package var customParameters: [String: String]?
    /// Voice: the `setup` frame's call details (absent when none).
    package var callSetup: [String: String]?
    /// Voice: whether this prompt cuts the reply in progress (absent reads as true).
    package var supersedes: Bool?
    /// Voice: the relay reads several frames from one `voice.frame` event (``VoiceFrame/more``), so
    /// the reply's frames may go out batched. Absent from relays built before `more`: their prompts'
    /// replies go out one frame per event, so no frame is lost while old and new relays run side by side.
    package var framesInRow: Bool?

    package init(
        mode: ConversationMode, text: String, authorAddress: String, media: [Media]? = nil, authorParticipantId: String? = nil,
        agentAddress: String? = nil, agentParticipantId: String? = nil, channelId: String? = nil, communicationId: String? = nil,
        messageSid: String? = nil, optOut: String? = nil, relayInstance: String? = nil, callSid: String? = nil, direction: String? = nil,
        lang: String? = nil, customParameters: [String: String]? = nil, callSetup: [String: String]? = nil, supersedes: Bool? = nil,
        framesInRow: Bool? = nil
    ) {
        self.mode = mode
        self.text = text
        self.authorAddress = authorAddress
        self.media = media
        self.authorParticipantId = authorParticipantId
        self.agentAddress = agentAddress
        self.agentParticipantId = agentParticipantId
        self.channelId = channelId
        self.communicationId = communicationId
        self.messageSid = messageSid
        self.optOut = optOut
        self.relayInstance = relayInstance
        self.callSid = callSid
        self.direction = direction
        self.lang = lang
        self.customParameters = customParameters
        self.callSetup = callSetup
        self.supersedes = supersedes
        self.framesInRow = framesInRow
    }

    package func busPayload() -> JSONValue {
        var writer = PayloadWriter(capacity: 10)
        writer.set("mode", mode)
        writer.set("text", text)
        writer.set("authorAddress", authorAddress)
        writer.set("media", media.map { .array($0.map(\.json)) })
        writer.set("authorParticipantId", authorParticipantId)
        writer.set("agentAddress", agentAddress)
        writer.set("agentParticipantId", agentParticipantId)
        writer.set("channelId", channelId)
        writer.set("communicationId", communicationId)
        writer.set("messageSid", messageSid)
        writer.set("optOut", optOut)
        writer.set("relayInstance", relayInstance)
        writer.set("callSid", callSid)
        writer.set("direction", direction)
        writer.set("lang", lang)
        writer.set("customParameters", customParameters)
        writer.set("callSetup", callSetup)
        writer.set("supersedes", supersedes)
        writer.set("framesInRow", framesInRow)
        return writer.json
    }

    package init(busPayload: JSONValue) throws {
        let reader = try PayloadReader(busPayload)
        mode = try reader.rawValue("mode")
        text = try reader.scalar("text")
        authorAddress = try reader.scalar("authorAddress")
        media = try reader.optionalArray("media", Media.init(json:))
        authorParticipantId = try reader.optionalScalar("authorParticipantId")
        agentAddress = try reader.optionalScalar("agentAddress")
        agentParticipantId = try reader.optionalScalar("agentParticipantId")
        channelId = try reader.optionalScalar("channelId")
        communicationId = try reader.optionalScalar("communicationId")
        messageSid = try reader.optionalScalar("messageSid")
        optOut = try reader.optionalScalar("optOut")
        relayInstance = try reader.optionalScalar("relayInstance")
        callSid = try reader.optionalScalar("callSid")
        direction = try reader.optionalScalar("direction")
        lang = try reader.optionalScalar("lang")
        customParameters = try reader.optionalStringMap("customParameters")
        callSetup = try reader.optionalStringMap("callSetup")
        supersedes = try reader.optionalScalar("supersedes")
        framesInRow = try reader.optionalScalar("framesInRow")
    }
}

/// `reply.ready`: an agent reply for outbound to deliver on a messaging channel (on `tac:outbound`;
/// the envelope's id is the reply id).
package struct ReplyReady: BusEventPayload, Equatable {
    package static let type = EventType.replyReady

    /// The reply's text (may be empty with media or a template).
    package var text: String
    /// How to deliver: the Messages API (`classic`) or an Orchestrator action.
    package var mode: ConversationMode
    /// The customer's address.
    package var customerAddress: String?
    /// Orchestrator: the customer's participant id.
    package var customerParticipantId: String?
    /// The sender; absent: the channel's default sender.
    package var agentAddress: String?
    /// Orchestrator: the agent's participant id.
    package var agentParticipantId: String?
    /// Orchestrator: the channel id (Chat).
    package var channelId: String?
    /// Media URLs (at most 10).
    package var media: [String]?
    /// An approved Content template sent instead of free text.
    package var contentSid: String?
    /// The template's variables.
    package var contentVariables: [String: String]?
    /// Set by outbound on the parts of a reply split for the channel (1, 2, …); never published.
    package var part: Int?

    package init(
        text: String, mode: ConversationMode, customerAddress: String? = nil, customerParticipantId: String? = nil, agentAddress: String? = nil,
        agentParticipantId: String? = nil, channelId: String? = nil, media: [String]? = nil, contentSid: String? = nil,
        contentVariables: [String: String]? = nil, part: Int? = nil
    ) {
        self.text = text
        self.mode = mode
        self.customerAddress = customerAddress
        self.customerParticipantId = customerParticipantId
        self.agentAddress = agentAddress
        self.agentParticipantId = agentParticipantId
        self.channelId = channelId
        self.media = media
        self.contentSid = contentSid
        self.contentVariables = contentVariables
        self.part = part
    }

    package func busPayload() -> JSONValue {
        var writer = PayloadWriter(capacity: 8)
        writer.set("text", text)
        writer.set("mode", mode)
        writer.set("customerAddress", customerAddress)
        writer.set("customerParticipantId", customerParticipantId)
        writer.set("agentAddress", agentAddress)
        writer.set("agentParticipantId", agentParticipantId)
        writer.set("channelId", channelId)
        writer.set("media", media.map { .array($0.map(JSONValue.string)) })
        writer.set("contentSid", contentSid)
        writer.set("contentVariables", contentVariables)
        writer.set("part", part)
        return writer.json
    }

    package init(busPayload: JSONValue) throws {
        let reader = try PayloadReader(busPayload)
        text = try reader.scalar("text")
        mode = try reader.rawValue("mode")
        customerAddress = try reader.optionalScalar("customerAddress")
        customerParticipantId = try reader.optionalScalar("customerParticipantId")
        agentAddress = try reader.optionalScalar("agentAddress")
        agentParticipantId = try reader.optionalScalar("agentParticipantId")
        channelId = try reader.optionalScalar("channelId")
        media = try reader.optionalArray("media") { try PayloadReader.scalar($0) as String }
        contentSid = try reader.optionalScalar("contentSid")
        contentVariables = try reader.optionalStringMap("contentVariables")
        part = try reader.optionalScalar("part")
    }
}

/// `message.status`: Twilio's delivery status of a reply sent through the Messages API (a status
/// callback), on the classic conversation of the sender and recipient.
package struct MessageStatus: BusEventPayload, Equatable {
    package static let type = EventType.messageStatus

    /// The message.
    package var messageSid: String
    /// Twilio's status, lower-case (`sent`, `delivered`, `read`, `failed`, `undelivered`, …).
    package var status: String
    /// Twilio's error code, absent for none (`0`).
    package var errorCode: String?
    /// Twilio's error message.
    package var errorMessage: String?
    /// The sender (ours).
    package var agentAddress: String
    /// The recipient.
    package var customerAddress: String

    package init(
        messageSid: String, status: String, errorCode: String? = nil, errorMessage: String? = nil, agentAddress: String, customerAddress: String
    ) {
        self.messageSid = messageSid
        self.status = status
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.agentAddress = agentAddress
        self.customerAddress = customerAddress
    }

    package func busPayload() -> JSONValue {
        var writer = PayloadWriter(capacity: 6)
        writer.set("messageSid", messageSid)
        writer.set("status", status)
        writer.set("errorCode", errorCode)
        writer.set("errorMessage", errorMessage)
        writer.set("agentAddress", agentAddress)
        writer.set("customerAddress", customerAddress)
        return writer.json
    }

    package init(busPayload: JSONValue) throws {
        let reader = try PayloadReader(busPayload)
        messageSid = try reader.scalar("messageSid")
        status = try reader.scalar("status")
        errorCode = try reader.optionalScalar("errorCode")
        errorMessage = try reader.optionalScalar("errorMessage")
        agentAddress = try reader.scalar("agentAddress")
        customerAddress = try reader.scalar("customerAddress")
    }
}

/// `intelligence.result`: a Conversation Intelligence webhook, carried whole (its `operatorResults`,
/// `intelligenceConfiguration`, … as Twilio sent them). Rare and already a single ``JSONValue``: it
/// goes through its `Codable` conformance (``BusEventPayload``'s default conversion).
package struct IntelligenceResult: BusEventPayload, Equatable {
    package static let type = EventType.intelligenceResult

    /// The webhook's JSON object.
    package var body: JSONValue

    package init(body: JSONValue) {
        self.body = body
    }

    package init(from decoder: any Decoder) throws {
        body = try decoder.singleValueContainer().decode(JSONValue.self)
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(body)
    }
}
