/// A W3C `traceparent` value: `00-<trace id>-<span id>-<flags>`.
package struct Traceparent: Sendable, Hashable, CustomStringConvertible {
    /// 32 lower-case hex digits.
    package var traceID: String
    /// 16 lower-case hex digits.
    package var spanID: String
    /// Trace flags; `01` = sampled.
    package var flags: String

    /// A new trace with a new span.
    package static func random() -> Traceparent {
        Traceparent(traceID: hex(bytes: 16), spanID: hex(bytes: 8), flags: "01")
    }

    /// Parses a header value, or returns `nil` when it is malformed.
    package init?(_ header: String) {
        // `00-` + 32 hex + `-` + 16 hex + `-` + 2 hex, checked on the UTF-8 bytes (this runs for
        // every event on every hop).
        let bytes = Array(header.utf8)
        guard bytes.count == 55, bytes[0] == UInt8(ascii: "0"), bytes[1] == UInt8(ascii: "0"), bytes[2] == UInt8(ascii: "-"),
            bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-")
        else { return nil }
        for index in 3..<55 where index != 35 && index != 52 {
            guard Self.isHexDigit(bytes[index]) else { return nil }
        }
        self.init(
            traceID: String(decoding: bytes[3..<35], as: UTF8.self), spanID: String(decoding: bytes[36..<52], as: UTF8.self),
            flags: String(decoding: bytes[53..<55], as: UTF8.self))
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }

    package init(traceID: String, spanID: String, flags: String) {
        self.traceID = traceID
        self.spanID = spanID
        self.flags = flags
    }

    /// The same trace with a new span id: the next hop of one turn.
    package func child() -> Traceparent {
        Traceparent(traceID: traceID, spanID: Traceparent.hex(bytes: 8), flags: flags)
    }

    /// Continues an incoming header's trace, or starts a new one.
    package static func continuing(_ header: String?) -> Traceparent {
        header.flatMap(Traceparent.init)?.child() ?? .random()
    }

    package var description: String { "00-\(traceID)-\(spanID)-\(flags)" }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private static func hex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return String(unsafeUninitializedCapacity: bytes * 2) { buffer in
            var remaining = bytes
            var index = 0
            while remaining > 0 {
                var random = generator.next()
                for _ in 0..<min(8, remaining) {
                    let byte = UInt8(truncatingIfNeeded: random)
                    random >>= 8
                    buffer[index] = hexDigits[Int(byte >> 4)]
                    buffer[index + 1] = hexDigits[Int(byte & 0x0f)]
                    index += 2
                    remaining -= 1
                }
            }
            return index
        }
    }
}
