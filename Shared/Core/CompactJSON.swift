/// Compact JSON for ``JSONValue`` and ``BusEvent``, written and read directly on bytes instead of
/// through Foundation's `Codable` coders (which cost about 60% of the bus's instructions per message).
///
/// The output is byte for byte what `JSONEncoder` writes with `[.sortedKeys, .withoutEscapingSlashes]`:
/// keys in UTF-8 byte order, `"`, `\` and control characters escaped (`\b \t \n \f \r`, else
/// `\u00xx`), everything else as UTF-8; integral numbers under 10^15 as integers, other numbers as
/// Swift prints them without a trailing `.0`; non-finite numbers refused. The reader takes any
/// RFC 8259 JSON text (nesting up to 512 levels; a trailing comma accepted) and refuses invalid
/// UTF-8, as `JSONDecoder` does.
public enum CompactJSON {
    /// A value as compact JSON bytes; throws ``CompactJSONError`` for a non-finite number.
    public static func encode(_ value: JSONValue) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        try write(value, to: &out)
        return out
    }

    /// Parses JSON bytes.
    public static func decode(_ bytes: some Collection<UInt8>) throws -> JSONValue {
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

    // MARK: Writing

    static func write(_ value: JSONValue, to out: inout [UInt8]) throws {
        switch value {
        case .null: out.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])  // null
        case .bool(let flag): flag ? out.append(contentsOf: [0x74, 0x72, 0x75, 0x65]) : out.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65])
        case .number(let number): try write(number: number, to: &out)
        case .string(let text): write(string: text, to: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                try write(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            var first = true
            for key in members.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                write(string: key, to: &out)
                out.append(UInt8(ascii: ":"))
                // The key came from `members`: the lookup cannot miss.
                try write(members[key] ?? .null, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// As ``JSONValue``'s `Codable` encoding: an integral value under 10^15 as an `Int64`, others as
    /// `JSONEncoder` writes a `Double` (Swift's description without a trailing `.0`).
    static func write(number: Double, to out: inout [UInt8]) throws {
        if number.rounded() == number, abs(number) < 1e15 {
            write(integer: Int64(number), to: &out)
            return
        }
        guard number.isFinite else { throw CompactJSONError(message: "\(number) cannot be written as JSON") }
        var text = number.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        out.append(contentsOf: text.utf8)
    }

    static func write(integer: Int64, to out: inout [UInt8]) {
        if integer >= 0 && integer < 10 {
            out.append(UInt8(ascii: "0") + UInt8(integer))
            return
        }
        out.append(contentsOf: String(integer).utf8)
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func write(string: String, to out: inout [UInt8]) {
        var string = string
        string.withUTF8 { bytes in
            out.append(UInt8(ascii: "\""))
            var start = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if start < index { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index])) }
                start = index + 1
                out.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                default:
                    out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]])
                }
            }
            if start < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...])) }
            out.append(UInt8(ascii: "\""))
        }
    }

    // MARK: Reading

    struct Parser {
        let bytes: UnsafeRawBufferPointer
        var index = 0
        static let maxDepth = 512

        init(bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
        }

        func error(_ message: String) -> CompactJSONError {
            CompactJSONError(message: "\(message) at byte \(index)")
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard index < bytes.count else { throw error("unexpected end of JSON") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return .number(try number())
            default:
                throw error("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw error("unexpected end of JSON") }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
                throw error("invalid literal")
            }
            index += count
        }

        mutating func object(depth: Int) throws -> JSONValue {
            guard depth <= Self.maxDepth else { throw error("JSON nested too deeply") }
            index += 1
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                // A trailing comma is accepted, as JSONDecoder accepts it.
                if members.count > 0, index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return .object(members)
                }
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let key = try string()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
                index += 1
                skipWhitespace()
                members[key] = try value(depth: depth)
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end of JSON") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard bytes[index] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
                index += 1
                return .object(members)
            }
        }

        mutating func array(depth: Int) throws -> JSONValue {
            guard depth <= Self.maxDepth else { throw error("JSON nested too deeply") }
            index += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                if !elements.isEmpty, index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return .array(elements)
                }
                elements.append(try value(depth: depth))
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end of JSON") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard bytes[index] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
                index += 1
                return .array(elements)
            }
        }

        mutating func string() throws -> String {
            index += 1
            let start = index
            // Fast path: no escapes.
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let text = try Self.text(UnsafeRawBufferPointer(rebasing: bytes[start..<index]), at: start)
                    index += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                guard byte >= 0x20 else { throw error("unescaped control character in a string") }
                index += 1
            }
            var decoded = Array(bytes[start..<index])
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return try decoded.withUnsafeBytes { try Self.text($0, at: start) }
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else { throw error("unexpected end of JSON") }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
                    case UInt8(ascii: "b"): decoded.append(0x08)
                    case UInt8(ascii: "f"): decoded.append(0x0C)
                    case UInt8(ascii: "n"): decoded.append(0x0A)
                    case UInt8(ascii: "r"): decoded.append(0x0D)
                    case UInt8(ascii: "t"): decoded.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = UInt32(try hex4())
                        if (0xD800..<0xDC00).contains(scalar) {
                            // A high surrogate must be followed by `\u` and a low one.
                            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                                throw error("unpaired surrogate in a string")
                            }
                            index += 2
                            let low = UInt32(try hex4())
                            guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a string") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw error("unpaired surrogate in a string")
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                        decoded.append(contentsOf: String(Character(unicode)).utf8)
                    default:
                        throw error("invalid escape in a string")
                    }
                default:
                    guard byte >= 0x20 else { throw error("unescaped control character in a string") }
                    decoded.append(byte)
                    index += 1
                }
            }
            throw error("unterminated string")
        }

        mutating func hex4() throws -> UInt16 {
            guard index + 4 <= bytes.count else { throw error("unexpected end of JSON") }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("invalid \\u escape")
                }
                value = value << 4 | UInt16(digit)
                index += 1
            }
            return value
        }

        static func text(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws -> String {
            // ASCII (nearly every string on the bus) needs no validation.
            var ascii = true
            for byte in bytes where byte >= 0x80 {
                ascii = false
                break
            }
            if ascii { return String(decoding: bytes, as: UTF8.self) }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw CompactJSONError(message: "invalid UTF-8 in a string at byte \(offset)")
            }
            return text
        }

        mutating func number() throws -> Double {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count else { throw error("unexpected end of JSON") }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else {
                guard digits() > 0 else { throw error("invalid number") }
            }
            var integral = true
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                integral = false
                index += 1
                guard digits() > 0 else { throw error("invalid number") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                integral = false
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw error("invalid number") }
            }
            let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
            // Short integers (most numbers on the bus) without going through text.
            if integral, slice.count <= 18 {
                let negative = slice.first == UInt8(ascii: "-")
                var value: Int64 = 0
                for byte in slice.dropFirst(negative ? 1 : 0) { value = value * 10 + Int64(byte - UInt8(ascii: "0")) }
                return negative ? -Double(value) : Double(value)
            }
            guard let value = Double(String(decoding: slice, as: UTF8.self)), value.isFinite else {
                throw CompactJSONError(message: "number at byte \(start) does not fit a Double")
            }
            return value
        }

        /// Skips decimal digits; returns how many.
        mutating func digits() -> Int {
            let start = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return index - start
        }
    }
}

