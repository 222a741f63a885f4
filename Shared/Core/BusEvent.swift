import Foundation

/// The envelope every event on the bus carries (docs/architecture.md §2).
package struct BusEvent: Sendable, Codable, Hashable {
    /// Unique id; also the idempotency key of the event's effects.
    package var id: String
    /// One of ``EventType``.
    package var type: String
    /// Schema version of `payload`.
    package var version: Int
    /// The conversation this event belongs to.
    package var conversationId: String
    /// The channel the conversation runs on.
    package var channel: ChannelKind
    /// When the event happened, ISO-8601 with milliseconds.
    package var occurredAt: String
    /// W3C trace context, carried across every hop.
    package var traceparent: String
    /// Type-specific fields.
    package var payload: JSONValue

    package init(
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
    package static func newID() -> String {
        // `UUID().uuidString.lowercased()`, formatted directly (``Hex``).
        withUnsafeBytes(of: UUID().uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { out in
                var index = 0
                for (offset, byte) in bytes.enumerated() {
                    if offset == 4 || offset == 6 || offset == 8 || offset == 10 {
                        out[index] = UInt8(ascii: "-")
                        index += 1
                    }
                    out[index] = Hex.digits[Int(byte >> 4)]
                    out[index + 1] = Hex.digits[Int(byte & 0x0F)]
                    index += 2
                }
                return index
            }
        }
    }

    /// The event as compact JSON bytes: byte for byte what `JSONEncoder` with
    /// `[.sortedKeys, .withoutEscapingSlashes]` writes, without its cost (``CompactJSON``).
    package func encoded() throws -> [UInt8] {
        try BusEvent.writeJSON(self)
    }

    /// Decodes an event from JSON bytes, with the checks `Decodable` makes (``CompactJSON``).
    package static func decode(_ bytes: some Collection<UInt8>) throws -> BusEvent {
        if let event = try bytes.withContiguousStorageIfAvailable({ try readJSON(UnsafeRawBufferPointer($0)) }) {
            return event
        }
        return try Array(bytes).withUnsafeBytes { try readJSON($0) }
    }

    /// `occurredAt` as a date, when it parses.
    package var occurredDate: Date? { Timestamp.parse(occurredAt) }
}

/// ISO-8601 timestamps with milliseconds, as used in events and rows.
package enum Timestamp {
    /// Formats a date as `2026-11-21T12:00:00.123Z` (UTC, milliseconds truncated), as the ISO 8601
    /// format style with fractional seconds writes it, computed directly (this runs for every event).
    package static func iso8601(_ date: Date) -> String {
        // Whole seconds, then the fraction truncated to milliseconds, both from the date's own
        // representation (seconds since 2001), as the format style computes them.
        let interval = date.timeIntervalSinceReferenceDate
        let seconds = interval.rounded(.down)
        guard seconds.isFinite, abs(seconds) < 200_000_000_000 else { return foundationISO8601(date) }
        let total = (Int64(seconds) + 978_307_200) * 1000 + min(999, Int64(((interval - seconds) * 1000).rounded(.down)))
        let (days, millisecondOfDay) = floorDivision(total, 86_400_000)
        let (year, month, day) = civil(fromDays: days)
        guard (0...9999).contains(year) else { return foundationISO8601(date) }
        let second = millisecondOfDay / 1000
        return String(unsafeUninitializedCapacity: 24) { out in
            func put(_ value: Int64, _ width: Int, at offset: Int) {
                var value = value
                for index in stride(from: offset + width - 1, through: offset, by: -1) {
                    out[index] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
            }
            put(year, 4, at: 0)
            out[4] = UInt8(ascii: "-")
            put(month, 2, at: 5)
            out[7] = UInt8(ascii: "-")
            put(day, 2, at: 8)
            out[10] = UInt8(ascii: "T")
            put(second / 3600, 2, at: 11)
            out[13] = UInt8(ascii: ":")
            put(second / 60 % 60, 2, at: 14)
            out[16] = UInt8(ascii: ":")
            put(second % 60, 2, at: 17)
            out[19] = UInt8(ascii: ".")
            put(millisecondOfDay % 1000, 3, at: 20)
            out[23] = UInt8(ascii: "Z")
            return 24
        }
    }

    /// Parses ISO-8601 with or without fractional seconds.
    package static func parse(_ text: String) -> Date? {
        if let date = parseMilliseconds(text) { return date }
        if let date = try? Date(
            text,
            strategy: .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(
                separator: .omitted))
        {
            return date
        }
        return try? Date(text, strategy: .iso8601)
    }

    private static func foundationISO8601(_ date: Date) -> String {
        date.formatted(
            .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(
                separator: .omitted))
    }

    /// The exact form ``iso8601(_:)`` writes (`yyyy-MM-ddTHH:mm:ss.SSSZ`), read directly; `nil` for
    /// anything else (left to Foundation).
    static func parseMilliseconds(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { bytes -> Date? in
            guard bytes.count == 24, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
                bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"), bytes[19] == UInt8(ascii: "."), bytes[23] == UInt8(ascii: "Z")
            else { return nil }
            func number(_ offset: Int, _ width: Int) -> Int64? {
                var value: Int64 = 0
                for index in offset..<(offset + width) {
                    let byte = bytes[index]
                    guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                    value = value * 10 + Int64(byte - UInt8(ascii: "0"))
                }
                return value
            }
            guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
                let minute = number(14, 2), let second = number(17, 2), let millisecond = number(20, 3),
                (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60
            else { return nil }
            let days = days(fromCivil: year, month, day)
            // A day past the month's end (2026-02-30) is not a date: leave it to Foundation to refuse.
            guard civil(fromDays: days) == (year, month, day) else { return nil }
            let milliseconds = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millisecond
            return Date(timeIntervalSince1970: Double(milliseconds) / 1000)
        }
    }

    private static func floorDivision(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        let quotient = value / divisor
        let remainder = value % divisor
        return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    private static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    private static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Formats a date as Twilio's REST API 2010 does: `Wed, 18 Aug 2010 20:01:40 +0000`.
    package static func rfc2822(_ date: Date) -> String {
        rfc2822Formatter().string(from: date)
    }

    /// Parses Twilio's REST API 2010 dates (`Wed, 18 Aug 2010 20:01:40 +0000`).
    package static func parseRFC2822(_ text: String) -> Date? {
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
