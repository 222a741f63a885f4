import Synchronization

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
        // `00-` + 32 hex + `-` + 16 hex + `-` + 2 hex, checked on the UTF-8 bytes in place (this runs
        // for every event on every hop).
        var header = header
        let parts = header.withUTF8 { bytes -> (traceID: String, spanID: String, flags: String)? in
            guard bytes.count == 55, bytes[0] == UInt8(ascii: "0"), bytes[1] == UInt8(ascii: "0"), bytes[2] == UInt8(ascii: "-"),
                bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-")
            else { return nil }
            for index in 3..<55 where index != 35 && index != 52 {
                guard Self.isHexDigit(bytes[index]) else { return nil }
            }
            func text(_ range: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self) }
            return (text(3..<35), text(36..<52), text(53..<55))
        }
        guard let parts else { return nil }
        self.init(traceID: parts.traceID, spanID: parts.spanID, flags: parts.flags)
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

    /// `00-<trace id>-<span id>-<flags>`, the parts' bytes copied in directly (this runs for every
    /// event published).
    package var description: String {
        var traceID = traceID
        var spanID = spanID
        var flags = flags
        return String(unsafeUninitializedCapacity: 6 + traceID.utf8.count + spanID.utf8.count + flags.utf8.count) { out in
            var index = 0
            func put(_ text: inout String, after prefix: StaticString) {
                for offset in 0..<prefix.utf8CodeUnitCount {
                    out[index] = prefix.utf8Start[offset]
                    index += 1
                }
                text.withUTF8 { bytes in
                    for byte in bytes {
                        out[index] = byte
                        index += 1
                    }
                }
            }
            put(&traceID, after: "00-")
            put(&spanID, after: "-")
            put(&flags, after: "-")
            return index
        }
    }

    private static func hex(bytes: Int) -> String {
        var generator = IdentifierGenerator()
        return String(unsafeUninitializedCapacity: bytes * 2) { buffer in
            var remaining = bytes
            var index = 0
            while remaining > 0 {
                var random = generator.next()
                for _ in 0..<min(8, remaining) {
                    let byte = UInt8(truncatingIfNeeded: random)
                    random >>= 8
                    buffer[index] = Hex.digits[Int(byte >> 4)]
                    buffer[index + 1] = Hex.digits[Int(byte & 0x0f)]
                    index += 2
                    remaining -= 1
                }
            }
            return index
        }
    }
}

/// Random-looking 64-bit values for trace and span ids, without a system call each: SplitMix64 over a
/// process-wide counter seeded once from the system's generator. Each call takes the next counter value
/// (one relaxed atomic add), and SplitMix64's mixing is a bijection, so one process never repeats a
/// value; processes start from independent seeds. W3C asks only that ids be unique and
/// random-looking, and `SystemRandomNumberGenerator` cost a `getrandom` system call per 8 bytes, three
/// per new trace (about 1% of messaging-ingress's CPU). Nothing may use an id as a secret: one id
/// reveals the counter, and so the ids after it.
package struct IdentifierGenerator: RandomNumberGenerator {
    /// The counter's step (odd, so the counter runs through every value before it repeats).
    package static let step: UInt64 = 0x9E37_79B9_7F4A_7C15
    private static let counter = Atomic<UInt64>(UInt64.random(in: .min ... .max))

    package mutating func next() -> UInt64 {
        Self.mix(Self.counter.wrappingAdd(Self.step, ordering: .relaxed).newValue)
    }

    /// SplitMix64's output function (a bijection on 64-bit values).
    package static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
