import AgentConnectCore
import EventBus
import Foundation
import Store
import Testing
import TwilioKit

@Suite("Envelope, configuration and partitioning")
struct CoreModelTests {
    @Test("an event survives encoding with every envelope field")
    func envelopeRoundTrip() throws {
        let event = BusEvent(
            type: EventType.messageReceived, conversationId: "conv_1", channel: .whatsapp,
            payload: ["text": "hi", "n": 3, "nested": ["a": [true, .null]]])
        let decoded = try BusEvent.decode(try event.encoded())
        #expect(decoded == event)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(try event.encoded())) as? [String: Any])
        #expect(Set(object.keys) == ["id", "type", "version", "conversationId", "channel", "occurredAt", "traceparent", "payload"])
        #expect(object["channel"] as? String == "whatsapp")
        #expect(decoded.occurredDate != nil)
    }

    @Test("traceparent: valid values parse, a child keeps the trace and changes the span")
    func traceparent() throws {
        let parent = try #require(Traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
        let child = parent.child()
        #expect(child.traceID == parent.traceID)
        #expect(child.spanID != parent.spanID)
        #expect(Traceparent("garbage") == nil)
        #expect(Traceparent.continuing(nil).description.count == 55)
    }

    @Test("a conversation always maps to the same partition, and partitions spread")
    func partitions() {
        let first = Partitioner.partition(of: "conv_abc", partitions: 16)
        #expect(first == Partitioner.partition(of: "conv_abc", partitions: 16))
        let used = Set((0..<200).map { Partitioner.partition(of: "conv_\($0)", partitions: 16) })
        #expect(used.count == 16)
    }

    @Test("configuration errors name the variable")
    func configurationErrors() throws {
        let environment = Environment(["HTTP_PORT": "eighty", "REDIS_URL": "http://x", "LIST": " a, b ,,a "])
        #expect(throws: ConfigurationError.self) { try environment.int("HTTP_PORT", default: 1, range: 0...65535) }
        do {
            _ = try environment.int("HTTP_PORT", default: 1, range: 0...65535)
        } catch {
            #expect("\(error)".contains("HTTP_PORT"))
        }
        #expect(throws: ConfigurationError.self) { try RedisConfiguration(url: "http://x") }
        #expect(throws: ConfigurationError.self) { try environment.required("MISSING") }
        #expect(environment.list("LIST") == ["a", "b"])
    }

    @Test("Redis and PostgreSQL URLs parse")
    func urls() throws {
        let redis = try RedisConfiguration(url: "redis://:secret@cache.internal:6380/3")
        #expect(redis == RedisConfiguration(host: "cache.internal", port: 6380, password: "secret", database: 3))
        let database = try DatabaseConfiguration(url: "postgres://app:p%40ss@db:5433/agentconnect?sslmode=disable")
        #expect(database == DatabaseConfiguration(host: "db", port: 5433, username: "app", password: "p@ss", database: "agentconnect"))
        #expect(throws: ConfigurationError.self) { try DatabaseConfiguration(url: "postgres://db/agentconnect") }
    }

    @Test("addresses are masked in logs")
    func masking() {
        #expect(maskAddress("+15551234567") == "***4567")
        #expect(maskAddress("whatsapp:+15551234567") == "whatsapp:***4567")
        #expect(maskAddress("abc") == "***")
    }

    @Test("phone numbers in Twilio's error texts are masked wherever the error is shown; short numbers are kept")
    func errorTextMasking() {
        let text = "The 'To' number +15551234567 is not a valid phone number (whatsapp:+447700900123), code 21211"
        #expect(Masking.maskPhoneNumbers(text) == "The 'To' number ***4567 is not a valid phone number (whatsapp:***0123), code 21211")
        let error = TwilioAPIError(status: 400, code: 21211, message: text)
        #expect(!"\(error)".contains("5551234567"))
        #expect("\(error)".contains("(21211)"))
    }

    @Test("the published dev auth token is refused with Twilio's own base URLs, and accepted against twilio-sim")
    func devTokenGuard() throws {
        let dev = DevCredentials.authToken
        #expect(throws: ConfigurationError.self) { try DevCredentials.refuseWithRealTwilio(Environment(["TWILIO_AUTH_TOKEN": dev])) }
        #expect(throws: ConfigurationError.self) {
            try DevCredentials.refuseWithRealTwilio(
                Environment([
                    "TWILIO_AUTH_TOKEN": dev, "TWILIO_API_BASE_URL": "http://twilio-sim:8090",
                    "TWILIO_CONVERSATIONS_BASE_URL": "https://conversations.twilio.com", "TWILIO_STUDIO_BASE_URL": "http://twilio-sim:8090",
                ]))
        }
        let sim = [
            "TWILIO_API_BASE_URL": "http://twilio-sim:8090", "TWILIO_CONVERSATIONS_BASE_URL": "http://twilio-sim:8090",
            "TWILIO_STUDIO_BASE_URL": "http://127.0.0.1:8090",
        ]
        try DevCredentials.refuseWithRealTwilio(Environment(sim.merging(["TWILIO_AUTH_TOKEN": dev]) { _, new in new }))
        try DevCredentials.refuseWithRealTwilio(Environment(["TWILIO_AUTH_TOKEN": "a-real-looking-secret"]))
    }

    @Test("Twilio's REST dates parse and format as RFC 2822")
    func rfc2822() throws {
        let date = try #require(Timestamp.parseRFC2822("Wed, 18 Aug 2010 20:01:40 +0000"))
        #expect(date.timeIntervalSince1970 == 1_282_161_700)
        #expect(Timestamp.rfc2822(date) == "Wed, 18 Aug 2010 20:01:40 +0000")
    }
}