/// JSON that ``CompactJSON`` could not read or write.
public struct CompactJSONError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { "JSON: \(message)" }
}

extension JSONValue {
    /// Parses JSON bytes (any JSON text), without Foundation's `JSONDecoder`.
    public static func parse(_ bytes: some Collection<UInt8>) throws -> JSONValue {
        try CompactJSON.decode(bytes)
    }

    /// The value as compact JSON bytes with sorted keys, as `JSONEncoder` with
    /// `[.sortedKeys, .withoutEscapingSlashes]` writes them.
    public func compactJSONBytes() throws -> [UInt8] {
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

    /// Reads the envelope from parsed JSON, with the checks `Decodable` makes: every field present
    /// and of its type (`payload` any JSON), the channel one of ``ChannelKind``; other members ignored.
    static func readJSON(_ value: JSONValue) throws -> BusEvent {
        guard case .object(let members) = value else { throw CompactJSONError(message: "an event must be a JSON object") }
        func text(_ key: String) throws -> String {
            guard case .string(let value)? = members[key] else { throw CompactJSONError(message: "event field '\(key)' missing or not a string") }
            return value
        }
        guard case .number(let versionNumber)? = members["version"], let version = Int(exactly: versionNumber) else {
            throw CompactJSONError(message: "event field 'version' missing or not an integer")
        }
        let channelName = try text("channel")
        guard let channel = ChannelKind(rawValue: channelName) else { throw CompactJSONError(message: "unknown channel '\(channelName)'") }
        guard let payload = members["payload"] else { throw CompactJSONError(message: "event field 'payload' missing") }
        return BusEvent(
            id: try text("id"), type: try text("type"), version: version, conversationId: try text("conversationId"), channel: channel,
            occurredAtText: try text("occurredAt"), traceparent: try text("traceparent"), payload: payload)
    }
}
