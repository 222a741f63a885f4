import Foundation

/// The envelope every event on the bus carries (ARCHITECTURE §2).
public struct BusEvent: Sendable, Codable, Hashable {
    /// Unique id; also the idempotency key of the event's effects.
    public var id: String
    /// One of ``EventType``.
    public var type: String
    /// Schema version of `payload`.
    public var version: Int
    /// The conversation this event belongs to.
    public var conversationId: String
    /// The channel the conversation runs on.
    public var channel: ChannelKind
    /// When the event happened, ISO-8601 with milliseconds.
    public var occurredAt: String
    /// W3C trace context, carried across every hop.
    public var traceparent: String
    /// Type-specific fields.
    public var payload: JSONValue

    public init(
        id: String = BusEvent.newID(), type: String, version: Int = 1, conversationId: String, channel: ChannelKind,
        occurredAt: Date = Date(), traceparent: String = Traceparent.random().description, payload: JSONValue
    ) {
        self.id = id
        self.type = type
        self.version = version
        self.conversationId = conversationId
        self.channel = channel
        self.occurredAt = Timestamp.iso8601(occurredAt)
        self.traceparent = traceparent
        self.payload = payload
    }

    /// An envelope read back from the bus, its `occurredAt` text kept as it was written.
    init(
        id: String, type: String, version: Int, conversationId: String, channel: ChannelKind, occurredAtText: String, traceparent: String,
        payload: JSONValue
    ) {
        self.id = id
        self.type = type
        self.version = version
        self.conversationId = conversationId
        self.channel = channel
        self.occurredAt = occurredAtText
        self.traceparent = traceparent
        self.payload = payload
    }

    /// A new random event id.
    public static func newID() -> String { UUID().uuidString.lowercased() }

    /// The event as compact JSON bytes: byte for byte what `JSONEncoder` with
    /// `[.sortedKeys, .withoutEscapingSlashes]` writes, without its cost (``CompactJSON``).
    public func encoded() throws -> [UInt8] {
        try BusEvent.writeJSON(self)
    }

    /// Decodes an event from JSON bytes, with the checks `Decodable` makes (``CompactJSON``).
    public static func decode(_ bytes: some Collection<UInt8>) throws -> BusEvent {
        try readJSON(CompactJSON.decode(bytes))
    }

    /// `occurredAt` as a date, when it parses.
    public var occurredDate: Date? { Timestamp.parse(occurredAt) }
}

/// ISO-8601 timestamps with milliseconds, as used in events and rows.
public enum Timestamp {
    /// Formats a date as `2026-11-21T12:00:00.123Z`.
    public static func iso8601(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted))
    }

    /// Parses ISO-8601 with or without fractional seconds.
    public static func parse(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted)) {
            return date
        }
        return try? Date(text, strategy: .iso8601)
    }

    /// Formats a date as Twilio's REST API 2010 does: `Wed, 18 Aug 2010 20:01:40 +0000`.
    public static func rfc2822(_ date: Date) -> String {
        rfc2822Formatter().string(from: date)
    }

    /// Parses Twilio's REST API 2010 dates (`Wed, 18 Aug 2010 20:01:40 +0000`).
    public static func parseRFC2822(_ text: String) -> Date? {
        rfc2822Formatter().date(from: text)
    }

    private static func rfc2822Formatter() -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        return formatter
    }
}
