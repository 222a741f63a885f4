import AgentConnectCore
import Foundation
import Testing

/// The events converted to and from ``JSONValue`` directly (``BusEventPayload/busPayload()``,
/// ``BusEventPayload/init(busPayload:)``) against their `Codable` conformance, the reference the wire
/// format is defined by (``JSONValue/init(encoding:)``, ``JSONValue/decode(_:)``).
@Suite("Typed bus events converted directly agree with their Codable conformance")
struct BusEventPayloadConversionTests {
    /// Every converted event with every field set (text that needs escaping, media with and without
    /// their optional fields, nested JSON, a `null` frame).
    static let full: [any BusEventPayload & Equatable] = [
        MessageReceived(
            mode: .orchestrator, text: "hi \"you\"\n/é 👋", authorAddress: "+15550001111",
            media: [.init(url: "https://m/1", contentType: "image/png", size: 42), .init(url: "https://m/2")], authorParticipantId: "PC1",
            agentAddress: "+15550002222", agentParticipantId: "PA1", channelId: "CH1", communicationId: "comm1", messageSid: "SM1", optOut: "stop",
            relayInstance: "relay-1", callSid: "CA1", direction: "inbound", lang: "en-US", customParameters: ["tier": "gold", "": "empty"],
            callSetup: ["callType": "PSTN"], supersedes: false, framesInRow: true),
        ReplyReady(
            text: "a\tb", mode: .classic, customerAddress: "+1", customerParticipantId: "PC1", agentAddress: "+2", agentParticipantId: "PA1",
            channelId: "CH1", media: ["https://m/1", "https://m/2"], contentSid: "HX1", contentVariables: ["1": "a", "2": "b"], part: 2),
        MessageStatus(
            messageSid: "SM1", status: "failed", errorCode: "30003", errorMessage: "Unreachable", agentAddress: "+2", customerAddress: "+1"),
        ConversationStarted(participantId: "P1", participantType: "CUSTOMER", address: "+1", profileId: "prof1"),
        ConversationInactive(status: "INACTIVE", reason: .orchestrator, channelKnown: true, metadata: ["k": ["v", 1, .number(2.5), true, .null]]),
        ConversationEnded(
            reason: .relayLost, callSid: "CA1", relayInstance: "relay-2", handoffData: "{\"to\":\"human\"}", status: "CLOSED", channelKnown: false,
            metadata: ["k": "v"]),
        VoiceInterrupted(utteranceUntilInterrupt: "Hel", durationUntilInterruptMs: 820.5, callSid: "CA1", relayInstance: "r"),
        VoiceInterrupted(utteranceUntilInterrupt: "", durationUntilInterruptMs: 1e20, callSid: "CA1", relayInstance: "r"),
        VoiceDTMF(digit: "#", callSid: "CA1", relayInstance: "r"),
        VoiceRelayMessage(frameType: "error", frame: ["type": "error", "description": "bad"], callSid: "CA1", relayInstance: "r"),
        VoiceCallStatus(kind: .recording, callSid: "CA1", fields: ["RecordingUrl": "https://r/1", "CallStatus": "completed"]),
        VoiceFrame(
            turnId: "t:r1", seq: 12, frame: ["type": "text", "token": "Hi", "last": false], more: [["type": "text", "token": " there"], .null],
            gen: "w1"),
        VoiceFrame(turnId: "t:r1", seq: -3, frame: .null, more: [], gen: "w1"),
    ]

    /// Every converted event with every optional `nil` (and empty collections where they are required).
    static let bare: [any BusEventPayload & Equatable] = [
        MessageReceived(mode: .relay, text: "", authorAddress: ""),
        MessageReceived(mode: .classic, text: "x", authorAddress: "+1", media: [], customParameters: [:]),
        ReplyReady(text: "", mode: .orchestrator),
        MessageStatus(messageSid: "SM1", status: "sent", agentAddress: "+2", customerAddress: "+1"),
        ConversationStarted(),
        ConversationInactive(channelKnown: nil),
        ConversationEnded(reason: .hangup),
        VoiceCallStatus(kind: .session, callSid: "CA1", fields: [:]),
        VoiceFrame(turnId: "t", seq: 0, frame: ["type": "end"]),
    ]

    @Test("every converted event writes the envelope bytes its Codable conformance writes, and reads back equal both ways")
    func sameBytes() throws {
        for payload in Self.full + Self.bare {
            try sameBytes(payload)
        }
    }

