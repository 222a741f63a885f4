/// Compact JSON for ``JSONValue`` and ``BusEvent``, written and read directly on bytes instead of
/// through Foundation's `Codable` coders (which cost about 60% of the bus's instructions per message).
///
/// The output is byte for byte what `JSONEncoder` writes with `[.sortedKeys, .withoutEscapingSlashes]`:
/// keys in UTF-8 byte order, `"`, `\` and control characters escaped (`\b \t \n \f \r`, else
/// `\u00xx`), everything else as UTF-8; integral numbers under 10^15 as integers, other numbers as
/// Swift prints them without a trailing `.0`; non-finite numbers refused. The reader takes any
/// RFC 8259 JSON text (nesting up to 512 levels; a trailing comma accepted) and refuses invalid
/// UTF-8, as `JSONDecoder` does.
package enum CompactJSON {
    /// A value as compact JSON bytes; throws ``CompactJSONError`` for a non-finite number.
    package static func encode(_ value: JSONValue) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        try write(value, to: &out)
        return out
    }

    /// Parses JSON bytes.
    package static func decode(_ bytes: some Collection<UInt8>) throws -> JSONValue {
        if let value = try bytes.withContiguousStorageIfAvailable({ try decode(buffer: UnsafeRawBufferPointer($0)) }) {
            return value
        }
        return try Array(bytes).withUnsafeBytes { try decode(buffer: $0) }
    }

    static func decode(buffer: UnsafeRawBufferPointer) throws -> JSONValue {
        var parser = Parser(bytes: buffer)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == buffer.count else { throw parser.error("unexpected bytes after the JSON value") }
        return value
    }
}

extension CompactJSON {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highBits: UInt64 = 0x8080_8080_8080_8080

    /// Whether any of the eight bytes in `word` is a quote, a backslash or a control character
    /// (below 0x20): the bytes a string's scan must stop at. Strings are scanned a word at a time
    /// and byte by byte only near such a byte (the classic test for a zero byte in a word, applied
    /// to the word xor'ed with each byte sought: true exactly when such a byte is there).
    @inline(__always)
    static func hasSpecialByte(_ word: UInt64) -> Bool {
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        let zeroInQuote = (quote &- ones) & ~quote
        let zeroInBackslash = (backslash &- ones) & ~backslash
        let belowSpace = (word &- ones &* 0x20) & ~word
        return (zeroInQuote | zeroInBackslash | belowSpace) & highBits != 0
    }

    /// Whether any of the eight bytes in `word` is outside ASCII.
    @inline(__always)
    static func hasNonASCII(_ word: UInt64) -> Bool {
        word & highBits != 0
    }
}

/// JSON that ``CompactJSON`` could not read or write.
package struct CompactJSONError: Error, CustomStringConvertible, Sendable {
    package var message: String
    package var description: String { "JSON: \(message)" }
}

extension JSONValue {
    /// Parses JSON bytes (any JSON text), without Foundation's `JSONDecoder`.
    package static func parse(_ bytes: some Collection<UInt8>) throws -> JSONValue {
        try CompactJSON.decode(bytes)
    }

    /// The value as compact JSON bytes with sorted keys, as `JSONEncoder` with
    /// `[.sortedKeys, .withoutEscapingSlashes]` writes them.
    package func compactJSONBytes() throws -> [UInt8] {
        try CompactJSON.encode(self)
    }
}

extension BusEvent {
    /// The envelope's JSON, keys in sorted order (as `JSONEncoder` with `.sortedKeys` writes it).
    static func writeJSON(_ event: BusEvent) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(384)
        out.append(contentsOf: #"{"channel":"#.utf8)
        CompactJSON.write(string: event.channel.rawValue, to: &out)
        out.append(contentsOf: #","conversationId":"#.utf8)
        CompactJSON.write(string: event.conversationId, to: &out)
        out.append(contentsOf: #","id":"#.utf8)
        CompactJSON.write(string: event.id, to: &out)
        out.append(contentsOf: #","occurredAt":"#.utf8)
        CompactJSON.write(string: event.occurredAt, to: &out)
        out.append(contentsOf: #","payload":"#.utf8)
        try CompactJSON.write(event.payload, to: &out)
        out.append(contentsOf: #","traceparent":"#.utf8)
        CompactJSON.write(string: event.traceparent, to: &out)
        out.append(contentsOf: #","type":"#.utf8)
        CompactJSON.write(string: event.type, to: &out)
        out.append(contentsOf: #","version":"#.utf8)
        CompactJSON.write(integer: Int64(event.version), to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Reads an envelope from JSON bytes, with the checks `Decodable` makes: every field present and
    /// of its type (`payload` any JSON), the channel one of ``ChannelKind``; other members ignored (a
    /// repeated one counts with its last value). The fields are taken as the members are read, without
    /// a dictionary of the members; the JSON is read whole (and refused when invalid) before they are
    /// checked.
    static func readJSON(_ buffer: UnsafeRawBufferPointer) throws -> BusEvent {
        var parser = CompactJSON.Parser(bytes: buffer)
        parser.skipWhitespace()
        var fields = Fields()
        let isObject = parser.index < buffer.count && buffer[parser.index] == UInt8(ascii: "{")
        if isObject {
            try parser.members(depth: 1) { parser, key in
                let value = try parser.value(depth: 1)
                fields.set(key, value)
            }
        } else {
            _ = try parser.value(depth: 0)
        }
        parser.skipWhitespace()
        guard parser.index == buffer.count else { throw parser.error("unexpected bytes after the JSON value") }
        guard isObject else { throw CompactJSONError(message: "an event must be a JSON object") }
        func text(_ value: JSONValue?, _ key: String) throws -> String {
            guard case .string(let value)? = value else { throw CompactJSONError(message: "event field '\(key)' missing or not a string") }
            return value
        }
        guard case .number(let versionNumber)? = fields.version, let version = Int(exactly: versionNumber) else {
            throw CompactJSONError(message: "event field 'version' missing or not an integer")
        }
        let channelName = try text(fields.channel, "channel")
        guard let channel = ChannelKind(rawValue: channelName) else { throw CompactJSONError(message: "unknown channel '\(channelName)'") }
        guard let payload = fields.payload else { throw CompactJSONError(message: "event field 'payload' missing") }
        return BusEvent(
            id: try text(fields.id, "id"), type: try text(fields.type, "type"), version: version,
            conversationId: try text(fields.conversationId, "conversationId"), channel: channel,
            occurredAtText: try text(fields.occurredAt, "occurredAt"), traceparent: try text(fields.traceparent, "traceparent"),
            payload: payload)
    }

    /// The envelope's members as read, before they are checked.
    private struct Fields {
        var channel: JSONValue?
        var conversationId: JSONValue?
        var id: JSONValue?
        var occurredAt: JSONValue?
        var payload: JSONValue?
        var traceparent: JSONValue?
        var type: JSONValue?
        var version: JSONValue?

        /// Keeps `value` when `key` names a field; other members are ignored.
        mutating func set(_ key: String, _ value: JSONValue) {
            switch key {
            case "channel": channel = value
            case "conversationId": conversationId = value
            case "id": id = value
            case "occurredAt": occurredAt = value
            case "payload": payload = value
            case "traceparent": traceparent = value
            case "type": type = value
            case "version": version = value
            default: break
            }
        }
    }
}
