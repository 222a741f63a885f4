import AgentConnectCore
import Foundation
import Testing

/// The payload as the producers built it by hand before the typed events, without its `null` members
/// (a typed event leaves a `nil` field out; readers take a missing member and `null` alike). Media
/// items keep theirs: they are written as before.
private func withoutNulls(_ value: JSONValue) -> JSONValue {
    guard case .object(let members) = value else { return value }
    return .object(members.filter { $0.value != .null })
}

@Suite("Typed bus events")
struct BusEventPayloadTests {
    /// An orchestrator `message.received` as messaging-ingress wrote it before the typed events.
    static let orchestratorMessage: JSONValue = [
        "mode": "orchestrator", "text": "hi", "authorAddress": "+15550001111", "authorParticipantId": "PC1", "agentAddress": "+15550002222",
        "agentParticipantId": .null, "channelId": .null, "communicationId": "comm1", "optOut": "STOP",
        "media": [["url": "https://m/1", "contentType": "image/png", "size": 42], ["url": "https://m/2", "contentType": .null, "size": .null]],
    ]

    /// A voice prompt as voice-relay writes it.
    static let voicePrompt: JSONValue = [
        "text": "hello", "relayInstance": "relay-1", "callSid": "CA1", "authorAddress": "+1555", "agentAddress": .null, "direction": "inbound",
        "lang": "en-US", "mode": "relay", "customParameters": ["tier": "gold"], "callSetup": ["callType": "PSTN"], "supersedes": false,
    ]

    @Test("a payload written by hand before the typed events reads as the typed event, and the typed event writes it back")
    func legacyPayloadsRoundTrip() throws {
        let message = try Self.orchestratorMessage.decode(MessageReceived.self)
        #expect(message.mode == .orchestrator)
        #expect(message.authorParticipantId == "PC1")
        #expect(message.agentParticipantId == nil)
        #expect(message.media == [.init(url: "https://m/1", contentType: "image/png", size: 42), .init(url: "https://m/2")])
        #expect(try JSONValue(encoding: message) == withoutNulls(Self.orchestratorMessage))
        #expect(
            try JSONValue(encoding: MessageReceived.Media(url: "https://m/2")).compactJSON == #"{"contentType":null,"size":null,"url":"https://m/2"}"#
        )

        let prompt = try Self.voicePrompt.decode(MessageReceived.self)
        #expect(prompt.mode == .relay && prompt.supersedes == false && prompt.customParameters == ["tier": "gold"] && prompt.media == nil)
        #expect(try JSONValue(encoding: prompt) == withoutNulls(Self.voicePrompt))