    private func sameBytes<Payload: BusEventPayload & Equatable>(_ payload: Payload) throws {
        let date = Date(timeIntervalSince1970: 1_790_000_000.123)
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        let direct = try BusEvent(payload, id: "e1", conversationId: "c", channel: .voice, occurredAt: date, traceparent: traceparent).encoded()
        let reference = try BusEvent(
            id: "e1", type: Payload.type, conversationId: "c", channel: .voice, occurredAt: date, traceparent: traceparent,
            payload: JSONValue(encoding: payload)
        ).encoded()
        #expect(direct == reference, "\(Payload.self): \(String(decoding: direct, as: UTF8.self))")
        let back = try BusEvent.decode(direct)
        #expect(try back.decode(Payload.self) == payload, "\(Payload.self)")
        #expect(try back.payload.decode(Payload.self) == payload, "\(Payload.self)")
    }

    @Test("the events with every field set leave none out, so a field added later must be set there and its conversion compared")
    func fullSetsEveryField() throws {
        for payload in Self.full {
            let written = try JSONValue(encoding: payload).object?.count
            #expect(written == Mirror(reflecting: payload).children.count, "\(type(of: payload))")
        }
    }

    @Test("optional JSON set to null is written as null and reads back as absent, as through Codable")
    func nullMetadata() throws {
        let inactive = ConversationInactive(metadata: .null)
        let direct = try BusEvent(inactive, id: "e1", conversationId: "c", channel: .sms)
        #expect(direct.payload == ["status": "INACTIVE", "reason": "orchestrator", "channelKnown": false, "metadata": .null])
        #expect(try direct.payload == JSONValue(encoding: inactive))
        #expect(try direct.decode(ConversationInactive.self) == ConversationInactive(metadata: nil))
        #expect(try direct.payload.decode(ConversationInactive.self) == ConversationInactive(metadata: nil))
    }

