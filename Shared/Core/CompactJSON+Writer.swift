/// Writing compact JSON: the output ``CompactJSON`` documents (sorted keys, `JSONEncoder`'s escapes and numbers).
extension CompactJSON {
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
            // The members' positions sorted by key: each value is then read at its position, not
            // looked up again by hashing its key (and the sort moves positions, not values).
            for position in members.indices.sorted(by: { utf8Precedes(members.keys[$0], members.keys[$1]) }) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                write(string: members.keys[position], to: &out)
                out.append(UInt8(ascii: ":"))
                try write(members.values[position], to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Whether `left` comes before `right` in UTF-8 byte order (as `left.utf8.lexicographicallyPrecedes(right.utf8)`,
    /// comparing the contiguous bytes directly).
    static func utf8Precedes(_ left: String, _ right: String) -> Bool {
        var left = left
        var right = right
        return left.withUTF8 { left in
            right.withUTF8 { right in
                let common = min(left.count, right.count)
                for index in 0..<common where left[index] != right[index] {
                    return left[index] < right[index]
                }
                return left.count < right.count
            }
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

    static func write(string: String, to out: inout [UInt8]) {
        var string = string
        string.withUTF8 { bytes in
            out.append(UInt8(ascii: "\""))
            let raw = UnsafeRawBufferPointer(bytes)
            var start = 0
            var index = 0
            while index < bytes.count {
                // A word at a time past bytes that are written as they are.
                if index + 8 <= bytes.count, !CompactJSON.hasSpecialByte(raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                    index += 8
                    continue
                }
                // A word with a byte to escape (or the last few bytes): byte by byte to its end, so
                // a string full of escapes does not test each word again at every byte.
                let end = min(index + 8, bytes.count)
                while index < end {
                    let byte = bytes[index]
                    index += 1
                    guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                    if start < index - 1 { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<(index - 1)])) }
                    start = index
                    out.append(UInt8(ascii: "\\"))
                    switch byte {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
                    case 0x08: out.append(UInt8(ascii: "b"))
                    case 0x09: out.append(UInt8(ascii: "t"))
                    case 0x0A: out.append(UInt8(ascii: "n"))
                    case 0x0C: out.append(UInt8(ascii: "f"))
                    case 0x0D: out.append(UInt8(ascii: "r"))
                    default:
                        out.append(contentsOf: [
                            UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), Hex.digits[Int(byte >> 4)], Hex.digits[Int(byte & 0xF)],
                        ])
                    }
                }
            }
            if start < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...])) }
            out.append(UInt8(ascii: "\""))
        }
    }
}