        let legacy: [(any BusEventPayload.Type, JSONValue)] = [
            (
                ReplyReady.self,
                [
                    "text": "ok", "mode": "classic", "customerAddress": "+1", "customerParticipantId": .null, "agentAddress": "+2",
                    "agentParticipantId": .null, "channelId": .null, "media": ["https://m/1"], "contentSid": "HX1", "contentVariables": ["1": "a"],
                ]
            ),
            (
                MessageStatus.self,
                [
                    "messageSid": "SM1", "status": "failed", "errorCode": "30003", "errorMessage": .null, "agentAddress": "+2",
                    "customerAddress": "+1",
                ]
            ),
            (ConversationStarted.self, ["participantId": "P1", "participantType": "CUSTOMER", "address": .null, "profileId": .null]),
            (ConversationInactive.self, ["status": "INACTIVE", "reason": "orchestrator", "channelKnown": false, "metadata": ["k": "v"]]),
            (ConversationEnded.self, ["reason": "handoff", "callSid": "CA1", "handoffData": .null]),
            (ConversationEnded.self, ["reason": "relay_lost", "relayInstance": "relay-2"]),
            (
                VoiceInterrupted.self,
                ["utteranceUntilInterrupt": "Hel", "durationUntilInterruptMs": .number(820.5), "callSid": "CA1", "relayInstance": "r"]
            ),
            (VoiceDTMF.self, ["digit": "7", "callSid": "CA1", "relayInstance": "r"]),
            (
                VoiceRelayMessage.self,
                ["frameType": "error", "frame": ["type": "error", "description": "bad"], "callSid": "CA1", "relayInstance": "r"]
            ),
            (VoiceCallStatus.self, ["kind": "session", "callSid": "CA1", "fields": ["CallStatus": "completed"]]),
            (VoiceFrame.self, ["turnId": "t:r1", "seq": 3, "frame": ["type": "text", "token": "Hi", "last": false], "gen": .null]),
            (IntelligenceResult.self, ["conversationId": "c", "operatorResults": [["id": "r1"]], "intelligenceConfiguration": ["id": .null]]),
        ]
        for (type, payload) in legacy {
            let typed = try payload.decode(type)
            let expected = type == IntelligenceResult.self ? payload : withoutNulls(payload)
            #expect(try JSONValue(encoding: typed) == expected, "\(type)")
        }
    }

    @Test("a typed event is byte for byte the envelope the producer wrote by hand when the payload holds no null")
    func sameBytes() throws {
        let date = Date(timeIntervalSince1970: 1_790_000_000.123)
        let frame: JSONValue = ["type": "text", "token": "Hi \"there\"/é", "last": true]
        let typed = try BusEvent(
            VoiceFrame(turnId: "t:r1", seq: 12, frame: frame, gen: "w1"), id: "t:r1:f12", conversationId: "CA1", channel: .voice, occurredAt: date,
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        let legacy = BusEvent(
            id: "t:r1:f12", type: EventType.voiceFrame, conversationId: "CA1", channel: .voice, occurredAt: date,
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            payload: ["turnId": "t:r1", "seq": .number(12), "frame": frame, "gen": "w1"])
        #expect(try typed.encoded() == legacy.encoded())
    }

    @Test("every typed event survives the wire: built, written as bytes, read back and decoded equal")
    func wireRoundTrip() throws {
        let events: [any BusEventPayload] = [
            try Self.orchestratorMessage.decode(MessageReceived.self), try Self.voicePrompt.decode(MessageReceived.self),
            ReplyReady(text: "a\nb", mode: .orchestrator, customerAddress: "+1", media: ["https://m/1"], contentVariables: ["1": "x"]),
            MessageStatus(messageSid: "SM1", status: "delivered", agentAddress: "+2", customerAddress: "+1"),
            ConversationStarted(participantId: "P1"), ConversationInactive(metadata: ["a": [1, true]]),
            ConversationEnded(reason: .hangup, callSid: "CA1"),
            VoiceInterrupted(utteranceUntilInterrupt: "", durationUntilInterruptMs: 0, callSid: "C", relayInstance: "r"),
            VoiceDTMF(digit: "#", callSid: "C", relayInstance: "r"),
            VoiceRelayMessage(frameType: "info", frame: ["type": "info"], callSid: "C", relayInstance: "r"),
            VoiceCallStatus(kind: .amd, callSid: "C", fields: ["AnsweredBy": "human"]), VoiceFrame(turnId: "t", seq: 0, frame: ["type": "end"]),
            IntelligenceResult(body: ["operatorResults": []]),
        ]
        for payload in events {
            try roundTrip(payload)
        }
    }

    private func roundTripTyped<Payload: BusEventPayload & Equatable>(_ payload: Payload) throws {
        let event = try BusEvent(payload, conversationId: "conv", channel: .sms)
        #expect(event.type == Payload.type)
        let back = try BusEvent.decode(event.encoded())
        #expect(try back.decode(Payload.self) == payload)
    }

    private func roundTrip(_ payload: any BusEventPayload) throws {
        switch payload {
        case let value as MessageReceived: try roundTripTyped(value)
        case let value as ReplyReady: try roundTripTyped(value)
        case let value as MessageStatus: try roundTripTyped(value)
        case let value as ConversationStarted: try roundTripTyped(value)
        case let value as ConversationInactive: try roundTripTyped(value)
        case let value as ConversationEnded: try roundTripTyped(value)
        case let value as VoiceInterrupted: try roundTripTyped(value)
        case let value as VoiceDTMF: try roundTripTyped(value)
        case let value as VoiceRelayMessage: try roundTripTyped(value)
        case let value as VoiceCallStatus: try roundTripTyped(value)
        case let value as VoiceFrame: try roundTripTyped(value)
        case let value as IntelligenceResult: try roundTripTyped(value)
        default: Issue.record("no round trip for \(type(of: payload))")
        }
    }

    @Test("decoding names what is wrong: another event type, a missing field, a mistyped element, an unknown mode")
    func clearErrors() throws {
        let reply = try BusEvent(ReplyReady(text: "x", mode: .classic), id: "e1", conversationId: "c", channel: .sms)
        let wrongType = #expect(throws: BusEventPayloadError.self) { try reply.decode(MessageReceived.self) }
        #expect(wrongType?.code == .wrongType)
        #expect(wrongType?.message == "event e1 is reply.ready, not message.received")

        func failure(_ payload: JSONValue) -> String? {
            let event = BusEvent(id: "e2", type: EventType.messageReceived, conversationId: "c", channel: .sms, payload: payload)
            do {
                _ = try event.decode(MessageReceived.self)
                return nil
            } catch let error as BusEventPayloadError {
                return error.code == .invalidPayload ? error.message : "wrong code: \(error)"
            } catch {
                return "not a BusEventPayloadError: \(error)"
            }
        }
        #expect(failure(["mode": "classic", "authorAddress": "+1"]) == "message.received event e2: payload.text is missing")
        #expect(
            failure(["mode": "classic", "text": .null, "authorAddress": "+1"])
                == "message.received event e2: payload.text: expected String, found null")
        #expect(
            failure(["mode": "classic", "text": "t", "authorAddress": "+1", "media": [["url": 5]]])
                == "message.received event e2: payload.media[0].url: expected String, found a number")
        #expect(failure(["mode": "fax", "text": "t", "authorAddress": "+1"])?.hasPrefix("message.received event e2: payload.mode: ") == true)
        #expect(failure(.array([])) == "message.received event e2: payload: expected an object, found an array")
    }

    @Test("numbers and booleans read as leniently as JSONValue's accessors; fractions and overflows never trap")
    func lenientScalars() throws {
        let frame = try (["turnId": "t", "seq": "4", "frame": .null] as JSONValue).decode(VoiceFrame.self)
        #expect(frame.seq == 4 && frame.frame == .null)
        #expect(throws: DecodingError.self) { try (["turnId": "t", "seq": .number(4.5), "frame": .null] as JSONValue).decode(VoiceFrame.self) }
        #expect(throws: DecodingError.self) { try (["turnId": "t", "seq": .number(1e300), "frame": .null] as JSONValue).decode(VoiceFrame.self) }
        let prompt = try (["mode": "relay", "text": "", "authorAddress": "+1", "supersedes": "false"] as JSONValue).decode(MessageReceived.self)
        #expect(prompt.supersedes == false)
    }

    @Test("conversation.ended is built in one place: an unknown channel is carried as sms with channelKnown false, deduplicated per conversation")
    func endedFactory() throws {
        let closed = try ConversationEnded.event(conversationId: "conv1", channel: nil, reason: .orchestrator, status: "CLOSED", metadata: [:])
        #expect(closed.type == EventType.conversationEnded && closed.channel == .sms)
        #expect(closed.payload == ["reason": "orchestrator", "status": "CLOSED", "channelKnown": false, "metadata": [:]])
        let hangup = try ConversationEnded.event(conversationId: "CA1", channel: .voice, reason: .hangup, callSid: "CA1")
        #expect(hangup.channel == .voice)
        #expect(hangup.payload == ["reason": "hangup", "callSid": "CA1"])
        #expect(ConversationEnded.dedupKey(conversationId: "CA1") == "tac:dedup:ended:CA1")
        #expect(ConversationEnded.dedupTTLSeconds == 86_400)
    }

    @Test("Redis key names keep the spelling processes of the previous release use")
    func keyNames() {
        #expect(Streams.voice(instance: "r1") == "tac:voice:r1")
        #expect(Streams.inboundPartition(3) == "tac:inbound:3")
        #expect(RedisKeys.dedup("msg:SM1") == "tac:dedup:msg:SM1")
        #expect(RedisKeys.call("c") == "tac:call:c")
        #expect(RedisKeys.relayCalls("r") == "tac:relay:calls:r")
        #expect(RedisKeys.relayResume("t") == "tac:relay:resume:t")
        #expect(RedisKeys.partitionLease(group: "agents", partition: 2) == "tac:lease:agents:2")
        #expect(RedisKeys.idempotency(route: "messages", key: "k") == "tac:idem:messages:k")
        #expect(RedisKeys.twimlHookReply("id") == "tac:twiml-hook:reply:id")
    }
}
