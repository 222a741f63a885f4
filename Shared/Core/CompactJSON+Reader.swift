/// Reading JSON: an RFC 8259 parser on bytes (nesting up to 512 levels, a trailing comma accepted,
/// invalid UTF-8 refused), as ``CompactJSON`` documents.
extension CompactJSON {
    struct Parser {
        let bytes: UnsafeRawBufferPointer
        var index = 0
        /// The members read so far of the objects being read, innermost last (one buffer for all).
        var pendingMembers: [(key: String, value: JSONValue)] = []
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
            // The members go on `pendingMembers` (shared with the objects inside), then into a
            // dictionary made at its final size: no rehashing as it grows.
            let base = pendingMembers.count
            if pendingMembers.capacity == 0 { pendingMembers.reserveCapacity(16) }
            try members(depth: depth) { parser, key in
                let value = try parser.value(depth: depth)
                parser.pendingMembers.append((key, value))
            }
            var members: [String: JSONValue] = .init(minimumCapacity: pendingMembers.count - base)
            for index in base..<pendingMembers.count {
                // A repeated name keeps its last value.
                members[pendingMembers[index].key] = pendingMembers[index].value
            }
            pendingMembers.removeLast(pendingMembers.count - base)
            return .object(members)
        }

        /// Reads an object at the current `{`, calling `member` with each member's name; `member`
        /// reads the value.
        mutating func members(depth: Int, _ member: (inout Parser, String) throws -> Void) throws {
            guard depth <= Self.maxDepth else { throw error("JSON nested too deeply") }
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return
            }
            var any = false
            while true {
                skipWhitespace()
                // A trailing comma is accepted, as JSONDecoder accepts it.
                if any, index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return
                }
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let key = try string()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
                index += 1
                skipWhitespace()
                try member(&self, key)
                any = true
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end of JSON") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard bytes[index] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
                index += 1
                return
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
            // Fast path: no escapes; a word at a time up to the first byte that may end it.
            while index + 8 <= bytes.count, !CompactJSON.hasSpecialByte(bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                index += 8
            }
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
            var index = 0
            while index + 8 <= bytes.count {
                if CompactJSON.hasNonASCII(bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                    ascii = false
                    break
                }
                index += 8
            }
            while ascii && index < bytes.count {
                if bytes[index] >= 0x80 { ascii = false }
                index += 1
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
