/// A W3C `traceparent` value: `00-<trace id>-<span id>-<flags>`.
public struct Traceparent: Sendable, Hashable, CustomStringConvertible {
    /// 32 lower-case hex digits.
    public var traceID: String
    /// 16 lower-case hex digits.
    public var spanID: String
    /// Trace flags; `01` = sampled.
    public var flags: String

    /// A new trace with a new span.
    public static func random() -> Traceparent {
        Traceparent(traceID: hex(bytes: 16), spanID: hex(bytes: 8), flags: "01")
    }

    /// Parses a header value, or returns `nil` when it is malformed.
    public init?(_ header: String) {
        let parts = header.split(separator: "-")
        guard parts.count == 4, parts[0] == "00", parts[1].count == 32, parts[2].count == 16, parts[3].count == 2,
            parts.dropFirst().allSatisfy({ $0.allSatisfy(\.isHexDigit) })
        else { return nil }
        self.init(traceID: String(parts[1]), spanID: String(parts[2]), flags: String(parts[3]))
    }

    public init(traceID: String, spanID: String, flags: String) {
        self.traceID = traceID
        self.spanID = spanID
        self.flags = flags
    }

    /// The same trace with a new span id: the next hop of one turn.
    public func child() -> Traceparent {
        Traceparent(traceID: traceID, spanID: Traceparent.hex(bytes: 8), flags: flags)
    }

    /// Continues an incoming header's trace, or starts a new one.
    public static func continuing(_ header: String?) -> Traceparent {
        header.flatMap(Traceparent.init)?.child() ?? .random()
    }

    public var description: String { "00-\(traceID)-\(spanID)-\(flags)" }

    private static func hex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        var out = ""
        out.reserveCapacity(bytes * 2)
        for _ in 0..<bytes {
            let byte = UInt8.random(in: 0...255, using: &generator)
            out += String(byte >> 4, radix: 16) + String(byte & 0x0f, radix: 16)
        }
        return out
    }
}