    /// Payloads each converted event must read as its `Codable` conformance does: lenient scalars,
    /// `null` and missing optionals, unknown members, and malformed ones (the same error).
    static let payloads: [(type: any BusEventPayload.Type, payload: JSONValue)] = [
        (MessageReceived.self, ["mode": "relay", "text": "t", "authorAddress": "+1", "supersedes": "false", "extra": [1, 2]]),
        (
            MessageReceived.self,
            [
                "mode": "classic", "text": "t", "authorAddress": "+1", "media": [["url": "u", "size": "42", "contentType": .null, "x": 1]],
                "callSid": .null, "customParameters": .null,
            ]
        ),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "media": .null]),
        (MessageReceived.self, .array([])),
        (MessageReceived.self, "text"),
        (MessageReceived.self, .null),
        (MessageReceived.self, ["text": "t", "authorAddress": "+1"]),
        (MessageReceived.self, ["mode": 3, "text": "t", "authorAddress": "+1"]),
        (MessageReceived.self, ["mode": "fax", "text": "t", "authorAddress": "+1"]),
        (MessageReceived.self, ["mode": "classic", "text": 5, "authorAddress": "+1"]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": .null]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "media": "u"]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "media": ["u"]]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "media": [["url": "u"], ["size": 1]]]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "media": [["url": "u"], ["url": "v", "size": "big"]]]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "media": [["url": "u", "size": .number(4.5)]]]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "media": [["url": "u", "contentType": 5]]]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "customParameters": "x"]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "customParameters": ["tier": 1]]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "callSetup": ["a": "b", "tier": .null]]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "supersedes": 1]),
        (MessageReceived.self, ["mode": "classic", "text": "t", "authorAddress": "+1", "agentParticipantId": false]),
        (ReplyReady.self, ["text": "t", "mode": "orchestrator", "part": "2", "media": []]),
        (ReplyReady.self, ["text": "t"]),
        (ReplyReady.self, ["text": "t", "mode": "classic", "media": [.null]]),
        (ReplyReady.self, ["text": "t", "mode": "classic", "media": ["a", 1]]),
        (ReplyReady.self, ["text": "t", "mode": "classic", "contentVariables": ["name": 2]]),
        (ReplyReady.self, ["text": "t", "mode": "classic", "part": .number(2.5)]),
        (ReplyReady.self, ["text": "t", "mode": "classic", "part": .number(1e300)]),
        (MessageStatus.self, ["messageSid": "SM1", "status": "sent", "agentAddress": "+2", "customerAddress": "+1", "errorCode": .null]),
        (MessageStatus.self, ["messageSid": "SM1", "status": "sent", "agentAddress": "+2", "customerAddress": "+1", "errorCode": 30003]),
        (MessageStatus.self, ["messageSid": "SM1", "status": "sent", "agentAddress": "+2"]),
        (ConversationStarted.self, [:]),
        (ConversationStarted.self, ["participantId": 1]),
        (ConversationStarted.self, .array([])),
        (ConversationInactive.self, ["status": "INACTIVE", "reason": "orchestrator", "channelKnown": "true", "metadata": .null]),
        (ConversationInactive.self, ["status": "INACTIVE", "reason": "orchestrator", "metadata": [1]]),
        (ConversationInactive.self, ["reason": "orchestrator"]),
        (ConversationInactive.self, ["status": "INACTIVE", "reason": "nope"]),
        (ConversationInactive.self, ["status": "INACTIVE", "reason": "orchestrator", "channelKnown": "yes"]),
        (ConversationEnded.self, ["reason": "relay_lost", "metadata": "m"]),
        (ConversationEnded.self, ["reason": .null]),
        (ConversationEnded.self, ["callSid": "CA1"]),
        (ConversationEnded.self, ["reason": "hangup", "status": ["CLOSED"]]),
        (VoiceInterrupted.self, ["utteranceUntilInterrupt": "H", "durationUntilInterruptMs": "820.5", "callSid": "C", "relayInstance": "r"]),
        (VoiceInterrupted.self, ["utteranceUntilInterrupt": "H", "durationUntilInterruptMs": true, "callSid": "C", "relayInstance": "r"]),
        (VoiceInterrupted.self, ["utteranceUntilInterrupt": "H", "callSid": "C", "relayInstance": "r"]),
        (VoiceDTMF.self, ["digit": 7, "callSid": "C", "relayInstance": "r"]),
        (VoiceDTMF.self, ["digit": "7", "callSid": "C"]),
        (VoiceRelayMessage.self, ["frameType": "info", "frame": .null, "callSid": "C", "relayInstance": "r"]),
        (VoiceRelayMessage.self, ["frameType": "info", "callSid": "C", "relayInstance": "r"]),
        (VoiceCallStatus.self, ["kind": "amd", "callSid": "C", "fields": ["AnsweredBy": "human"]]),
        (VoiceCallStatus.self, ["kind": "x", "callSid": "C", "fields": [:]]),
        (VoiceCallStatus.self, ["kind": "amd", "callSid": "C"]),
        (VoiceCallStatus.self, ["kind": "amd", "callSid": "C", "fields": .null]),
        (VoiceCallStatus.self, ["kind": "amd", "callSid": "C", "fields": ["a": 1]]),
        (VoiceFrame.self, ["turnId": "t", "seq": "4", "frame": .null]),
        (VoiceFrame.self, ["turnId": "t", "seq": .number(4.5), "frame": .null]),
        (VoiceFrame.self, ["turnId": "t", "seq": .number(1e300), "frame": .null]),
        (VoiceFrame.self, ["turnId": "t", "seq": "four", "frame": .null]),
        (VoiceFrame.self, ["turnId": "t", "seq": 1]),
        (VoiceFrame.self, ["turnId": "t", "seq": 1, "frame": [:], "gen": 5]),
        (VoiceFrame.self, ["turnId": "t", "seq": 1, "frame": [:], "gen": .null]),
        (VoiceFrame.self, ["turnId": "t", "seq": 1, "frame": [:], "more": [.null, 1, ["type": "end"]]]),
        (VoiceFrame.self, ["turnId": "t", "seq": 1, "frame": [:], "more": .null]),
        (VoiceFrame.self, ["turnId": "t", "seq": 1, "frame": [:], "more": ["type": "end"]]),
    ]

    /// One difference is intended: a map's member named like a number (`contentVariables` `"1"`) is
    /// named `payload.contentVariables.1`, where the `Codable` path wrote `[1]` as for an array element
    /// (``namedErrors()``).
    @Test("every converted event reads what its Codable conformance reads, and refuses what it refuses with the same message")
    func sameReading() {
        for (type, payload) in Self.payloads {
            let (direct, reference) = outcomesOfAny(type, payload)
            #expect(direct == reference, "\(type) \(payload.compactJSON)")
        }
    }

    /// The direct reading through ``BusEvent/decode(_:)`` and the `Codable` one, each as the value
    /// read or the error message ``BusEvent/decode(_:)`` gives.
    private func outcomes<Payload: BusEventPayload & Equatable>(_ type: Payload.Type, _ payload: JSONValue) -> (String, String) {
        let event = BusEvent(id: "e1", type: Payload.type, conversationId: "c", channel: .sms, payload: payload)
        let direct: String
        do {
            direct = "read \(try event.decode(type))"
        } catch let error as BusEventPayloadError where error.code == .invalidPayload {
            direct = error.message
        } catch {
            direct = "unexpected \(error)"
        }
        let reference: String
        do {
            reference = "read \(try payload.decode(type))"
        } catch let error as DecodingError {
            reference = "\(Payload.type) event e1: \(BusEventPayloadError.describe(error))"
        } catch {
            reference = "unexpected \(error)"
        }
        return (direct, reference)
    }

    private func outcomesOfAny(_ type: any BusEventPayload.Type, _ payload: JSONValue) -> (String, String) {
        switch type {
        case let type as MessageReceived.Type: outcomes(type, payload)
        case let type as ReplyReady.Type: outcomes(type, payload)
        case let type as MessageStatus.Type: outcomes(type, payload)
        case let type as ConversationStarted.Type: outcomes(type, payload)
        case let type as ConversationInactive.Type: outcomes(type, payload)
        case let type as ConversationEnded.Type: outcomes(type, payload)
        case let type as VoiceInterrupted.Type: outcomes(type, payload)
        case let type as VoiceDTMF.Type: outcomes(type, payload)
        case let type as VoiceRelayMessage.Type: outcomes(type, payload)
        case let type as VoiceCallStatus.Type: outcomes(type, payload)
        case let type as VoiceFrame.Type: outcomes(type, payload)
        default: ("no direct conversion for \(type)", "")
        }
    }

    @Test("a malformed payload's error names the member down to a media item, a map's entry or an array element")
    func namedErrors() {
        func failure<Payload: BusEventPayload>(_ type: Payload.Type, _ payload: JSONValue) -> String? {
            let event = BusEvent(id: "e2", type: Payload.type, conversationId: "c", channel: .sms, payload: payload)
            do {
                _ = try event.decode(type)
                return nil
            } catch let error as BusEventPayloadError {
                return error.code == .invalidPayload ? error.message : "wrong code: \(error)"
            } catch {
                return "not a BusEventPayloadError: \(error)"
            }
        }
        let message: JSONValue = ["mode": "classic", "text": "t", "authorAddress": "+1"]
        func with(_ key: String, _ value: JSONValue) -> JSONValue {
            guard case .object(var members) = message else { return message }
            members[key] = value
            return .object(members)
        }
        #expect(
            failure(MessageReceived.self, with("media", [["url": "u"], ["contentType": "image/png"]]))
                == "message.received event e2: payload.media[1].url is missing")
        #expect(
            failure(MessageReceived.self, with("media", [["url": "u", "size": "big"]]))
                == "message.received event e2: payload.media[0].size: expected Int, found a string")
        #expect(
            failure(MessageReceived.self, with("customParameters", ["tier": .null]))
                == "message.received event e2: payload.customParameters.tier: expected String, found null")
        #expect(failure(MessageReceived.self, with("media", [:])) == "message.received event e2: payload.media: expected an array, found an object")
        #expect(
            failure(ReplyReady.self, ["text": "t", "mode": "sms"])
                == "reply.ready event e2: payload.mode: Cannot initialize ConversationMode from invalid String value sms")
        #expect(
            failure(ReplyReady.self, ["text": "t", "mode": "classic", "media": ["a", 1]])
                == "reply.ready event e2: payload.media[1]: expected String, found a number")
        #expect(
            failure(ReplyReady.self, ["text": "t", "mode": "classic", "contentVariables": ["1": 2]])
                == "reply.ready event e2: payload.contentVariables.1: expected String, found a number")
        #expect(failure(VoiceCallStatus.self, ["kind": "amd", "callSid": "C"]) == "voice.call-status event e2: payload.fields is missing")
        #expect(
            failure(VoiceFrame.self, ["turnId": "t", "seq": .number(4.5), "frame": .null])
                == "voice.frame event e2: payload.seq: expected Int, found a number")
        #expect(failure(VoiceFrame.self, ["turnId": "t", "seq": 1]) == "voice.frame event e2: payload.frame is missing")
    }
}
