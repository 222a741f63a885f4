/// `voice.interrupted`: the caller interrupted the agent's speech.
package struct VoiceInterrupted: BusEventPayload, Equatable {
    package static let type = EventType.voiceInterrupted

    /// What the caller heard of the reply before interrupting.
    package var utteranceUntilInterrupt: String
    /// How long the reply had played, in milliseconds.
    package var durationUntilInterruptMs: Double
    /// The call.
    package var callSid: String
    /// The relay holding the call.
    package var relayInstance: String

    package init(utteranceUntilInterrupt: String, durationUntilInterruptMs: Double, callSid: String, relayInstance: String) {
        self.utteranceUntilInterrupt = utteranceUntilInterrupt
        self.durationUntilInterruptMs = durationUntilInterruptMs
        self.callSid = callSid
        self.relayInstance = relayInstance
    }

    package func busPayload() -> JSONValue {
        var writer = PayloadWriter(capacity: 4)
        writer.set("utteranceUntilInterrupt", utteranceUntilInterrupt)
        writer.set("durationUntilInterruptMs", durationUntilInterruptMs)
        writer.set("callSid", callSid)
        writer.set("relayInstance", relayInstance)
        return writer.json
    }

    package init(busPayload: JSONValue) throws {
        let reader = try PayloadReader(busPayload)
        utteranceUntilInterrupt = try reader.scalar("utteranceUntilInterrupt")
        durationUntilInterruptMs = try reader.scalar("durationUntilInterruptMs")
        callSid = try reader.scalar("callSid")
        relayInstance = try reader.scalar("relayInstance")
    }
}

/// `voice.dtmf`: the caller pressed a key.
package struct VoiceDTMF: BusEventPayload, Equatable {
    package static let type = EventType.voiceDTMF

    /// The key.
    package var digit: String
    /// The call.
    package var callSid: String
    /// The relay holding the call.
    package var relayInstance: String

    package init(digit: String, callSid: String, relayInstance: String) {
        self.digit = digit
        self.callSid = callSid
        self.relayInstance = relayInstance
    }

    package func busPayload() -> JSONValue {
        var writer = PayloadWriter(capacity: 3)
        writer.set("digit", digit)
        writer.set("callSid", callSid)
        writer.set("relayInstance", relayInstance)
        return writer.json
    }

    package init(busPayload: JSONValue) throws {
        let reader = try PayloadReader(busPayload)
        digit = try reader.scalar("digit")
        callSid = try reader.scalar("callSid")
        relayInstance = try reader.scalar("relayInstance")
    }
}

/// `voice.relay-message`: a ConversationRelay message for the agent other than a prompt, interrupt or
/// key press (`error`, `info`, `configUpdated`).
package struct VoiceRelayMessage: BusEventPayload, Equatable {
    package static let type = EventType.voiceRelayMessage

    /// The frame's `type`.
    package var frameType: String
    /// The frame as ConversationRelay sent it.
    package var frame: JSONValue
    /// The call.
    package var callSid: String
    /// The relay holding the call.
    package var relayInstance: String

    package init(frameType: String, frame: JSONValue, callSid: String, relayInstance: String) {
        self.frameType = frameType
        self.frame = frame
        self.callSid = callSid
        self.relayInstance = relayInstance
    }

    package func busPayload() -> JSONValue {
        var writer = PayloadWriter(capacity: 4)
        writer.set("frameType", frameType)
        writer.set("frame", frame)
        writer.set("callSid", callSid)
        writer.set("relayInstance", relayInstance)
        return writer.json
    }

    package init(busPayload: JSONValue) throws {
        let reader = try PayloadReader(busPayload)
        frameType = try reader.scalar("frameType")
        frame = try reader.value("frame")
        callSid = try reader.scalar("callSid")
        relayInstance = try reader.scalar("relayInstance")
    }
}

/// `voice.call-status`: a ConversationRelay session callback or a call status callback.
package struct VoiceCallStatus: BusEventPayload, Equatable {
    package static let type = EventType.voiceCallStatus

    /// Which callback.
    package enum Kind: String, Codable, Sendable, CaseIterable {
        /// `/conversation-relay-callback` (the `<Connect action>`).
        case session
        /// `/twilio/call-events/status`.
        case status
        /// `/twilio/call-events/amd` (answering machine detection).
        case amd
        /// `/twilio/call-events/recording`.
        case recording
    }

    /// Which callback.
    package var kind: Kind
    /// The call.
    package var callSid: String
    /// The callback's form fields.
    package var fields: [String: String]

    package init(kind: Kind, callSid: String, fields: [String: String]) {
        self.kind = kind
        self.callSid = callSid
        self.fields = fields
    }

    package func busPayload() -> JSONValue {
        var writer = PayloadWriter(capacity: 3)
        writer.set("kind", kind)
        writer.set("callSid", callSid)
        writer.set("fields", fields)
        return writer.json
    }

    package init(busPayload: JSONValue) throws {
        let reader = try PayloadReader(busPayload)
        kind = try reader.rawValue("kind")
        callSid = try reader.scalar("callSid")
        fields = try reader.stringMap("fields")
    }
}

/// `voice.frame`: frames for a live ConversationRelay socket (text token, play, end, …), on the
/// stream of the relay holding the call. The envelope's id is `<turnId>:f<seq>`.
///
/// One event carries one frame, or several in a row of one turn (`more`): the frames a worker had
/// ready while its previous publish of the turn was on the way go out together. Each keeps its own
/// place in the turn (`seq`, `seq + 1`, …), so the relay drops and deduplicates frame by frame as
/// before. A relay built before `more` existed would drop the frames in it, so a worker batches only
/// the turns of prompts whose relay says it reads them (``MessageReceived/framesInRow``).
package struct VoiceFrame: BusEventPayload, Equatable {
    package static let type = EventType.voiceFrame

    /// The turn producing it: the relay drops frames of an interrupted turn.
    package var turnId: String
    /// The place in its turn of `frame` (duplicates of a redone turn are dropped).
    package var seq: Int
    /// The ConversationRelay frame.
    package var frame: JSONValue
    /// The frames that follow `frame` in the turn (`seq + 1`, …); absent when there are none.
    package var more: [JSONValue]?
    /// The worker producing the turn (its partition lease holder): the relay keeps a turn's first.
    package var gen: String?

    package init(turnId: String, seq: Int, frame: JSONValue, more: [JSONValue]? = nil, gen: String? = nil) {
        self.turnId = turnId
        self.seq = seq
        self.frame = frame
        self.more = more
        self.gen = gen
    }

    /// Every frame the event carries, in order, with its place in the turn.
    package var frames: [(sequence: Int, frame: JSONValue)] {
        [(seq, frame)] + (more ?? []).enumerated().map { (seq + 1 + $0.offset, $0.element) }
    }

    package func busPayload() -> JSONValue {
        var writer = PayloadWriter(capacity: 5)
        writer.set("turnId", turnId)
        writer.set("seq", seq)
        writer.set("frame", frame)
        writer.set("more", more.map(JSONValue.array))
        writer.set("gen", gen)
        return writer.json
    }

    package init(busPayload: JSONValue) throws {
        let reader = try PayloadReader(busPayload)
        turnId = try reader.scalar("turnId")
        seq = try reader.scalar("seq")
        frame = try reader.value("frame")
        more = try reader.optionalArray("more") { $0 }
        gen = try reader.optionalScalar("gen")
    }
}
