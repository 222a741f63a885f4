/// `Codable` values to and from ``JSONValue`` directly, without bytes or Foundation's coders: the
/// wire format of a typed bus event (``BusEventPayload``) as its `Codable` conformance states it, the
/// conversion of a payload type without a direct one, and what the direct ones must match.
///
/// Encoding: a `nil` optional is left out (``JSONValue``'s readers take a missing member and `null`
/// alike); numbers become `.number`; a ``JSONValue`` is carried as it is. Decoding reads what the
/// lenient accessors read (``JSONValue/int``, ``JSONValue/double`` and ``JSONValue/bool`` take numeric
/// and `"true"`/`"false"` strings too, as Twilio sends them) and takes `null` for a missing optional.
extension JSONValue {
    /// The value an `Encodable` encodes to.
    public init(encoding value: some Encodable) throws {
        self = try JSONValueCoding.encode(value, codingPath: [])
    }

    /// Decodes a `Decodable` from this value; throws `DecodingError` naming the path of a missing or
    /// mistyped member.
    public func decode<Value: Decodable>(_ type: Value.Type) throws -> Value {
        try JSONValueCoding.decode(type, from: self, codingPath: [])
    }
}

enum JSONValueCoding {
    static func encode(_ value: some Encodable, codingPath: [any CodingKey]) throws -> JSONValue {
        try EncodingNode.encoding(value, codingPath: codingPath).resolved
    }

    static func decode<Value: Decodable>(_ type: Value.Type, from json: JSONValue, codingPath: [any CodingKey]) throws -> Value {
        if let json = json as? Value { return json }
        return try Value(from: ValueDecoder(value: json, codingPath: codingPath))
    }

    /// A coding key for array positions and dictionary members.
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int?
        init(stringValue: String) { self.stringValue = stringValue }
        init(intValue: Int) {
            stringValue = "\(intValue)"
            self.intValue = intValue
        }
    }
}

// MARK: Scalars

/// The scalar types `Codable` containers carry, as ``JSONValue``s.
protocol JSONScalar {
    init?(json: JSONValue)
    var json: JSONValue { get }
}

extension Bool: JSONScalar {
    init?(json: JSONValue) {
        guard let value = json.bool else { return nil }
        self = value
    }
    var json: JSONValue { .bool(self) }
}

extension String: JSONScalar {
    init?(json: JSONValue) {
        guard let value = json.string else { return nil }
        self = value
    }
    var json: JSONValue { .string(self) }
}

extension Double: JSONScalar {
    init?(json: JSONValue) {
        guard let value = json.double else { return nil }
        self = value
    }
    var json: JSONValue { .number(self) }
}

extension Float: JSONScalar {
    init?(json: JSONValue) {
        guard let value = json.double else { return nil }
        self = Float(value)
    }
    var json: JSONValue { .number(Double(self)) }
}

/// Integers: whole numbers in range only (never a trap on `1e300` or `-5.5`).
protocol JSONInteger: JSONScalar, BinaryInteger {}

extension JSONInteger {
    init?(json: JSONValue) {
        guard let value = json.double, value.rounded() == value, let exact = Self(exactly: value) else { return nil }
        self = exact
    }
    var json: JSONValue { .number(Double(self)) }
}

extension Int: JSONInteger {}
extension Int8: JSONInteger {}
extension Int16: JSONInteger {}
extension Int32: JSONInteger {}
extension Int64: JSONInteger {}
extension UInt: JSONInteger {}
extension UInt8: JSONInteger {}
extension UInt16: JSONInteger {}
extension UInt32: JSONInteger {}
extension UInt64: JSONInteger {}
